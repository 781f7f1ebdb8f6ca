"""The UDP image contract (DESIGN 3.4): encode, decode, import, export, check and look at UDP images.

A UDP image in memory is ``(H, W, 4) float32`` = (x, y, z, occupancy): x, y, z are the canonical landmark
of the surface seen at the pixel (DESIGN 3.3), each in [0, 1]; occupancy is exactly 0 or 1; every channel
of a background pixel is 0.

Files:

* shards: 16-bit PNG whose *file* channels are R, G, B, A = x, y, z, occupancy, each ``round(v * 65535)``
  (:func:`encode_png16` / :func:`decode_png16`; round-trip error <= 0.5 / 65535 < 1e-5). OpenCV's codecs
  work in BGR(A) order, so the channels are swapped at this edge and nowhere else.
* interop with the official CoNR code (megvii-research/CoNR, ``data_loader.py``): ``.npz`` with key ``i``
  holding ``(H, W, 4)`` float in [0, 1], channel 3 the occupancy mask (its loader does
  ``np.load(f)['i'].astype(np.float32)``, asserts 4 channels, and takes channel 3 as the mask), and
  ``.exr`` read with ``cv2.imdecode(..., IMREAD_UNCHANGED)`` then ``COLOR_BGRA2RGBA`` (float32 EXR,
  R, G, B, A = x, y, z, occupancy). ``axes`` picks which landmark axis goes into file channels 0..2
  (``'xzy'``: channel 1 holds z), for tools whose landmark frame is ordered differently.
* EXR needs an OpenCV built with OpenEXR *and* the environment variable ``OPENCV_IO_ENABLE_OPENEXR=1``,
  set before ``cv2`` is imported (OpenCV 4.10 reads it at the first EXR use and caches the answer, so
  "before the import" is the rule that always works; it is off by default because of past security bugs
  in the EXR decoder). :func:`exr_supported` says whether this process can do it;
  udpgen never sets the variable itself. The opencv-python-headless 5.0 wheel has no OpenEXR at all.
"""
from __future__ import annotations

import io
import os
import struct
from functools import lru_cache

import cv2
import numpy as np

from udpgen.io.atomic import write_bytes_atomic
from udpgen.io.sheet import checkerboard
from udpgen.errors import FormatError

__all__ = ["encode_png16", "decode_png16", "png_header", "to_npz", "from_npz", "exr_supported", "encode_exr",
           "decode_exr", "save", "load", "validate", "visualise", "MAX_PIXELS"]

MAX_PIXELS = 16384 * 16384   # refuse a PNG header declaring more (a tiny file can claim a huge canvas)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}   # PNG colour type -> channel count (3 = palette)


def _check_array(udp: np.ndarray, what: str = "udp") -> np.ndarray:
    """Shape/dtype/finite/range check for encoders: programming errors, so ValueError."""
    a = np.asarray(udp)
    if a.ndim != 3 or a.shape[2] != 4 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{what} must be (H, W, 4), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{what} must be float (float32 in [0, 1]), got {a.dtype}")
    lo, hi = a.min(), a.max()
    if lo >= 0.0 and hi <= 1.0:        # NaN fails both comparisons: one pass instead of isfinite() + range
        return a
    if not np.isfinite(a).all():
        raise ValueError(f"{what} has {int((~np.isfinite(a)).sum())} non-finite values")
    raise ValueError(f"{what} values must be in [0, 1], got [{lo}, {hi}]")


def _axes_perm(axes: str) -> list[int]:
    """'xzy' -> [0, 2, 1]: file channel k holds landmark axis perm[k]."""
    if not isinstance(axes, str) or sorted(axes.lower()) != ["x", "y", "z"]:
        raise ValueError(f"axes must be a permutation of 'xyz', got {axes!r}")
    return ["xyz".index(c) for c in axes.lower()]


def _to_file_order(udp: np.ndarray, axes: str) -> np.ndarray:
    return udp[..., _axes_perm(axes) + [3]]


def _from_file_order(arr: np.ndarray, axes: str) -> np.ndarray:
    out = np.empty_like(arr)
    out[..., _axes_perm(axes) + [3]] = arr
    return out


