"""The shard folder: which shards are committed, sizes.json and manifest.json."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np

from udpgen.io.atomic import write_bytes_atomic

from .schema import SCHEMA, SHARD_RE, json_bytes, shard_name


def size_or_missing(p: str | os.PathLike | None) -> int:
    """File size, -1 for a missing (or None) file: part of a job's plan, so an edited input changes it."""
    return Path(p).stat().st_size if p is not None and Path(p).is_file() else -1


def is_complete(out_dir: str | os.PathLike, split: str, index: int) -> bool:
    """True when the shard's tar and its stats.json (the commit marker) both exist: a job skips it."""
    name = shard_name(split, index)
    return (Path(out_dir) / name).is_file() and (Path(out_dir) / name.replace(".tar", ".stats.json")).is_file()


def list_shards(out_dir: str | os.PathLike, split: str) -> list[str]:
    """Sorted paths of the committed shards of ``split`` ('train', 'val', 'bg', ...) in ``out_dir``."""
    d = Path(out_dir)
    return [str(p) for p in sorted(d.glob(f"{split}-*.tar"))
            if SHARD_RE.match(p.name) and p.with_name(p.name.replace(".tar", ".stats.json")).is_file()]


def _committed(d: Path) -> dict[str, dict]:
    """{shard name: its stats} for every committed shard."""
    out = {}
    for p in sorted(d.glob("*.stats.json")):
        tar = p.with_name(p.name.replace(".stats.json", ".tar"))
        if SHARD_RE.match(tar.name) and tar.is_file():
            out[tar.name] = json.loads(p.read_text())
    return out


def write_sizes(out_dir: str | os.PathLike) -> dict[str, int]:
    """Write ``sizes.json`` = {shard file name: sample count} over the committed shards; return it."""
    sizes = {name: int(s["samples"]) for name, s in _committed(Path(out_dir)).items()}
    write_bytes_atomic(Path(out_dir) / "sizes.json", json_bytes(sizes, indent=1))
    return sizes


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    import udpgen
    try:
        wds = metadata.version("webdataset")
    except metadata.PackageNotFoundError:
        wds = "absent"
    return {"python": platform.python_version(), "numpy": np.__version__, "cv2": cv2.__version__,
            "webdataset": wds, "udpgen": udpgen.__version__}


def write_manifest(out_dir: str | os.PathLike, config: dict, seed: int | None) -> dict:
    """Write ``manifest.json``: format, schema, config, seed, package versions, and per committed shard its
    sha256, bytes and samples. No timestamps: same inputs, same manifest.

    Checksums come from each shard's stats.json (hashed as the tar was written), so a run, or each of a
    cluster's array jobs, does not read the whole dataset back at its end; ``udpgen verify`` compares both
    with the files. Stats without a checksum (written by other tools) are hashed from the file."""
    d = Path(out_dir)
    shards = {}
    for name, s in _committed(d).items():
        sha, size = s.get("sha256"), s.get("bytes")
        if not (isinstance(sha, str) and isinstance(size, int)):
            sha, size = sha256_file(d / name), (d / name).stat().st_size
        shards[name] = {"sha256": sha, "bytes": size, "samples": int(s["samples"])}
    manifest = {"format": "udpgen-shards", "schema": SCHEMA, "config": config, "seed": seed,
                "versions": package_versions(), "shards": shards}
    write_bytes_atomic(d / "manifest.json", json_bytes(manifest, indent=1))
    return manifest


def read_stats(out_dir: str | os.PathLike, name: str) -> dict:
    """The stats.json of committed shard ``name`` (e.g. 'train-000003.tar') in ``out_dir``."""
    return json.loads((Path(out_dir) / name.replace(".tar", ".stats.json")).read_text())


def update_directory(out_dir: str | os.PathLike, section: str, config: dict, seed: int | None = None) -> None:
    """sizes.json and manifest.json over every committed shard. The manifest's config keeps one entry per
    command (``backgrounds``, ``handdrawn``), so both kinds of shards can share a directory."""
    out_dir = Path(out_dir)
    write_sizes(out_dir)
    try:
        cfg = json.loads((out_dir / "manifest.json").read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        cfg = {}
    merged = {k: v for k, v in cfg.items() if k in ("backgrounds", "handdrawn")} if isinstance(cfg, dict) else {}
    merged[section] = config
    if seed is None and isinstance(merged.get("backgrounds"), dict):
        seed = merged["backgrounds"].get("seed")
    write_manifest(out_dir, merged, seed)
