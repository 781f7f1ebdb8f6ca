"""udpgen synth: plans, shard jobs, resume, determinism, bad inputs, archives, node partition."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from udpgen.shards.schema import split_of
from click.testing import CliRunner

from udpgen.cli.main import main
from udpgen.errors import UdpgenError
from udpgen.synth.job import SynthConfig, plan, synthesize
from udpgen.shards.verify import verify

SMALL = SynthConfig(size=64, poses=3, motion_frames=1, views=1, views_per_sample=2, samples_per_shard=1, seed=5)




@pytest.fixture()
def models(tmp_path, sample_dir):
    """The sample character, a corrupt model, and the sample again inside a zip under another name."""
    d = tmp_path / "models"
    shutil.copytree(sample_dir, d / "sample")
    (d / "broken.pmx").write_bytes(b"PMX \x00\x00\x00\x40garbage")
    with zipfile.ZipFile(d / "pack.zip", "w") as z:
        for f in sorted((sample_dir).rglob("*")):
            if f.is_file() and f.suffix != ".vmd":
                z.write(f, f"キャラ/{f.relative_to(sample_dir)}".replace("sample.pmx", "本体.pmx"))
    (d / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    return d


def tars(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.tar"))}


def test_plan_skips_bad_inputs_and_dedups(models, sample_dir):
    p = plan(models, sample_dir, SMALL)
    reasons = {Path(s["file"]).name.split(":")[0]: s["reason"] for s in p.skipped}
    assert "broken.pmx" in reasons and "bad.zip" in reasons
    assert any("duplicate" in s["reason"] for s in p.skipped)       # the zip holds the same model bytes
    assert len(p.models) == 1
    views = sum(j.view_count for j in p.jobs)
    assert views == (SMALL.poses + SMALL.motion_frames) * SMALL.views
    assert {j.split for j in p.jobs} == {split_of(p.models[0].character)}     # one character, its own split


def test_zip_models_are_extracted_and_rendered(gl, tmp_path, sample_dir):
    d = tmp_path / "zipped"
    d.mkdir()
    with zipfile.ZipFile(d / "pack.zip", "w") as z:
        for f in sorted(sample_dir.rglob("*")):
            if f.is_file():
                z.write(f, f"キャラ/{f.relative_to(sample_dir)}")
    out = tmp_path / "out"
    s = synthesize(d, None, out, SynthConfig(size=64, poses=2, motion_frames=0, views=1, views_per_sample=2))
    assert s["views_written"] == 2 and s["skipped"] == []
    report = verify(out)
    assert report.ok, report.problems
    meta = json.loads(next(iter(_members(out).values()))["json"])
    assert meta["model_file"].startswith("pack.zip:キャラ/") and len(meta["model_sha256"]) == 64


def _members(out: Path) -> dict:
    import webdataset as wds
    return {s["__key__"]: s for s in wds.WebDataset([str(p) for p in sorted(out.glob("*.tar"))], shardshuffle=False)}


def test_runs_resume_and_are_deterministic(gl, models, sample_dir, tmp_path):
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    s = synthesize(models, sample_dir, out_a, SMALL)
    assert s["shards_written"] == s["shards_planned"] == 2 and s["views_written"] == 4
    assert verify(out_a).ok
    again = synthesize(models, sample_dir, out_a, SMALL)
    assert again["shards_written"] == 0 and again["shards_skipped_complete"] == 2
    synthesize(models, sample_dir, out_b, SMALL)
    assert tars(out_a) == tars(out_b)
    # a deleted shard is redone, identical
    first = sorted(out_a.glob("*.tar"))[0]
    data = first.read_bytes()
    first.unlink()
    first.with_name(first.name.replace(".tar", ".stats.json")).unlink()
    assert synthesize(models, sample_dir, out_a, SMALL)["shards_written"] == 1
    assert first.read_bytes() == data
    manifest = json.loads((out_a / "manifest.json").read_text())
    assert any("broken.pmx" in s["file"] for s in manifest["config"]["skipped"])


def test_node_partition_covers_the_plan_once(gl, models, sample_dir, tmp_path):
    out = tmp_path / "nodes"
    written = [synthesize(models, sample_dir, out, SMALL, num_nodes=2, node_rank=r)["shards_written"] for r in (0, 1)]
    assert written == [1, 1]
    assert tars(out) == tars(_reference(models, sample_dir, tmp_path))


def test_worker_processes_give_the_same_dataset(gl, models, sample_dir, tmp_path):
    """Two spawned workers (each its own GL context, the plan shipped once at start) write the same bytes."""
    out = tmp_path / "pool"
    s = synthesize(models, sample_dir, out, SMALL, workers=2)
    assert s["shards_written"] == 2 and verify(out).ok
    assert tars(out) == tars(_reference(models, sample_dir, tmp_path))


def test_views_of_one_pose_share_it(gl, sample_dir, tmp_path, monkeypatch):
    """Each pose seen by two cameras: posing once per pose (the worker's cache) writes the same bytes as
    posing every view afresh."""
    from udpgen.synth import job as synth

    cfg = SynthConfig(size=48, poses=3, motion_frames=1, views=2, views_per_sample=4, seed=2)
    cached = synthesize(sample_dir, sample_dir, tmp_path / "cached", cfg)
    monkeypatch.setattr(synth, "POSE_CACHE", 0)
    fresh = synthesize(sample_dir, sample_dir, tmp_path / "fresh", cfg)
    assert cached["views_written"] == fresh["views_written"] == 8
    assert tars(tmp_path / "cached") == tars(tmp_path / "fresh")


def _reference(models, motions, tmp_path):
    out = tmp_path / "ref"
    if not out.exists():
        synthesize(models, motions, out, SMALL)
    return out


def test_killed_run_resumes_to_the_same_dataset(gl, models, sample_dir, tmp_path):
    """SIGKILL a worker-pool run mid-way; no partial shard is visible; a rerun completes it identically."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "udpgen.cli", "synth", "--models", str(models), "--motions", str(sample_dir),
           "--out", str(out), "--size", "64", "--poses", "3", "--motion-frames", "1", "--views", "1",
           "--views-per-sample", "2", "--samples-per-shard", "1", "--seed", "5", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob("*.tar*")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    from udpgen.shards import iter_samples
    for t in out.glob("*.tar"):                 # anything under a final name is a complete tar
        assert sum(1 for _ in iter_samples(t)) == SMALL.samples_per_shard
    assert CliRunner().invoke(main, cmd[3:]).exit_code == 0
    assert verify(out).ok
    assert tars(out) == tars(_reference(models, sample_dir, tmp_path))


def test_bad_arguments(tmp_path, sample_dir):
    with pytest.raises(UdpgenError, match="size"):
        SynthConfig(size=0)
    with pytest.raises(UdpgenError, match="node-rank"):
        synthesize(sample_dir, None, tmp_path / "o", SMALL, num_nodes=2, node_rank=2)
    with pytest.raises(UdpgenError, match="no such models"):
        synthesize(tmp_path / "missing", None, tmp_path / "o", SMALL)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UdpgenError, match="cannot write"):
        synthesize(sample_dir, None, blocker, SMALL)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.access(ro, os.W_OK):                  # root ignores permissions
        pytest.skip("running as root: a read-only folder is still writable")
    with pytest.raises(UdpgenError, match="cannot write"):
        synthesize(sample_dir, None, ro / "x", SMALL)