# ---------------------------------------------------------------------------------------------- PNG16

# PNG encoder settings for rendered images (UDP and RGBA): zlib level 1 with its run-length strategy and the
# "Up" row filter for every row. Renders are smooth surfaces on a flat transparent background; libpng's
# default adaptive filter choice tries every filter on every row and costs 2.5-3x the time for files only
# 0-10% smaller (measured on Gene and the sample at 256 px: 16-bit UDP 1.7 ms vs 5.2 ms per image).
# (OpenCV < 4.11 has no filter flag: it then picks filters per row, slower, same pixels.)
PNG_FAST = (cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE) + (
    (cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP) if hasattr(cv2, "IMWRITE_PNG_FILTER") else ())


def encode_png16(udp: np.ndarray) -> bytes:
    """(H, W, 4) float in [0, 1] -> bytes of a 16-bit RGBA PNG (R, G, B, A = x, y, z, occupancy, each
    ``round(v * 65535)``). Deterministic for the same input and OpenCV/zlib build. Raises ValueError on a
    wrong shape, dtype or range (use :func:`validate` for the full contract)."""
    a = _check_array(udp)
    # float64 so that v * 65535 is exact before rounding (float32 has ~0.004 spacing near 65535).
    u16 = np.rint(a.astype(np.float64) * 65535.0).astype(np.uint16)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(u16, cv2.COLOR_RGBA2BGRA), PNG_FAST)
    if not ok:
        raise RuntimeError("cv2.imencode failed for a 16-bit PNG")
    return buf.tobytes()


def png_header(data: bytes, name: str | None = None) -> tuple[int, int, int, int]:
    """Read a PNG's IHDR -> (height, width, bit_depth, channels) without decoding; FormatError if not a PNG."""
    if len(data) < 33 or data[:8] != _PNG_MAGIC or data[12:16] != b"IHDR":
        raise FormatError(name, 0, "header.magic", "not a PNG file")
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    if ctype not in _PNG_CHANNELS:
        raise FormatError(name, 25, "header.color_type", f"invalid PNG colour type {ctype}")
    if w == 0 or h == 0 or w * h > MAX_PIXELS:
        raise FormatError(name, 16, "header.size", f"{w}x{h} is empty or over the limit of {MAX_PIXELS} pixels")
    return h, w, depth, _PNG_CHANNELS[ctype]


def decode_png16(data: bytes, name: str | None = None) -> np.ndarray:
    """Bytes of a 16-bit RGBA PNG -> (H, W, 4) float32 in [0, 1] (value / 65535). ``name`` (a path or
    member name) only labels errors. Raises FormatError for anything else: an 8-bit or palette PNG
    (``header.bit_depth``), a PNG without exactly 4 channels (``header.channels``), a broken file."""
    h, w, depth, channels = png_header(data, name)
    if depth != 16:
        raise FormatError(name, 24, "header.bit_depth", f"bit depth {depth}, expected 16 (a UDP PNG is 16-bit)")
    if channels != 4:
        raise FormatError(name, 25, "header.channels", f"{channels} channel(s), expected 4 (RGBA = x, y, z, occupancy)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16 or img.shape != (h, w, 4):
        got = "nothing" if img is None else f"{img.shape} {img.dtype}"
        raise FormatError(name, None, "data", f"cannot decode the image data (got {got})")
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA).astype(np.float32) / np.float32(65535.0)


# ---------------------------------------------------------------------------------------------- NPZ

def to_npz(udp: np.ndarray, path: str | os.PathLike, axes: str = "xyz") -> None:
    """Write ``udp`` (H, W, 4) float in [0, 1] as the official CoNR ``.npz``: key ``i``, (H, W, 4) float32,
    channels (``axes`` permutation of x, y, z, then occupancy). Written atomically and compressed."""
    a = _to_file_order(_check_array(udp).astype(np.float32), axes)
    buf = io.BytesIO()
    np.savez_compressed(buf, i=a)
    write_bytes_atomic(path, buf.getvalue())


