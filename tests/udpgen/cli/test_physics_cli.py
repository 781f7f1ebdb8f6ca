"""``--physics on|off`` on pose, render and synth: off is today's output, on moves hair and is recorded."""
from __future__ import annotations

import json
import tarfile

import pytest
from click.testing import CliRunner

pytest.importorskip("panda3d.bullet")


def invoke(*args):
    from udpgen.cli.main import main

    return CliRunner().invoke(main, [*map(str, args)])


@pytest.fixture(scope="module")
def twintails(tmp_path_factory):
    """A generated family character with hair strands on rigid bodies and joints."""
    from udpgen.sample import family

    out = tmp_path_factory.mktemp("family")
    index = next(i for i in range(40) if family.draw_spec(0, i).hair in ("twintails", "side", "ponytail"))
    family.write_family(out, index + 1, 0)
    return next(out.glob(f"family-0-{index:04d}/*.pmx"))


def _render(model, out, physics, *extra):
    res = invoke("render", model, "--random-poses", 2, "--size", 48, "--seed", 1, "--out", out,
                 "--physics", physics, "--json", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(res.output[res.output.index("{"):])


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*_0*")) if p.suffix == ".png"}


def test_render_without_rigid_bodies_is_identical_with_physics_on_and_off(gl, sample_dir, tmp_path):
    on = _render(sample_dir / "sample.pmx", tmp_path / "on", "on")
    off = _render(sample_dir / "sample.pmx", tmp_path / "off", "off")
    assert on["physics"] == "on" and off["physics"] == "off" and on["physics_fallbacks"] == 0
    assert _bytes(tmp_path / "on") == _bytes(tmp_path / "off") and _bytes(tmp_path / "on")
    meta_on = json.loads((tmp_path / "on" / "sample_0000_00.json").read_text())
    meta_off = json.loads((tmp_path / "off" / "sample_0000_00.json").read_text())
    assert meta_on.pop("physics") == "none" and "physics" not in meta_off


def test_render_hair_moves_with_physics_and_repeats_byte_for_byte(gl, twintails, tmp_path):
    on = _render(twintails, tmp_path / "on", "on")
    _render(twintails, tmp_path / "again", "on")
    _render(twintails, tmp_path / "off", "off")
    assert on["physics_fallbacks"] == 0
    assert _bytes(tmp_path / "on") == _bytes(tmp_path / "again")
    assert _bytes(tmp_path / "on") != _bytes(tmp_path / "off")
    meta = json.loads(next((tmp_path / "on").glob("*_0000_00.json")).read_text())
    assert meta["physics"] == "simulated"


def test_pose_physics_option(twintails, tmp_path):
    off = invoke("pose", twintails, "--random-pose", 3, "--out", tmp_path / "off.ply", "--json")
    on = invoke("pose", twintails, "--random-pose", 3, "--physics", "on", "--out", tmp_path / "on.ply", "--json")
    assert off.exit_code == 0 and on.exit_code == 0, on.output
    assert "physics" not in json.loads(off.output) and json.loads(on.output)["physics"] == "simulated"
    assert (tmp_path / "on.ply").read_bytes() != (tmp_path / "off.ply").read_bytes()


def test_synth_records_physics_in_settings_views_and_stats(gl, twintails, tmp_path):
    res = invoke("synth", "--models", twintails.parent, "--out", tmp_path / "s", "--size", 32, "--poses", 2,
                 "--views", 1, "--motion-frames", 0, "--physics", "on", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["physics"] == "on" and summary["physics_fallbacks"] == 0
    stats = [json.loads(p.read_text()) for p in (tmp_path / "s").rglob("*stats.json")]
    assert stats and all(s["settings"]["physics"] == "on" and s["physics_fallbacks"] == 0 for s in stats)
    metas = []
    for tar in (tmp_path / "s").rglob("*.tar"):
        with tarfile.open(tar) as t:
            metas += [json.load(t.extractfile(m)) for m in t.getmembers() if m.name.endswith(".json")]
    assert metas and all(v["physics"] == "simulated" for m in metas for v in m["views"])


def test_render_a_motion_with_physics_repeats_byte_for_byte(gl, twintails, sample_dir, tmp_path):
    args = ("--motion", sample_dir / "wave.vmd", "--frames", "0:30:15")
    runs = []
    for name in ("a", "b"):
        res = invoke("render", twintails, *args, "--size", 48, "--out", tmp_path / name, "--physics", "on", "--json")
        assert res.exit_code == 0, res.output
        runs.append(_bytes(tmp_path / name))
    assert runs[0] == runs[1] and len(runs[0]) == 4
    meta = json.loads(next((tmp_path / "a").glob("*_0001_00.json")).read_text())
    assert meta["physics"] == "simulated"


def test_synth_with_physics_gives_the_same_shards_with_two_workers(gl, twintails, tmp_path):
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        res = invoke("synth", "--models", twintails.parent.parent, "--out", out, "--size", 32, "--poses", 3,
                     "--views", 1, "--motion-frames", 0, "--samples-per-shard", 1, "--views-per-sample", 1,
                     "--workers", workers, "--physics", "on", "--json")
        assert res.exit_code == 0, res.output
        outs.append({p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))})
    assert len(outs[0]) >= 2 and outs[0] == outs[1]


