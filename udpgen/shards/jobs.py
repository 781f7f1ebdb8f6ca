"""The job runner: shard jobs on worker processes, where a dead or stuck worker cannot stall the run.

A job is one shard (img2dataset's unit of work). :func:`run_jobs` calls ``fn(job)`` for every job, in this
process (``workers <= 1``) or on ``workers`` spawned processes (one GL context each; spawn, not fork: a
fork after OpenCV or GL started threads can inherit a held lock). In the pool:

- every worker has its own pipe, and the parent waits on the pipes *and* the processes' sentinels, so a
  worker that dies (segfault in the GL driver, out of memory, SIGKILL) is noticed at once, not never
  (``multiprocessing.Pool`` waits forever for the result of a task whose worker died, and its result thread
  dies on an exception that does not unpickle);
- a job that runs past ``timeout`` seconds has its worker killed;
- either way the job is retried once in a fresh worker, then recorded as failed; the run goes on;
- an exception raised by ``fn`` comes back as text (type and message), never as an object to unpickle,
  and fails that job only (no retry: the same inputs would raise again).

Outcomes are returned in job order whatever order they finished in; ``fn``'s output must not depend on
which worker ran it (shard jobs write the same bytes anywhere).

Two distributors behind this one signature, as img2dataset has: ``processes`` (the pool above) and ``ray``
(each job a Ray task, on a local Ray or a cluster at ``ray_address``; same outcomes, same retry rule; see
:mod:`udpgen.shards.ray_distributor`). Ray is an optional extra, imported only when asked for.
"""
from __future__ import annotations

import json
import multiprocessing
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from udpgen.errors import UdpgenError
from udpgen.shards.folder import list_shards, read_stats

__all__ = ["Outcome", "run_jobs", "check_resume", "has_failures", "describe", "check_distributor", "RETRIES",
           "DISTRIBUTORS"]

RETRIES = 1             # extra attempts after a worker died or timed out
_POLL_S = 1.0           # longest wait between deadline checks
DISTRIBUTORS = ("processes", "ray")
RAY_INSTALL = "pip install 'conr-toolkit[ray]'"


@dataclass
class Outcome:
    """What became of one job: ``result`` (fn's return value) or ``error`` (why it failed, after its
    retries), and how many attempts it took."""
    index: int
    job: Any
    result: Any = None
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


def describe(e: BaseException) -> str:
    """One line for a failed job or view: the project's errors are already messages for users; anything
    else is named by its type."""
    return str(e) if isinstance(e, UdpgenError) else f"{type(e).__name__}: {e}"


def _worker_main(conn, fn, initializer, initargs) -> None:
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            msg = conn.recv()
        except EOFError:           # the parent went away
            return
        if msg is None:
            return
        index, job = msg
        try:
            reply = (index, True, fn(job))
        except Exception as e:  # noqa: BLE001 - every failure of a job is reported, as text
            reply = (index, False, describe(e))
        conn.send(reply)


class _Slot:
    """One worker process, its pipe, and the job it is running (index, started) if any."""

    def __init__(self, ctx, fn, initializer, initargs):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, fn, initializer, initargs), daemon=True)
        self.proc.start()
        child.close()
        self.busy: tuple[int, float] | None = None

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(5)
        self.kill()

    def death(self) -> str:
        code = self.proc.exitcode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"the worker process died ({how}: killed, out of memory or a crash in a native library)"


def check_distributor(distributor: str, ray_address: str | None = None) -> None:
    """Fail at start-up (UdpgenError, one line) for an unknown distributor, a Ray address without Ray, or
    ``ray`` without Ray installed."""
    if distributor not in DISTRIBUTORS:
        raise UdpgenError(f"distributor = {distributor!r}: expected one of {', '.join(DISTRIBUTORS)}")
    if ray_address is not None and distributor != "ray":
        raise UdpgenError(f"--ray-address {ray_address} is for --distributor ray (got --distributor {distributor})")
    if distributor == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UdpgenError(f"--distributor ray needs Ray, which is not installed: {RAY_INSTALL}") from None


