"""Atomic file writes: a reader (or a rerun after a crash) sees the old file or the whole new one, never part."""
from __future__ import annotations

import os


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through ``path + '.tmp'`` and :func:`os.replace`; the temp file is removed
    if anything fails."""
    final = os.fspath(path)
    tmp = final + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, final)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
