"""The whole pipeline over a generated zoo of odd, broken and non-character files (tests/robustness_corpus.py):
inspect, pose, render, synth with two workers, verify. No traceback, no hang: a clear line or a counted
warning for each file."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from udpgen.cli.main import main

from robustness_corpus import write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return root, write_corpus(root)


def run(*args):
    # mix_stderr is gone in click 8.2; output holds both streams
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_clean_line(res, fragment: str) -> None:
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
    assert "Traceback" not in res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and fragment in errors[0], res.output


def _json(res) -> dict:
    return json.loads(res.output[res.output.index("{"):])


def test_inspect_every_file(corpus):
    root, entries = corpus
    for name, e in entries.items():
        res = run("inspect", root / name, "--json")
        if not e.readable:
            _one_clean_line(res, e.error)
            continue
        assert res.exit_code == 0, (name, res.output)
        doc = _json(res)
        if e.kind == "model":
            assert tuple(doc["repairs"]) == e.repairs, name
            if name.startswith("texzoo"):
                assert doc["textures"]["missing"] == ["Tex\\missing.png"]
            elif name.endswith(".pmx"):
                assert doc["textures"]["missing"] == [], name


def test_pose_every_model(corpus, tmp_path):
    root, entries = corpus
    for name, e in entries.items():
        if e.kind != "model":
            continue
        out = tmp_path / (name.replace("/", "_") + ".ply")
        res = run("pose", root / name, "--apose", "--out", out)
        if e.usable:
            assert res.exit_code == 0, (name, res.output)
            assert out.stat().st_size > 0
        else:
            _one_clean_line(res, e.error if e.error not in ("humanoid",) else "canonicalise")
            assert not out.exists()


def test_render_every_usable_model(gl, corpus, tmp_path):
    root, entries = corpus
    for name, e in entries.items():
        if e.kind != "model" or not e.usable:
            continue
        out = tmp_path / name.replace("/", "_")
        res = run("render", root / name, "--random-poses", 1, "--views", 1, "--size", 48, "--out", out, "--json")
        assert res.exit_code == 0, (name, res.output)
        summary = _json(res)
        assert summary["written"] == 1, name
        if name == "texzoo/texzoo.pmx":     # every spelling found, toon03.bmp is MMD's shared toon, one missing
            assert summary["warnings"] == {"missing_texture": 1}, summary["warnings"]


def test_synth_with_two_workers_and_verify(corpus, tmp_path):
    root, entries = corpus
    out = tmp_path / "shards"
    res = run("synth", "--models", root, "--motions", root / "motions", "--out", out, "--size", 48, "--poses", 1,
              "--views", 1, "--motion-frames", 1, "--workers", 2, "--timeout", 120, "--json")
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    summary = _json(res)
    skipped = {s["file"].replace(str(root) + "/", ""): s["reason"] for s in summary["skipped"]}
    refused = {n: e for n, e in entries.items() if e.error}
    assert set(skipped) == set(refused)
    for name, e in refused.items():
        assert e.error in skipped[name] or "humanoid" in skipped[name], (name, skipped[name])
    usable = [n for n, e in entries.items() if e.kind == "model" and e.usable]
    assert summary["characters"] == len(usable)
    assert summary["views_failed"] == 0 and summary["shards_failed"] == []
    # every usable character got its random pose and the wave motion; camera/morph-only motions add nothing
    assert summary["views_written"] == 2 * len(usable)
    res = run("verify", out, "--json")
    assert res.exit_code == 0 and _json(res)["ok"], res.output
