"""Contact sheets of shards for a person to look at: each view's RGBA beside its visualised UDP."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from udpgen.io.atomic import write_bytes_atomic
from udpgen.errors import UdpgenError


def _tars(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    from udpgen.shards import list_shards

    tars = [Path(p) for split in ("train", "val") for p in list_shards(path, split)]
    tars = tars or sorted(p for p in path.glob("*.tar"))
    if not tars:
        raise UdpgenError(f"{path}: no shards (*.tar) found")
    return tars


def preview_sheet(path: str | Path, samples: int = 4, views: int = 4, cell: int = 128) -> np.ndarray:
    """Contact sheet of the first ``samples`` samples of a shard (or of a directory's shards): one row per
    sample, each view as its RGBA next to its visualised UDP (a blank cell when unlabelled); for a
    background shard, the first ``samples * views`` backgrounds. -> (H, W, 3) uint8 RGB."""
    from udpgen import shards
    from udpgen.io import udp
    from udpgen.io.sheet import contact_sheet

    images, labels = [], []
    tars = _tars(Path(path))
    if tars[0].name.startswith("bg-"):
        for tar in tars:
            for key, img in shards.iter_backgrounds(tar):
                images.append(img)
                labels.append(key)
                if len(images) >= samples * views:
                    return contact_sheet(images, views, labels, cell=(cell, cell))
        return contact_sheet(images, views, labels, cell=(cell, cell))
    n = 0
    for tar in tars:
        for s in shards.iter_samples(tar):
            for i in range(views):
                v = s.views[i] if i < len(s.views) else None
                h, w = (v.rgba.shape[:2]) if v is not None else (cell, cell)
                empty = np.full((h, w, 3), 48, np.uint8)        # the page colour: an empty cell
                images += [v.rgba if v is not None else empty,
                           udp.visualise(v.udp, alpha=True) if v is not None and v.udp is not None else empty]
                labels += [f"{s.key}.{i:03d}" if v is not None else "",
                           "" if v is None else "udp" if v.labelled else "unlabelled"]
            n += 1
            if n >= samples:
                break
        if n >= samples:
            break
    if not images:
        raise UdpgenError(f"{path}: no samples to preview")
    return contact_sheet(images, 2 * views, labels, cell=(cell, cell))


def write_preview(path: str | os.PathLike, out: str | os.PathLike, samples: int = 4, views: int = 4,
                  cell: int = 128) -> np.ndarray:
    """Write :func:`preview_sheet` of ``path`` as a PNG at ``out`` (atomically); returns the sheet."""
    sheet = preview_sheet(path, samples, views, cell)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(sheet[..., ::-1]))
    if not ok:
        raise UdpgenError(f"{out}: cannot encode the sheet")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, buf.tobytes())
    return sheet
