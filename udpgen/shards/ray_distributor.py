"""The ``ray`` distributor of :func:`udpgen.shards.jobs.run_jobs`: each shard job is one Ray task.

Same contract as the ``processes`` distributor (outcomes in job order, errors as text, a dead or stuck
worker retried once then recorded), on a Ray cluster: a local one started here (``ray.init()``, stopped
again at the end) or an existing one (``ray_address``: ``auto``, ``HOST:PORT`` or ``ray://HOST:10001``), so
the same command runs on a laptop and on a cluster. On a cluster every node needs this package (and Mesa)
installed and the output folder on a shared file system: a task writes its shard where it runs.

- The initializer runs once per Ray worker process, not once per task: a module-level record of the run
  each process was initialised for. Ray reuses a worker process for many tasks, so the renderer the
  synth job keeps in its module state (one GL context) is made once per process and reused, as in a
  spawned pool. (An actor per worker would do the same, but a task on an actor cannot be force-cancelled;
  a plain task can, which is what a timeout needs.) ``initargs`` (the synth plan: megabytes) go to the
  object store once and are fetched by a process only when it initialises, not with every task.
- Ray's own retries are off (``max_retries=0``): a task whose worker died (``WorkerCrashedError``, Ray's
  OOM killer, a lost node) is resubmitted here once, so ``Outcome.attempts`` and the messages are those of
  the processes distributor. A task past ``timeout`` (counted from its submission; at most ``workers``
  tasks are in flight, so it starts at once while ``workers`` <= the cluster's CPUs) is cancelled with
  ``ray.cancel(force=True)``, which kills its worker process, and retried once.
- An exception raised by ``fn`` (or by the initializer) is caught in the task and returned as text; it
  fails that job only, with no retry.
"""
from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from udpgen.shards.jobs import _POLL_S, RETRIES, Outcome, describe

__all__ = ["run_ray_jobs"]

_INITIALISED: dict = {"run": None}      # per Ray worker process: the run its initializer was called for


def _task(run: str, init: list, fn: Callable, job: Any) -> tuple[bool, Any]:
    """One job in a Ray worker process -> (True, fn(job)) or (False, error text). ``init`` is
    ``[ObjectRef of (initializer, initargs)]``: in a list, so that Ray does not fetch it for every task."""
    import ray

    try:
        if _INITIALISED["run"] != run:
            initializer, initargs = ray.get(init[0])
            if initializer is not None:
                initializer(*initargs)
            _INITIALISED["run"] = run
        return True, fn(job)
    except Exception as e:  # noqa: BLE001 - every failure of a job is reported, as text
        return False, describe(e)


def run_ray_jobs(jobs: Sequence, fn: Callable[[Any], Any], finish: Callable[[Outcome], None], *, workers: int,
                 timeout: float | None, initializer: Callable | None, initargs: tuple,
                 ray_address: str | None) -> None:
    """Run every job as a Ray task, at most ``max(workers, 1)`` at a time, calling ``finish(outcome)`` once
    per job as it is settled. Ray must be importable (checked by the caller)."""
    if not jobs:
        return
    import ray
    from ray.exceptions import RayError, RayTaskError

    started_here = not ray.is_initialized()
    if started_here:
        if ray_address is None:
            ray.init(include_dashboard=False)
        else:
            ray.init(address=ray_address)
    remote = ray.remote(num_cpus=1, max_retries=0)(_task)
    run = uuid.uuid4().hex
    init = [ray.put((initializer, initargs))]
    pending = deque(range(len(jobs)))
    attempts = [0] * len(jobs)
    running: dict = {}                      # ObjectRef -> (job index, submitted at)

    def lost(index: int, reason: str) -> None:
        if attempts[index] <= RETRIES:
            pending.appendleft(index)
        else:
            finish(Outcome(index, jobs[index], error=f"{reason} (tried {attempts[index]} times)",
                           attempts=attempts[index]))

    try:
        while pending or running:
            while pending and len(running) < max(workers, 1):
                index = pending.popleft()
                attempts[index] += 1
                running[remote.remote(run, init, fn, jobs[index])] = (index, time.monotonic())
            wait_s = _POLL_S
            if timeout is not None:
                now = time.monotonic()
                wait_s = max(0.0, min([_POLL_S] + [t0 + timeout - now for _, t0 in running.values()]))
            ready, _ = ray.wait(list(running), num_returns=1, timeout=wait_s)
            if ready:                       # and whatever else is done by now
                ready, _ = ray.wait(list(running), num_returns=len(running), timeout=0)
            for ref in ready:
                index, _ = running.pop(ref)
                try:
                    ok, value = ray.get(ref)
                except RayTaskError as e:   # not fn's own error (caught in the task): e.g. a result that won't pickle
                    finish(Outcome(index, jobs[index], error=describe(e.cause or e), attempts=attempts[index]))
                except RayError as e:       # the worker process (or its node) is gone
                    lost(index, f"the Ray worker died ({type(e).__name__}: killed, out of memory or a crash in a "
                                "native library)")
                else:
                    finish(Outcome(index, jobs[index], result=value if ok else None, error=None if ok else value,
                                   attempts=attempts[index]))
            if timeout is not None:
                now = time.monotonic()
                for ref, (index, t0) in list(running.items()):
                    if now - t0 > timeout:
                        ray.cancel(ref, force=True)     # kills its worker process; Ray starts a fresh one
                        del running[ref]
                        lost(index, f"the job ran past its timeout of {timeout:g} s")
    finally:
        for ref in running:                 # interrupted: leave no task running
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()