def run_jobs(jobs: Sequence, fn: Callable[[Any], Any], *, workers: int = 1, timeout: float | None = None,
             initializer: Callable | None = None, initargs: tuple = (),
             on_done: Callable[[Outcome], None] | None = None, distributor: str = "processes",
             ray_address: str | None = None) -> list[Outcome]:
    """Run ``fn(job)`` for every job -> one :class:`Outcome` per job, in job order.

    ``distributor="processes"``: workers <= 1: in this process, in order (``initializer`` called once first;
    no timeout can apply). workers >= 2: on that many spawned processes (at most one per job), each calling
    ``initializer(*initargs)`` once when it starts. ``distributor="ray"``: every job a Ray task, at most
    ``max(workers, 1)`` in flight, ``initializer`` once per Ray worker process; on the cluster at
    ``ray_address``, or (None) a local Ray started for this call unless one is already initialised.
    Off this process ``fn``, the jobs, ``initargs`` and the results must pickle. ``timeout``: seconds one job
    may take (None: no limit). ``on_done(outcome)`` is called in this process as each job finishes."""
    check_distributor(distributor, ray_address)
    outcomes: dict[int, Outcome] = {}

    def finish(o: Outcome) -> None:
        outcomes[o.index] = o
        if on_done is not None:
            on_done(o)

    if distributor == "ray":
        from udpgen.shards.ray_distributor import run_ray_jobs

        run_ray_jobs(jobs, fn, finish, workers=workers, timeout=timeout, initializer=initializer,
                     initargs=initargs, ray_address=ray_address)
        return [outcomes[i] for i in range(len(jobs))]
    if workers <= 1 or len(jobs) <= 1:
        if initializer is not None:
            initializer(*initargs)
        for i, job in enumerate(jobs):
            try:
                finish(Outcome(i, job, result=fn(job)))
            except Exception as e:  # noqa: BLE001 - as in the pool: a failed job is data
                finish(Outcome(i, job, error=describe(e)))
        return [outcomes[i] for i in range(len(jobs))]

    ctx = multiprocessing.get_context("spawn")
    pending = deque(range(len(jobs)))
    attempts = [0] * len(jobs)
    slots = [_Slot(ctx, fn, initializer, initargs) for _ in range(min(workers, len(jobs)))]

    def lost(k: int, reason: str | None = None) -> None:
        """Slot k's worker is gone (dead, or to be killed with ``reason``): retry its job once, give the slot
        a fresh worker."""
        index, _ = slots[k].busy
        slots[k].kill()                       # joins it: its exit code is known below
        reason = reason or slots[k].death()
        if attempts[index] <= RETRIES:
            pending.appendleft(index)
        else:
            finish(Outcome(index, jobs[index], error=f"{reason} (tried {attempts[index]} times)",
                           attempts=attempts[index]))
        slots[k] = _Slot(ctx, fn, initializer, initargs)

    try:
        while len(outcomes) < len(jobs):
            for slot in slots:
                if slot.busy is None and pending:
                    index = pending.popleft()
                    attempts[index] += 1
                    slot.busy = (index, time.monotonic())
                    slot.conn.send((index, jobs[index]))
            busy = [k for k, s in enumerate(slots) if s.busy is not None]
            wait_s = _POLL_S
            if timeout is not None:
                now = time.monotonic()
                wait_s = max(0.0, min([_POLL_S] + [slots[k].busy[1] + timeout - now for k in busy]))
            ready = set(wait([slots[k].conn for k in busy] + [slots[k].proc.sentinel for k in busy], wait_s))
            for k in busy:
                slot = slots[k]
                if slot.conn in ready or slot.conn.poll():
                    try:
                        index, ok, value = slot.conn.recv()
                    except (EOFError, OSError):
                        lost(k)
                        continue
                    slot.busy = None
                    finish(Outcome(index, jobs[index], result=value if ok else None, error=None if ok else value,
                                   attempts=attempts[index]))
                elif slot.proc.sentinel in ready or not slot.proc.is_alive():
                    lost(k)
                elif timeout is not None and time.monotonic() - slot.busy[1] > timeout:
                    lost(k, f"the job ran past its timeout of {timeout:g} s")
    finally:
        for slot in slots:
            slot.stop()
    return [outcomes[i] for i in range(len(jobs))]


def has_failures(stats: dict) -> bool:
    """Whether a committed shard's stats record items that could not be made (views, images)."""
    return bool(stats.get("failures") or stats.get("view_failures"))


def check_resume(out_dir, planned: dict[str, str], settings: dict, splits=("train", "val"),
                 overwrite: bool = False, retry_failed: bool = False) -> list[str]:
    """The one resume rule -> names of the planned shards still to run.

    ``planned``: shard name -> plan hash (sha256 of everything its bytes depend on); ``settings``: the run's
    settings, recorded in every shard's stats beside its plan hash so that a refusal can name them. A
    committed shard of ``splits`` in ``out_dir`` whose plan differs, or that this plan does not make, is
    refused (UdpgenError naming the settings that differ, nothing touched) unless ``overwrite``, which
    deletes it (it is then remade if planned). ``retry_failed``: committed shards whose stats record
    failures (:func:`has_failures`) are deleted and run again (a fixed input, a flaky driver)."""
    out_dir = Path(out_dir)
    stale, failed = [], []
    for name in (Path(p).name for split in splits for p in list_shards(out_dir, split)):
        stats = read_stats(out_dir, name)
        if planned.get(name) != stats.get("plan_sha256"):
            stale.append((name, stats))
        elif retry_failed and has_failures(stats):
            failed.append((name, stats))
    if stale and not overwrite:
        name, stats = stale[0]
        old = stats.get("settings")
        if name not in planned:
            why = "this run does not make it (fewer inputs or other settings)"
        elif not isinstance(old, dict):
            why = "it records no settings (written by an older version or another command)"
        else:
            now = json.loads(json.dumps(settings, default=str))        # as the stats hold it (tuples read back as lists)
            diff = [f"{k}: {old.get(k)!r} then, {now.get(k)!r} now" for k in sorted(set(old) | set(now))
                    if old.get(k) != now.get(k)]
            why = ("settings differ: " + "; ".join(diff)) if diff else "the inputs differ (files added, removed or changed)"
        raise UdpgenError(f"{out_dir / name} was written by another run ({len(stale)} shard(s) differ): {why}. "
                          "Use a new --out, or --overwrite to replace them")
    for name, _ in stale + failed:
        for p in (out_dir / name, out_dir / name.replace(".tar", ".stats.json")):
            p.unlink(missing_ok=True)
    committed = {Path(p).name for split in splits for p in list_shards(out_dir, split)}
    for name in committed & set(planned):
        (out_dir / (name + ".tmp")).unlink(missing_ok=True)          # debris of a killed run
    return [name for name in planned if name not in committed]