def from_npz(path: str | os.PathLike, axes: str = "xyz") -> np.ndarray:
    """Read an official-CoNR style ``.npz`` (key ``i``, (H, W, 4) float in [0, 1]) -> (H, W, 4) float32 in
    udpgen's (x, y, z, occupancy) order. Pickled arrays are refused (the official loader allows them;
    we do not execute code from data files). Values within 1e-6 outside [0, 1] are clipped."""
    _axes_perm(axes)  # fail on a bad axes argument before touching the file
    try:
        with np.load(path, allow_pickle=False) as z:
            if "i" not in z.files:
                raise FormatError(path, None, "i", f"no array 'i' (keys: {sorted(z.files)})")
            a = z["i"]
    except FormatError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise FormatError(path, None, "", f"not a readable .npz: {e}") from None
    if a.ndim != 3 or a.shape[2] != 4:
        raise FormatError(path, None, "i", f"shape {a.shape}, expected (H, W, 4)")
    if not np.issubdtype(a.dtype, np.floating):
        raise FormatError(path, None, "i", f"dtype {a.dtype}, expected float")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise FormatError(path, None, "i", f"{int((~np.isfinite(a)).sum())} non-finite values")
    if a.min(initial=0) < -1e-6 or a.max(initial=0) > 1 + 1e-6:
        raise FormatError(path, None, "i", f"values outside [0, 1]: [{a.min()}, {a.max()}]")
    return _from_file_order(np.clip(a, 0.0, 1.0), axes)


# ---------------------------------------------------------------------------------------------- EXR

@lru_cache(maxsize=1)
def exr_supported() -> bool:
    """True when this process's OpenCV can write and read EXR (built with OpenEXR and
    ``OPENCV_IO_ENABLE_OPENEXR=1`` set before cv2 was imported). Checked once by a 1-pixel round trip."""
    try:
        ok, buf = cv2.imencode(".exr", np.zeros((1, 1, 4), np.float32))
        return bool(ok) and cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) is not None
    except cv2.error:
        return False


def _require_exr() -> None:
    if not exr_supported():
        built = any("OpenEXR" in l and "NO" not in l for l in cv2.getBuildInformation().splitlines())
        hint = ("set OPENCV_IO_ENABLE_OPENEXR=1 before Python imports cv2" if built else
                f"this OpenCV {cv2.__version__} was built without OpenEXR; use .npz or an OpenCV with EXR")
        raise FormatError(None, None, "exr", f"EXR is not available: {hint}")


def encode_exr(udp: np.ndarray, axes: str = "xyz") -> bytes:
    """(H, W, 4) float in [0, 1] -> bytes of a float32 RGBA EXR (channels as in :func:`to_npz`).
    Raises FormatError when EXR is unavailable (see :func:`exr_supported`)."""
    _require_exr()
    a = _to_file_order(_check_array(udp).astype(np.float32), axes)
    ok, buf = cv2.imencode(".exr", np.ascontiguousarray(a[..., [2, 1, 0, 3]]),
                           [cv2.IMWRITE_EXR_TYPE, cv2.IMWRITE_EXR_TYPE_FLOAT])
    if not ok:
        raise RuntimeError("cv2.imencode failed for EXR")
    return buf.tobytes()


def decode_exr(data: bytes, axes: str = "xyz", name: str | None = None) -> np.ndarray:
    """Bytes of a 4-channel EXR -> (H, W, 4) float32 (x, y, z, occupancy), as the official loader reads it."""
    _require_exr()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FormatError(name, None, "data", "cannot decode as EXR")
    if img.ndim != 3 or img.shape[2] != 4:
        raise FormatError(name, None, "header.channels", f"shape {img.shape}, expected (H, W, 4)")
    a = np.clip(img[..., [2, 1, 0, 3]].astype(np.float32), 0.0, 1.0)
    return _from_file_order(a, axes)


# --------------------------------------------------------------------------------- files by extension

