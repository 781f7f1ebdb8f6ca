"""Contact sheets: the one checkerboard and the one sheet maker of every preview (render previews, shard
previews, matte review sheets, the demo's report)."""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["checkerboard", "over_checkerboard", "contact_sheet"]


def checkerboard(h: int, w: int, cell: int = 8) -> np.ndarray:
    """(h, w, 3) uint8 light-grey checkerboard: the neutral 'transparent' backdrop of previews."""
    yy, xx = np.mgrid[0:h, 0:w]
    light = ((yy // cell + xx // cell) % 2 == 0)
    return np.repeat(np.where(light, 204, 153).astype(np.uint8)[..., None], 3, axis=2)


def over_checkerboard(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 straight-alpha RGBA -> (H, W, 3) uint8 RGB composited over :func:`checkerboard`."""
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    bg = checkerboard(*rgba.shape[:2]).astype(np.float32)
    return np.rint(rgba[..., :3].astype(np.float32) * a + bg * (1.0 - a)).astype(np.uint8)


def contact_sheet(images: list[np.ndarray], columns: int, labels: list[str] | None = None,
                  pad: int = 4, cell: tuple[int, int] | None = None) -> np.ndarray:
    """Grid of (H, W, 3|4) uint8 images (RGB, or straight-alpha RGBA shown over a checkerboard) ->
    (rows * (ch + pad) + pad, columns * (cw + pad) + pad, 3) uint8 RGB on a dark grey page.

    Cells are ``cell`` = (ch, cw) pixels (default: the largest image); an image is scaled to fit its
    cell keeping its aspect ratio (enlarged by pixel repetition, so UDP values stay visible as they are,
    shrunk by area averaging). ``labels`` (one per image) are drawn in the top-left."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    columns = max(1, min(int(columns), len(images)))
    ch, cw = cell or (max(i.shape[0] for i in images), max(i.shape[1] for i in images))
    rows = -(-len(images) // columns)
    sheet = np.full((rows * (ch + pad) + pad, columns * (cw + pad) + pad, 3), 48, np.uint8)
    for k, img in enumerate(images):
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
            raise ValueError(f"image {k}: expected (H, W, 3|4) uint8, got {img.shape} {img.dtype}")
        s = min(ch / img.shape[0], cw / img.shape[1])
        if s != 1.0:
            size = (min(cw, max(1, round(img.shape[1] * s))), min(ch, max(1, round(img.shape[0] * s))))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST)
        rgb = over_checkerboard(img) if img.shape[2] == 4 else img   # after resizing: fixed-size squares
        y0, x0 = pad + (k // columns) * (ch + pad), pad + (k % columns) * (cw + pad)
        sheet[y0:y0 + rgb.shape[0], x0:x0 + rgb.shape[1]] = rgb
        if labels is not None and labels[k]:
            # White on a dark box stays readable on any image colour.
            (tw, th), base = cv2.getTextSize(str(labels[k]), cv2.FONT_HERSHEY_SIMPLEX, 0.35, 1)
            cv2.rectangle(sheet, (x0, y0), (min(x0 + tw + 3, x0 + cw - 1), y0 + th + base + 2), (0, 0, 0), -1)
            cv2.putText(sheet, str(labels[k]), (x0 + 2, y0 + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (255, 255, 255), 1, cv2.LINE_AA)
    return sheet
