"""Background shards (DESIGN 3.6): ``bg-%06d.tar`` of ``{key}.png|jpg`` members, for compositing.

One streaming job rather than independent shard jobs: each crop and near-duplicate decision depends on every
earlier image (:func:`udpgen.backgrounds.sets.iter_backgrounds`), so shards are written in order, and a rerun
replays the stream, skipping the committed shards with the same plan.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from udpgen.backgrounds.sets import iter_backgrounds, list_inputs
from udpgen.errors import UdpgenError
from udpgen.shards import BackgroundWriter, is_complete, list_shards, read_stats, shard_name
from udpgen.shards.folder import size_or_missing
from udpgen.shards.schema import json_bytes

__all__ = ["write_background_shards"]


def _drain(pending: list, writer) -> list:
    out = list(pending)
    for path, reason in out:
        if writer is not None:
            writer.fail(path, reason)
    pending.clear()
    return out


def write_background_shards(paths: list[Path] | None, builtin: bool, out_dir: Path, size: int, seed: int,
                            per_shard: int, fmt: str = "png", progress: Callable[[int], None] | None = None,
                            report: Callable[[str], None] | None = None) -> dict:
    """Fit backgrounds (user ``paths`` in sorted order, then the built-in set when ``builtin``) to
    ``size`` with seeded crops, drop near-duplicates (:func:`udpgen.backgrounds.sets.iter_backgrounds`) and
    write ``bg-%06d.tar`` shards of ``per_shard`` backgrounds as ``{key}.{fmt}``.

    An unreadable file is reported, recorded as a failure of the shard that takes the next background
    (the last shard for trailing ones) and skipped. Committed shards with the same plan are skipped, but
    every input is still read: each crop and duplicate decision depends on all earlier images.
    Returns {backgrounds, shards, written, skipped, failed, failures, duplicates_dropped, plan}."""
    if per_shard < 1 or fmt not in ("png", "jpg"):
        raise UdpgenError("--per-shard must be at least 1 and --format png or jpg")
    files = list_inputs(paths) if paths else []
    # File names, order and sizes, not where the folder lives: the same photos give the same plan.
    plan = hashlib.sha256(json_bytes({"files": [[f.name, size_or_missing(f)] for f in files], "builtin": builtin,
                                       "size": size, "seed": seed, "per_shard": per_shard, "format": fmt})
                          ).hexdigest()
    for path in list_shards(out_dir, "bg"):
        if read_stats(out_dir, Path(path).name).get("plan_sha256") != plan:
            raise UdpgenError(f"{path} was written by another run (other inputs or settings); use a new --out, "
                              "or delete the old bg-*.tar to redo them")
    pending: list[tuple[str, str]] = []

    def on_error(path, exc) -> None:
        reason = str(exc).removeprefix(f"{path}: ")
        pending.append((str(path), reason))
        if report is not None:
            report(f"{path}: {reason}")
        if progress is not None:
            progress(1)

    user = [0]

    def stream():
        if files:
            for item in iter_backgrounds(files, size, seed, on_error=on_error):
                user[0] += 1
                yield item
        if builtin:
            yield from iter_backgrounds(None, size, seed, on_error=on_error)

    # A committed shard gets writer None: the stream is still replayed (crops and duplicate drops depend
    # on everything before), nothing is written. A shard is committed when the next one opens, so
    # failures between two backgrounds go to the shard of the later one, trailing ones to the last.
    keys: set[str] = set()
    writer, index, count, written, failures = None, -1, 0, [], []
    try:
        for key, img in stream():
            if count % per_shard == 0:
                if writer is not None:
                    writer.commit()
                    written.append(index)
                index += 1
                writer = None if is_complete(out_dir, "bg", index) else BackgroundWriter(out_dir, index)
                if writer is None:
                    (out_dir / (shard_name("bg", index) + ".tmp")).unlink(missing_ok=True)
                else:
                    writer.open()
                    writer.extra = {"source": "backgrounds", "plan_sha256": plan}
            failures += _drain(pending, writer)
            k, n = key, 1
            while k in keys:      # a user file named like a built-in one
                k, n = f"{key}_{n}", n + 1
            keys.add(k)
            if writer is not None:
                writer.write(k, img, ext=fmt)
            count += 1
            if progress is not None:
                progress(1)
        failures += _drain(pending, writer)
        if writer is not None:
            writer.commit()
            written.append(index)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    names = {str(f) for f in files}
    if count == 0:
        raise UdpgenError(f"no background could be read ({len(failures)} file(s) failed)")
    return {"backgrounds": count, "shards": index + 1, "written": len(written), "skipped": index + 1 - len(written),
            "failed": len(failures), "failures": [{"key": p, "reason": r} for p, r in failures],
            "duplicates_dropped": len(files) - sum(p in names for p, _ in failures) - user[0],
            "plan": plan}
