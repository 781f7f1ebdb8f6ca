"""udpgen.shards.ray_distributor: the ``ray`` distributor of run_jobs keeps the runner's contract (job order,
errors as text, a dead or stuck worker retried once then recorded) and writes the same shards as ``processes``.

Needs Ray (``pip install 'conr-toolkit[ray]'``): skipped cleanly without it, except the test that asking for
Ray without it installed gives one line saying how to install it."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from udpgen.cli.main import main
from udpgen.shards.jobs import run_jobs

from tests.udpgen.drawn.test_handdrawn import drawings, tar_hashes  # noqa: F401 - a fixture
from tests.udpgen.shards.test_jobs import _init, _job

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "assets" / "sample"


@pytest.mark.parametrize("command", [["synth", "--models", str(SAMPLE), "--out", "{out}"],
                                     ["handdrawn", str(SAMPLE), "--out", "{out}"],
                                     ["backgrounds", "builtin", "--out", "{out}"]])
def test_ray_requested_but_not_installed_is_one_line(monkeypatch, tmp_path, command):
    monkeypatch.setitem(sys.modules, "ray", None)              # `import ray` raises ImportError
    args = [a.format(out=tmp_path / "out") for a in command] + ["--distributor", "ray"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "pip install 'conr-toolkit[ray]'" in lines[0] and "Traceback" not in r.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.tar"))


def test_a_ray_address_without_the_ray_distributor_is_refused(tmp_path):
    r = CliRunner().invoke(main, ["synth", "--models", str(SAMPLE), "--out", str(tmp_path / "out"),
                                  "--ray-address", "auto"])
    assert r.exit_code == 1 and "--ray-address auto is for --distributor ray" in r.output
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_results_in_job_order(ray_cluster, tmp_path):
    starts = tmp_path / "starts"
    done = []
    out = run_jobs([(i, "ok", "") for i in range(6)], _job, workers=2, distributor="ray", initializer=_init,
                   initargs=(str(starts),), on_done=lambda o: done.append(o.index))
    assert [o.result for o in out] == [0, 10, 20, 30, 40, 50] and all(o.ok and o.attempts == 1 for o in out)
    assert sorted(done) == list(range(6))
    pids = starts.read_text().split()
    assert len(pids) == len(set(pids)) <= 2          # once per Ray worker process, not once per task


@pytest.mark.parametrize("workers", [1, 2])
def test_a_raising_job_fails_alone_with_its_error_as_text(ray_cluster, workers):
    out = run_jobs([(1, "format", ""), (2, "ok", "")], _job, workers=workers, distributor="ray")
    assert not out[0].ok and out[0].attempts == 1
    assert "m.pmx: bones[2].parent at byte 7: index 40 out of range" in out[0].error
    assert out[1].result == 20


def test_a_job_that_kills_its_worker_is_retried_once_then_recorded(ray_cluster, tmp_path):
    marker = str(tmp_path / "died")
    t0 = time.monotonic()
    out = run_jobs([(1, "die-once", marker), (2, "die", ""), (3, "ok", "")], _job, workers=2, distributor="ray")
    assert time.monotonic() - t0 < 60
    assert (out[0].result, out[0].attempts) == (10, 2)                   # retried in a fresh worker
    assert not out[1].ok and out[1].attempts == 2 and "Ray worker died" in out[1].error
    assert (out[2].result, out[2].attempts) == (30, 1)


def test_a_job_past_its_timeout_is_cancelled_retried_and_recorded(ray_cluster):
    t0 = time.monotonic()
    # 5 s: the clock runs from submission, and a Ray worker can take seconds to start on a loaded machine
    out = run_jobs([(1, "hang", ""), (2, "ok", "")], _job, workers=2, timeout=5.0, distributor="ray")
    assert time.monotonic() - t0 < 40
    assert not out[0].ok and "timeout of 5 s" in out[0].error and out[0].attempts == 2
    assert out[1].result == 20


def test_synth_writes_the_same_shards_with_both_distributors(ray_cluster, tmp_path):
    from udpgen.synth.job import SynthConfig, synthesize

    cfg = SynthConfig(size=48, poses=4, motion_frames=1, views=1, views_per_sample=2, samples_per_shard=1)
    runs = {}
    for distributor, workers in (("processes", 1), ("ray", 2)):
        s = synthesize(SAMPLE, SAMPLE, tmp_path / distributor, cfg, workers=workers, distributor=distributor)
        assert not s["shards_failed"] and s["views_written"] > 0
        runs[distributor] = tar_hashes(tmp_path / distributor)
    assert len(runs["ray"]) >= 2 and runs["ray"] == runs["processes"]


def test_handdrawn_cli_on_ray_writes_the_same_shards_and_clean_json(ray_cluster, drawings, tmp_path):
    outs = {}
    for distributor in ("processes", "ray"):
        out = tmp_path / distributor
        r = CliRunner().invoke(main, ["handdrawn", str(drawings), "--out", str(out), "--size", "32", "--per-shard", "2",
                                      "--workers", "2", "--distributor", distributor, "--json", "-q",
                                      "--allow-failures"])
        assert r.exit_code == 0, r.output
        summary = json.loads(r.stdout)                 # nothing of Ray's on stdout
        assert summary["written"] == summary["shards"] >= 2 and not summary["shards_failed"]
        outs[distributor] = tar_hashes(out)
    assert outs["ray"] == outs["processes"]


def test_background_shards_on_ray_are_the_same_bytes(ray_cluster, tmp_path):
    outs = {}
    for distributor in ("processes", "ray"):
        out = tmp_path / distributor
        r = CliRunner().invoke(main, ["backgrounds", "builtin", "--out", str(out), "--size", "16", "--per-shard", "8",
                                      "--workers", "2", "--distributor", distributor, "--json", "-q"])
        assert r.exit_code == 0, r.output
        summary = json.loads(r.stdout)
        assert summary["written"] == summary["shards"] >= 3 and not summary["shards_failed"]
        outs[distributor] = tar_hashes(out)
    assert outs["ray"] == outs["processes"]