def test_synth_motion_frames_with_a_warmup_are_simulated_and_repeat_byte_for_byte(gl, twintails, sample_dir, tmp_path):
    def run(name, *extra):
        out = tmp_path / name
        res = invoke("synth", "--models", twintails.parent, "--motions", sample_dir / "wave.vmd", "--out", out,
                     "--size", 32, "--poses", 0, "--views", 1, "--motion-frames", 3, "--physics", "on",
                     "--samples-per-shard", 1, "--views-per-sample", 1, "--json", *extra)
        assert res.exit_code == 0, res.output
        return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}

    warm, again, settled = run("warm", "--physics-warmup", 0.5), run("again", "--physics-warmup", 0.5), run("settled")
    assert len(warm) == 3 and warm == again                     # deterministic
    assert warm != settled                                       # the warm-up is what draws the hair
    stats = [json.loads(p.read_text()) for p in (tmp_path / "warm").glob("*stats.json")]
    assert all(s["settings"]["physics_warmup"] == 0.5 and s["physics_fallbacks"] == 0 for s in stats)


def test_synth_physics_settle_changes_the_settle_is_recorded_and_a_rerun_with_another_is_refused(gl, twintails,
                                                                                                 tmp_path):
    def run(name, *extra):
        return invoke("synth", "--models", twintails.parent, "--out", tmp_path / name, "--size", 32, "--poses", 2,
                      "--views", 1, "--motion-frames", 0, "--physics", "on", "--samples-per-shard", 1,
                      "--views-per-sample", 1, "--json", *extra)

    def shards(name):
        return {p.name: p.read_bytes() for p in sorted((tmp_path / name).glob("*.tar"))}

    assert run("short", "--physics-settle", 4, 6, 2).exit_code == 0
    assert run("default").exit_code == 0
    assert len(shards("short")) == 2 and shards("short") != shards("default")
    stats = [json.loads(p.read_text()) for p in (tmp_path / "short").glob("*stats.json")]
    assert all(s["settings"]["physics_settle"] == [4, 6, 2] for s in stats)
    again = run("short", "--physics-settle", 4, 6, 2)             # the same settle resumes
    assert again.exit_code == 0 and json.loads(again.output[again.output.index("{"):])["shards_written"] == 0
    res = run("short")                                            # another settle into that folder: refused
    assert res.exit_code == 1 and "physics_settle: [4, 6, 2] then, [8, 16, 8] now" in res.output, res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("bad", [("0", "5", "1"), ("9", "5", "1")])
def test_a_bad_physics_settle_is_one_usage_line(bad, tmp_path):
    res = invoke("render", tmp_path / "x.pmx", "--physics-settle", *bad, "--out", tmp_path / "o")
    assert res.exit_code == 2 and "--physics-settle" in res.output and "SettleSettings." in res.output, res.output
    assert "Traceback" not in res.output


def test_the_settle_defaults_agree():
    from dataclasses import astuple

    from udpgen.cli.options import SETTLE_DEFAULT
    from udpgen.rig.physics_world import SettleSettings
    from udpgen.errors import SettingsError
    from udpgen.synth.job import SynthConfig

    assert SETTLE_DEFAULT == astuple(SettleSettings()) == SynthConfig().physics_settle
    assert SynthConfig(physics_settle=[5, 8, 0]).physics_settle == (5, 8, 0)        # a list from a file
    with pytest.raises(SettingsError, match=r"SynthConfig.physics_settle = \(8, 5, 0\)"):
        SynthConfig(physics_settle=(8, 5, 0))
