"""Image files at the edge: read any common raster into uint8 RGB/RGBA, write PNGs atomically.

:func:`read_image` normalises what Pillow opens: grey, grey+alpha, 1-bit, palette (with or without a
transparent index), 16-bit and 32-bit integer / float grey, CMYK, YCbCr/Lab/HSV, RGB, RGBA; applies
the EXIF orientation; refuses images over a pixel limit *before* decoding them (a tiny file can declare
a huge canvas: a decompression bomb); and turns every failure into :class:`udpgen.errors.FormatError`
naming the file.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from udpgen.io.atomic import write_bytes_atomic
from udpgen.errors import FormatError

__all__ = ["read_image", "write_png_atomic", "list_images", "is_image", "IMAGE_SUFFIXES", "MAX_PIXELS"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")   # what read_image takes
MAX_PIXELS = 8192 * 8192  # explicit limit (Pillow's own bomb check warns at ~89 MP and refuses at twice that)


def is_image(path: Path) -> bool:
    """A file whose name ends in one of :data:`IMAGE_SUFFIXES` (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: str | os.PathLike, recursive: bool = True, exclude: str | os.PathLike | None = None,
                key=None) -> list[Path]:
    """Image files under ``folder`` (sub-folders too when ``recursive``), sorted (by ``key`` if given, else
    by path): hidden files and files in hidden folders (a name starting with '.') are skipped, and so is
    everything under ``exclude`` (an output folder that lies inside the input). The one image-folder walker
    of the project."""
    root = Path(folder)
    skip = Path(exclude).resolve() if exclude is not None else None
    found = root.rglob("*") if recursive else root.iterdir()
    files = [p for p in found if is_image(p) and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts)
             and not (skip is not None and p.resolve().is_relative_to(skip))]
    return sorted(files, key=key)


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file -> (H, W, 3) uint8 RGB, or (H, W, 4) uint8 straight RGBA when the file has alpha
    (an alpha channel, a tRNS palette entry or colour key). Raises FormatError on any problem."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FormatError(path, None, "", "not a file" if path.exists() else "no such file")
    try:
        with warnings.catch_warnings():
            # Pillow's DecompressionBombWarning becomes an error; our own limit is checked first anyway.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w <= 0 or h <= 0:
                    raise FormatError(path, None, "header.size", f"empty image {w}x{h}")
                if w * h > max_pixels:
                    raise FormatError(path, None, "header.size",
                                      f"{w}x{h} = {w * h} pixels is over the limit of {max_pixels} "
                                      f"(a decompression bomb, or raise max_pixels)")
                im.load()
                im = ImageOps.exif_transpose(im)
                return _to_array(im)
    except FormatError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise FormatError(path, None, "header.size", f"refused as a decompression bomb: {e}") from None
    except UnidentifiedImageError:
        raise FormatError(path, None, "", "not an image format Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        # Truncated data, broken chunks, bad CRCs, unsupported modes.
        raise FormatError(path, None, "", f"cannot decode: {e}") from None


def _to_array(im) -> np.ndarray:
    """A loaded PIL image -> (H, W, 3|4) uint8."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        # 16-bit files span 0..65535; 'I' (32-bit) and 'F' are scaled by their bit depth guess.
        if mode.startswith("I;16") or (mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0
        elif mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0
        g = np.clip(np.round(a), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
    im = im.convert("RGBA" if has_alpha else "RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def write_png_atomic(path: str | os.PathLike, image: np.ndarray, compress_level: int = 6) -> Path:
    """Write (H, W, 3|4) or (H, W) uint8 as PNG at ``path`` atomically (see udpgen.io.atomic)."""
    import io

    from PIL import Image

    path = Path(path)
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ValueError(f"write_png_atomic takes (H, W[, 3|4]) uint8, got {img.shape} {img.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=compress_level)
    write_bytes_atomic(path, buf.getvalue())
    return path