def save(path: str | os.PathLike, udp: np.ndarray, axes: str = "xyz") -> None:
    """Write ``udp`` by extension: ``.png`` (16-bit, always xyz order: the shard contract), ``.npz``, ``.exr``."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".png":
        if axes != "xyz":
            raise ValueError("16-bit PNG UDPs are always in xyz order; use .npz or .exr for another order")
        write_bytes_atomic(path, encode_png16(udp))
    elif ext == ".npz":
        to_npz(udp, path, axes)
    elif ext == ".exr":
        write_bytes_atomic(path, encode_exr(udp, axes))
    else:
        raise ValueError(f"unknown UDP file type {ext!r} (use .png, .npz or .exr)")


def load(path: str | os.PathLike, axes: str = "xyz") -> np.ndarray:
    """Read a UDP file by extension (see :func:`save`) -> (H, W, 4) float32."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext == ".npz":
        return from_npz(path, axes)
    if ext not in (".png", ".exr"):
        raise FormatError(path, None, "", f"unknown UDP file type {ext!r} (use .png, .npz or .exr)")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise FormatError(path, None, "", f"cannot read: {e.strerror}") from None
    if ext == ".png":
        if axes != "xyz":
            raise ValueError("16-bit PNG UDPs are always in xyz order")
        return decode_png16(data, os.fspath(path))
    return decode_exr(data, axes, os.fspath(path))


# ---------------------------------------------------------------------------------------------- checks

def validate(udp: np.ndarray, name: str = "<udp>") -> None:
    """Check the full contract; raise FormatError(name, None, field, reason) naming the first problem.

    field is one of ``shape`` ((H, W, 4)), ``dtype`` (float32), ``values`` (finite, in [0, 1]),
    ``occupancy`` (exactly 0 or 1), ``background`` (x = y = z = 0 where occupancy is 0)."""
    a = np.asarray(udp)
    if a.ndim != 3 or a.shape[2] != 4 or a.shape[0] < 1 or a.shape[1] < 1:
        raise FormatError(name, None, "shape", f"{a.shape}, expected (H, W, 4)")
    if a.dtype != np.float32:
        raise FormatError(name, None, "dtype", f"{a.dtype}, expected float32")
    lo, hi = float(a.min()), float(a.max())
    if not (lo >= 0.0 and hi <= 1.0):           # NaN fails both comparisons
        if not np.isfinite(a).all():
            raise FormatError(name, None, "values", f"{int((~np.isfinite(a)).sum())} non-finite values")
        raise FormatError(name, None, "values", f"range [{lo}, {hi}] is outside [0, 1]")
    occ = a[..., 3]
    soft = (occ != 0) & (occ != 1)
    if soft.any():
        y, x = np.argwhere(soft)[0]
        raise FormatError(name, None, "occupancy",
                          f"{int(soft.sum())} pixels neither 0 nor 1, first at (y={y}, x={x}): {occ[y, x]}")
    # xyz >= 0 here, so their sum is 0 exactly when all three are (10x faster than any() over the last axis)
    bad = (occ == 0) & (a[..., 0] + a[..., 1] + a[..., 2] > 0)
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise FormatError(name, None, "background",
                          f"{int(bad.sum())} background pixels with non-zero xyz, first at (y={y}, x={x})")


# ---------------------------------------------------------------------------------------------- pictures

def visualise(udp: np.ndarray, alpha: bool = False) -> np.ndarray:
    """(H, W, 4) float UDP -> (H, W, 3) uint8 RGB: occupied pixels show (x, y, z) * 255 as (R, G, B),
    the background a grey checkerboard (no landmark colour is a checkerboard, so holes stand out).
    alpha=True: (H, W, 4) uint8 RGBA instead, alpha = 255 * occupancy (for :func:`contact_sheet`, which
    then draws the checkerboard at the cell's scale)."""
    a = np.asarray(udp, dtype=np.float32)
    occ = a[..., 3] > 0
    colour = np.rint(np.clip(a[..., :3], 0.0, 1.0) * 255.0).astype(np.uint8)
    if alpha:
        return np.concatenate([colour * occ[..., None], (occ * 255).astype(np.uint8)[..., None]], axis=2)
    out = checkerboard(a.shape[0], a.shape[1])
    out[occ] = colour[occ]
    return out
