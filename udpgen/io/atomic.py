"""Atomic file writes: a reader (or a rerun after a crash) sees the old file or the whole new one, never part."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager

_UMASK = os.umask(0o022)
os.umask(_UMASK)                 # read the process umask (mkstemp's files are 0600, not what users expect)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp"):
    """``with atomic_path(final) as tmp: write(tmp)``: for writers that need a file name (a streaming encoder,
    ``torch.save``, a tar writer). ``tmp`` is a unique name in the same folder (``suffix`` last, for tools
    that pick a format by extension); it replaces ``path`` when the block ends cleanly and is removed when
    it raises."""
    final = os.fspath(path)
    folder, name = os.path.split(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder or ".")
    os.fchmod(fd, 0o666 & ~_UMASK)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a uniquely named temp file in the same folder and
    :func:`os.replace` (so concurrent writers of one path cannot collide); the temp file is removed if
    anything fails."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
