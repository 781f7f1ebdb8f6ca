"""Label maps a user already has (segmentations) as watershed markers for :func:`udpgen.drawn.matting.matte`.

A label map is an (H, W) integer array: one label (``background``, default 0) is the background, every
other label is the character. It is read from a PNG (grey or paletted: the stored index; RGB(A): any
non-black colour is the character) or from an ``.npz`` holding one integer array, or, as in the CoNR
authors' Danbooru annotation release (P2Oileen/CoNR_Dataset: ``annotation/<image file name>.npz`` with
the key ``label``), several arrays of which ``label`` is used. :func:`label_markers` turns it into the
green/red scribble image :func:`~udpgen.drawn.matting.matte` takes, each class shrunk by ``shrink_px``
so the watershed and the soft-alpha step, not the mask's own (often coarse) edge, settle the cut.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from udpgen.errors import UdpgenError

__all__ = ["read_label_map", "label_markers", "find_label_map"]


def find_label_map(masks_dir: Path, rel_in: Path) -> Path | None:
    """The label map of the input at relative path ``rel_in`` (e.g. ``a/b.jpg``) in ``masks_dir``:
    ``a/b.png``, ``a/b.npz`` or ``a/b.jpg.npz`` (the CoNR_Dataset naming), first found; else None."""
    for cand in (rel_in.with_suffix(".png"), rel_in.with_suffix(".npz"), rel_in.with_name(rel_in.name + ".npz")):
        if (masks_dir / cand).is_file():
            return masks_dir / cand
    return None


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """(H, W) int64 labels from a PNG or an .npz (see the module docstring). Raises UdpgenError naming the
    file and what is wrong."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                names = list(z.files)
                if "label" in names:
                    arr = z["label"]
                elif len(names) == 1:
                    arr = z[names[0]]
                else:
                    raise UdpgenError(f"{path}: an .npz label map holds one array (or one named 'label'), "
                                      f"found {names}")
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise UdpgenError(f"{path}: not a readable .npz ({e})") from None
        if arr.ndim != 2 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise UdpgenError(f"{path}: the label map must be a 2-D integer array, got {arr.shape} {arr.dtype}")
        return arr.astype(np.int64)
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("L", "P", "I", "I;16", "1"):
                return np.asarray(im).astype(np.int64)
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise UdpgenError(f"{path}: not a readable label map image ({e})") from None
    return (rgb.max(axis=2) > 0).astype(np.int64)


def label_markers(labels: np.ndarray, shape: tuple[int, int], background: int = 0, shrink_px: int = 2,
                  name: str = "label map") -> np.ndarray:
    """(H, W) integer labels -> (H, W, 3) uint8 markers: green where a character label lies at least
    ``shrink_px`` inside its region, red likewise for the background label, black elsewhere. ``shape``
    is the image's (H, W); a mismatch raises UdpgenError naming ``name``."""
    if labels.shape != tuple(shape):
        raise UdpgenError(f"{name}: the label map is {labels.shape[1]}x{labels.shape[0]}, "
                          f"the image is {shape[1]}x{shape[0]}")
    bg = (labels == background).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * shrink_px + 1, 2 * shrink_px + 1))
    sure_bg = cv2.erode(bg, k, borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)
    sure_fg = cv2.erode(1 - bg, k, borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)
    out = np.zeros((*shape, 3), np.uint8)
    out[sure_fg] = (0, 255, 0)
    out[sure_bg] = (255, 0, 0)
    return out


def network_prior(model_path: str | os.PathLike):
    """``udpgen matte --model``: a function image (H, W, 3|4) uint8 -> (H, W) float32 foreground probability
    from conr's segmentation network (conr.matte, ``conr train-matte``), for the ``prior`` argument of
    :func:`udpgen.drawn.matting.matte` (it seeds the cut on textured backgrounds). conr (torch) is imported
    only here, so udpgen stays torch-free without it. Raises UdpgenError naming the checkpoint when it
    cannot be used."""
    try:
        from conr.errors import ConrError
        from conr.matte import load_matte, predict
    except ImportError as e:
        raise UdpgenError(f"--model needs the conr package and torch ({e}); install the toolkit with "
                          "scripts/install.sh, or use --masks with label maps from `conr matte-masks`") from None
    try:
        net, size = load_matte(model_path)
    except ConrError as e:
        raise UdpgenError(str(e)) from None

    def prior(image: np.ndarray) -> np.ndarray:
        return predict(net, size, image[..., :3])
    return prior
