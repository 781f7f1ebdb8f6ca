"""udpgen.shards.jobs: the job runner notices dead and stuck workers, retries once, and never hangs."""
from __future__ import annotations

import os
import signal
import time

import pytest

from udpgen.errors import FormatError
from udpgen.shards.jobs import run_jobs


def _job(spec):
    """spec = (value, what, marker file): 'ok' returns value; 'die-once' SIGKILLs itself unless the marker
    exists (then creates it first); 'die' always; 'hang' sleeps; 'format' raises a FormatError."""
    value, what, marker = spec
    if what == "die-once" and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if what == "hang":
        time.sleep(600)
    if what == "format":
        raise FormatError("m.pmx", 7, "bones[2].parent", "index 40 out of range")
    return value * 10


def _init(path):
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")


def test_results_in_job_order_with_workers(tmp_path):
    jobs = [(i, "ok", "") for i in range(5)]
    out = run_jobs(jobs, _job, workers=2)
    assert [o.result for o in out] == [0, 10, 20, 30, 40] and all(o.ok for o in out)


def test_a_killed_worker_is_replaced_and_its_job_retried_once(tmp_path):
    marker = str(tmp_path / "died")
    starts = tmp_path / "starts"
    t0 = time.monotonic()
    out = run_jobs([(1, "die-once", marker), (2, "die", ""), (3, "ok", "")], _job, workers=2,
                   initializer=_init, initargs=(str(starts),))
    assert time.monotonic() - t0 < 60
    assert (out[0].result, out[0].attempts) == (10, 2)                   # retried in a fresh worker
    assert not out[1].ok and out[1].attempts == 2 and "died" in out[1].error and "signal 9" in out[1].error
    assert out[2].result == 30
    assert len(starts.read_text().split()) >= 4                          # 2 workers + 2 replacements at least


def test_a_job_past_its_timeout_is_killed_and_recorded(tmp_path):
    t0 = time.monotonic()
    # 4 s: the clock runs from dispatch, and a spawned worker can take seconds to import on a loaded machine
    out = run_jobs([(1, "hang", ""), (2, "ok", "")], _job, workers=2, timeout=4.0)
    assert time.monotonic() - t0 < 40
    assert not out[0].ok and "timeout of 4 s" in out[0].error and out[0].attempts == 2
    assert out[1].result == 20


@pytest.mark.parametrize("workers", [1, 2])
def test_a_raising_job_fails_alone_and_its_error_arrives_as_text(workers):
    out = run_jobs([(1, "format", ""), (2, "ok", "")], _job, workers=workers)
    assert not out[0].ok and out[0].attempts == 1
    assert "m.pmx: bones[2].parent at byte 7: index 40 out of range" in out[0].error
    assert out[1].result == 20