def test_pipeline_recipe(gl, sample_dir, tmp_path, capsys):
    from pipelines.synth_dataset import main as recipe
    out = tmp_path / "recipe"
    assert recipe(["--models", str(sample_dir), "--out", str(out), "--size", "64", "--poses", "2", "--views", "1",
                   "--motion-frames", "0"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["verify_ok"] and Path(summary["preview"]).is_file()


def test_a_view_that_cannot_be_made_is_counted_and_the_run_goes_on(gl, sample_dir, tmp_path, monkeypatch):
    """Failures are data: a failing view (here: the UDP range check of a real-world model) is left out of
    its sample and recorded with model, motion, frame and reason in the shard's stats; exit status 0."""
    from udpgen.synth import job as synth

    real = synth._render_view
    calls = {"n": 0}

    def flaky(plan_, model_index, spec, *rest):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("udp values must be in [0, 1], got [0.0, 1.0000025]")
        return real(plan_, model_index, spec, *rest)

    monkeypatch.setattr(synth, "_render_view", flaky)
    out = tmp_path / "flaky"
    res = CliRunner().invoke(main, ["synth", "--models", str(sample_dir), "--motions", str(sample_dir), "--out",
                                    str(out), "--size", "48", "--poses", "3", "--motion-frames", "1",
                                    "--views", "1", "--views-per-sample", "4", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["views_failed"] == 1 and summary["views_written"] == 3
    stats = [json.loads(p.read_text()) for p in out.glob("*.stats.json")]
    [failure] = [f for s in stats for f in s["view_failures"]]
    assert failure["model"] == "sample.pmx" and "1.0000025" in failure["reason"] and "motion" in failure
    assert verify(out).ok
    calls["n"] = 1                                         # the next view fails again
    strict = CliRunner().invoke(main, ["synth", "--models", str(sample_dir), "--out", str(tmp_path / "s"),
                                       "--size", "48", "--poses", "2", "--views", "1", "--strict"])
    assert strict.exit_code == 1 and "1 views failed" in strict.output


def test_a_rerun_with_other_settings_refuses_naming_them(gl, sample_dir, tmp_path):
    """A rerun with another --size into the same --out mixed 256 px and 512 px shards: now it refuses,
    naming the setting, and touches nothing; --overwrite remakes them."""
    out = tmp_path / "mixed"
    args = ["synth", "--models", str(sample_dir), "--out", str(out), "--poses", "2", "--views", "1"]
    assert CliRunner().invoke(main, args + ["--size", "48"]).exit_code == 0
    before = tars(out)
    res = CliRunner().invoke(main, args + ["--size", "64"])
    assert res.exit_code == 1 and "size: 48 then, 64 now" in res.output and "--overwrite" in res.output
    assert tars(out) == before
    res = CliRunner().invoke(main, args + ["--size", "64", "--overwrite", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["shards_written"] == 1
    assert tars(out) != before and verify(out).ok
    res = CliRunner().invoke(main, args + ["--size", "64", "--json"])          # same settings: resumes
    assert res.exit_code == 0 and json.loads(res.stdout)["shards_skipped_complete"] == 1
