"""A bounds-checked little-endian cursor over a file's bytes, shared by the PMX/PMD/VMD readers.

Every read names its field; any shortfall, bad count or undecodable text raises
:class:`udpgen.errors.FormatError` with the file, the byte offset and the field. Counts are checked
against the bytes that remain *before* anything is allocated, so a corrupt count can never ask for
gigabytes or loop for minutes.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from udpgen.errors import FormatError

_U8 = struct.Struct("<B")
_I8 = struct.Struct("<b")
_U16 = struct.Struct("<H")
_I16 = struct.Struct("<h")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_F32 = struct.Struct("<f")

# PMX index fields: (signed dtype, unsigned dtype) by byte size. Vertex indices of size 1 and 2 are
# unsigned (so 65535 vertices fit in 2 bytes); every other index is signed with -1 meaning "none".
INDEX_DTYPES = {1: (np.dtype("i1"), np.dtype("u1")), 2: (np.dtype("<i2"), np.dtype("<u2")),
                4: (np.dtype("<i4"), np.dtype("<i4"))}


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """Read a whole file, turning OS problems (missing, a directory, unreadable) into FormatError."""
    p = os.fspath(path)
    if os.path.isdir(p):
        raise FormatError(p, None, "", "is a directory, expected a file")
    try:
        with open(p, "rb") as f:
            return f.read()
    except OSError as e:
        raise FormatError(p, None, "", f"cannot read: {e.strerror or e}") from None


class BinaryReader:
    """Little-endian reader over ``data`` that raises FormatError naming ``path``, offset and field."""

    __slots__ = ("data", "path", "pos", "size")

    def __init__(self, data: bytes, path: str | os.PathLike | None = None):
        self.data = data
        self.path = os.fspath(path) if path is not None else None
        self.pos = 0
        self.size = len(data)

    # -- errors ---------------------------------------------------------------------------------
    def fail(self, field: str, reason: str, offset: int | None = None) -> FormatError:
        """Build (not raise) the error for ``field`` at ``offset`` (default: the cursor)."""
        return FormatError(self.path, self.pos if offset is None else offset, field, reason)

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def _need(self, n: int, field: str) -> int:
        pos = self.pos
        if n > self.size - pos:
            raise self.fail(field, f"needs {n} bytes, only {self.size - pos} left (file truncated?)")
        self.pos = pos + n
        return pos

    # -- scalars --------------------------------------------------------------------------------
    def _scalar(self, s: struct.Struct, field: str):
        pos = self._need(s.size, field)
        return s.unpack_from(self.data, pos)[0]

    def u8(self, field: str) -> int:
        return self._scalar(_U8, field)

    def i8(self, field: str) -> int:
        return self._scalar(_I8, field)

    def u16(self, field: str) -> int:
        return self._scalar(_U16, field)

    def i16(self, field: str) -> int:
        return self._scalar(_I16, field)

    def u32(self, field: str) -> int:
        return self._scalar(_U32, field)

    def i32(self, field: str) -> int:
        return self._scalar(_I32, field)

    def f32(self, field: str) -> float:
        return self._scalar(_F32, field)

    def unpack(self, s: struct.Struct, field: str) -> tuple:
        """Unpack a precompiled struct at the cursor."""
        pos = self._need(s.size, field)
        return s.unpack_from(self.data, pos)

    def floats(self, n: int, field: str) -> np.ndarray:
        """``n`` little-endian float32 values as a new (n,) float32 array."""
        return self.array(np.dtype("<f4"), n, field).astype(np.float32)

    def take(self, n: int, field: str) -> bytes:
        pos = self._need(n, field)
        return self.data[pos:pos + n]

    def skip(self, n: int, field: str) -> None:
        self._need(n, field)

    # -- counts and arrays ----------------------------------------------------------------------
    def count(self, field: str, item_size: int, *, width: int = 4, signed: bool = True) -> int:
        """Read an element count and check that ``count * item_size`` bytes could still follow.

        ``item_size`` is the smallest possible encoded size of one element (>= 1), so a corrupt count is
        rejected before anything is allocated or looped over.
        """
        offset = self.pos
        if width == 4:
            n = self.i32(field + ".count") if signed else self.u32(field + ".count")
        elif width == 2:
            n = self.u16(field + ".count")
        else:
            n = self.u8(field + ".count")
        if n < 0:
            raise self.fail(field + ".count", f"negative count {n}", offset)
        if n * max(item_size, 1) > self.remaining:
            raise self.fail(field + ".count",
                            f"count {n} needs at least {n * max(item_size, 1)} bytes, only {self.remaining} left",
                            offset)
        return n

    def array(self, dtype: np.dtype, count: int, field: str) -> np.ndarray:
        """``count`` elements of ``dtype`` (structured dtypes allowed) as a new, writable array."""
        dtype = np.dtype(dtype)
        pos = self._need(dtype.itemsize * count, field)
        return np.frombuffer(self.data, dtype=dtype, count=count, offset=pos).copy()

    def index(self, size: int, field: str, *, unsigned: bool = False) -> int:
        """One PMX index of ``size`` bytes (1, 2 or 4)."""
        if size == 4:
            return self._scalar(_I32, field)
        if size == 2:
            return self._scalar(_U16 if unsigned else _I16, field)
        return self._scalar(_U8 if unsigned else _I8, field)

    # -- text -----------------------------------------------------------------------------------
    def text(self, encoding: str, field: str) -> str:
        """A PMX text: int32 byte length, then that many bytes in ``encoding``."""
        offset = self.pos
        n = self.count(field, 1)
        raw = self.take(n, field)
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise self.fail(field, f"invalid {encoding} text ({e.reason} at byte {e.start} of {n})",
                            offset) from None

    def fixed_bytes(self, n: int, field: str) -> bytes:
        """A NUL-padded fixed-width byte string, cut at the first NUL (PMD/VMD names)."""
        raw = self.take(n, field)
        end = raw.find(b"\0")
        return raw if end < 0 else raw[:end]

    def fixed_text(self, n: int, field: str, *, truncated: bool = False) -> str:
        """A NUL-padded fixed-width cp932 string; see :func:`decode_cp932`."""
        offset = self.pos
        raw = self.fixed_bytes(n, field)
        try:
            return decode_cp932(raw, truncated=truncated)
        except UnicodeDecodeError as e:
            raise self.fail(field, f"invalid cp932 text {raw!r} ({e.reason})", offset) from None


def decode_cp932(raw: bytes, *, truncated: bool = False) -> str:
    """Decode Shift-JIS as Windows writes it (cp932, not shift_jis: MMD files use its extensions).

    With ``truncated`` the string may have been cut mid-character by a fixed-width field (VMD names are
    15-byte truncations), so a dangling lead byte at the end is dropped rather than rejected.
    """
    try:
        return raw.decode("cp932")
    except UnicodeDecodeError as e:
        if truncated and e.start == len(raw) - 1:
            return raw[:-1].decode("cp932")
        raise


def encode_cp932(text: str, width: int, field: str = "name") -> bytes:
    """Encode ``text`` as cp932 into a fixed field of ``width`` bytes, truncating like MMD does.

    MMD cuts at the byte boundary; a double-byte character split by the cut keeps only its lead byte.
    Characters cp932 cannot encode raise ValueError naming ``field``.
    """
    try:
        raw = text.encode("cp932")
    except UnicodeEncodeError as e:
        raise ValueError(f"{field}: {text!r} has a character cp932 cannot encode ({e.object[e.start:e.end]!r})") from None
    raw = raw[:width]
    return raw + b"\0" * (width - len(raw))
