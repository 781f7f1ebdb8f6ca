"""Rendered views as files: the shard formats (16-bit PNG UDP + 8-bit PNG RGBA), npz, camera JSON, previews.

Every file is written atomically (temp file + rename, :mod:`udpgen.io.atomic`), so an interrupted run leaves
whole files or none.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from udpgen.io.atomic import write_bytes_atomic
from udpgen.errors import UdpgenError
from udpgen.shards import encode_rgba

__all__ = ["write_view", "preview_sheet", "FORMATS"]

FORMATS = ("png", "npz")


def write_view(out_dir: str | os.PathLike, stem: str, result, fmt: str = "png", meta: dict | None = None) -> list[Path]:
    """Write one RenderResult as ``{stem}.rgba.png`` + ``{stem}.udp.png`` (16-bit, :func:`udpgen.io.udp.encode_png16`)
    or ``{stem}.udp.npz`` (the official CoNR layout, key ``i``), and ``{stem}.json`` (camera, coverage,
    ``meta``). Returns the paths written."""
    from udpgen.io import udp as U

    if fmt not in FORMATS:
        raise UdpgenError(f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})")
    out = Path(out_dir)
    paths = [out / f"{stem}.rgba.png"]
    write_bytes_atomic(paths[0], encode_rgba(result.rgba))
    if fmt == "png":
        paths.append(out / f"{stem}.udp.png")
        write_bytes_atomic(paths[-1], U.encode_png16(result.udp))
    else:
        paths.append(out / f"{stem}.udp.npz")
        U.to_npz(result.udp, paths[-1])
    paths.append(out / f"{stem}.json")
    doc = {"camera": result.camera, "coverage": result.coverage, **(meta or {})}
    write_bytes_atomic(paths[-1], (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))
    return paths


def preview_sheet(pairs: list[tuple[str, np.ndarray, np.ndarray]], columns: int = 4, cell: int = 160) -> np.ndarray:
    """[(label, rgba (H, W, 4) uint8, udp (H, W, 4) float32)] -> (h, w, 3) uint8 RGB sheet: each view's colour
    image (over a checkerboard) beside its UDP visualisation."""
    from udpgen.io import udp as U
    from udpgen.io.sheet import contact_sheet

    images, labels = [], []
    for label, rgba, udp in pairs:
        images += [rgba, U.visualise(udp)]
        labels += [label, ""]
    return contact_sheet(images, columns=2 * max(1, columns), labels=labels, cell=(cell, cell))
