"""Background shards (DESIGN 3.6): ``bg-%06d.tar`` of ``{key}.png|jpg`` members, for compositing.

Two steps, as the other shard commands: :func:`plan_jobs` walks the inputs once in this process, because
near-duplicate drops and key clashes depend on every earlier image (:func:`udpgen.backgrounds.sets.iter_sources`);
each shard is then one independent job on :func:`udpgen.shards.jobs.run_jobs` (processes or Ray): it
makes its backgrounds with :func:`udpgen.backgrounds.sets.make_background`, whose crop is seeded by
(seed, place in the set) alone, so the bytes depend neither on the workers nor on the distributor. A rerun
goes through the one resume rule (:func:`udpgen.shards.jobs.check_resume`).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from udpgen.backgrounds.sets import Source, iter_sources, list_inputs, make_background
from udpgen.errors import UdpgenError
from udpgen.shards import BackgroundWriter, read_stats, shard_name
from udpgen.shards.folder import size_or_missing
from udpgen.shards.schema import json_bytes

__all__ = ["BackgroundJob", "plan_jobs", "run_job", "write_background_shards"]


@dataclass(frozen=True)
class BackgroundJob:
    """One shard: its index and name, the backgrounds it holds, the unreadable inputs it records
    (({path, reason}): those met after the previous shard's last background, trailing ones in the last
    shard) and its plan hash (everything its bytes depend on)."""
    index: int
    name: str
    sources: tuple[Source, ...]
    failures: tuple[tuple[str, str], ...]
    plan: str


def plan_jobs(paths: list[Path] | None, builtin: bool, size: int, seed: int, per_shard: int, fmt: str,
              report: Callable[[str], None] | None = None) -> tuple[list[BackgroundJob], int, int]:
    """Read every input once (to hash it) -> (jobs, number of user files, near-duplicates dropped).
    Raises UdpgenError when no background is left."""
    sources: list[Source] = []
    failed: list[tuple[int, str, str]] = []         # (backgrounds before it, path, reason)

    def on_error(path, exc) -> None:
        reason = str(exc).removeprefix(f"{path}: ")
        failed.append((len(sources), str(path), reason))
        if report is not None:
            report(f"{path}: {reason}")

    files = list_inputs(paths) if paths else []           # walked once: iter_sources takes the files as given
    for src, _ in iter_sources(files, builtin=builtin, on_error=on_error):
        sources.append(src)
    if not sources:
        raise UdpgenError(f"no background could be read ({len(failed)} file(s) failed)")
    n_user = len(files)
    dropped = n_user - len(failed) - sum(s.kind == "file" for s in sources)
    n_shards = -(-len(sources) // per_shard)
    jobs = []
    for i in range(n_shards):
        part = tuple(sources[i * per_shard:(i + 1) * per_shard])
        fails = tuple((p, r) for before, p, r in failed if min(before // per_shard, n_shards - 1) == i)
        # File names and sizes, not where the folder lives: the same photos give the same plan.
        plan = hashlib.sha256(json_bytes({
            "sources": [[s.key, s.kind, Path(s.ref).name if s.kind == "file" else s.ref,
                         size_or_missing(Path(s.ref)) if s.kind == "file" else 0, s.index] for s in part],
            "failures": [Path(p).name for p, _ in fails], "size": size, "seed": seed, "format": fmt})).hexdigest()
        jobs.append(BackgroundJob(i, shard_name("bg", i), part, fails, plan))
    return jobs, n_user, dropped


def run_job(job: BackgroundJob, out_dir: Path, size: int, seed: int, fmt: str, settings: dict) -> dict:
    """Write one shard -> its stats. An input that has become unreadable since planning is recorded as a
    failure of this shard, like those found while planning."""
    with BackgroundWriter(out_dir, job.index) as w:
        for path, reason in job.failures:
            w.fail(path, reason)
        for src in job.sources:
            try:
                img = make_background(src, size, seed)
            except (UdpgenError, OSError, ValueError) as e:
                w.fail(src.ref, str(e).removeprefix(f"{src.ref}: "))
                continue
            w.write(src.key, img, ext=fmt)
        w.extra = {"source": "backgrounds", "plan_sha256": job.plan, "settings": settings}
    return read_stats(out_dir, job.name)


def _run_job_in_worker(args) -> dict:
    return run_job(*args)


def write_background_shards(paths: list[Path] | None, builtin: bool, out_dir: Path, size: int, seed: int,
                            per_shard: int, fmt: str = "png", progress: Callable[[int], None] | None = None,
                            report: Callable[[str], None] | None = None, *, workers: int = 1,
                            distributor: str = "processes", ray_address: str | None = None,
                            overwrite: bool = False, retry_failed: bool = False,
                            timeout: float | None = None) -> dict:
    """Fit backgrounds (user ``paths`` in sorted order, then the built-in set when ``builtin``) to
    ``size`` with seeded crops, drop near-duplicates and write ``bg-%06d.tar`` shards of ``per_shard``
    backgrounds as ``{key}.{fmt}``, each shard a job of :func:`udpgen.shards.jobs.run_jobs`.

    An unreadable file is reported, recorded as a failure of the shard that takes the next background
    (the last shard for trailing ones) and skipped. A rerun keeps the committed shards of the same plan
    and refuses others naming the settings that differ (``overwrite`` replaces them; ``retry_failed``
    redoes shards that record failures). ``progress(n)`` advances by the backgrounds of each finished
    shard. Returns {backgrounds, shards, written, skipped, failed, failures, duplicates_dropped,
    shards_failed}."""
    from udpgen.shards.jobs import check_distributor, check_resume, run_jobs

    if per_shard < 1 or fmt not in ("png", "jpg"):
        raise UdpgenError("--per-shard must be at least 1 and --format png or jpg")
    check_distributor(distributor, ray_address)          # before any input is read
    settings = {"size": size, "seed": seed, "per_shard": per_shard, "format": fmt, "builtin": builtin}
    jobs, n_user, dropped = plan_jobs(paths, builtin, size, seed, per_shard, fmt, report)
    todo = set(check_resume(out_dir, {j.name: j.plan for j in jobs}, settings, splits=("bg",),
                            overwrite=overwrite, retry_failed=retry_failed))
    run = [j for j in jobs if j.name in todo]
    if progress is not None:
        progress(sum(len(j.sources) + len(j.failures) for j in jobs if j.name not in todo) + dropped)

    def on_done(o) -> None:
        if progress is not None:
            progress(len(o.job[0].sources) + len(o.job[0].failures))

    # On Ray the output folder is absolute: a worker on another node does not share this working directory
    where = Path(out_dir).absolute() if distributor == "ray" else Path(out_dir)
    outcomes = run_jobs([(j, where, size, seed, fmt, settings) for j in run], _run_job_in_worker,
                        workers=workers, timeout=timeout, on_done=on_done, distributor=distributor,
                        ray_address=ray_address)
    shards_failed = [{"shard": o.job[0].name, "reason": o.error} for o in outcomes if not o.ok]
    for f in shards_failed:
        if report is not None:
            report(f"{Path(out_dir) / f['shard']}: {f['reason']} (a rerun retries it)")
    lost = {f["shard"] for f in shards_failed}
    failures = [f for j in jobs if j.name not in lost for f in read_stats(out_dir, j.name)["failures"]]
    return {"backgrounds": sum(len(j.sources) for j in jobs), "shards": len(jobs),
            "written": len(run) - len(lost), "skipped": len(jobs) - len(run),
            "failed": len(failures) + len(lost), "failures": failures, "duplicates_dropped": dropped,
            "shards_failed": shards_failed}
