"""Soft alpha along a hard cut: each band pixel unmixed between its nearest pure background and foreground
colours (step 5 of :func:`udpgen.drawn.matting.matte`; the module docstring there explains the model).

Pure functions on numpy arrays; ``s`` is a :class:`udpgen.drawn.matting.MattingSettings`.
"""
from __future__ import annotations

import cv2
import numpy as np


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide. guide, src: (H, W) float32; returns (H, W) float32."""
    k = (2 * radius + 1, 2 * radius + 1)
    box = lambda x: cv2.boxFilter(x, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mi, ms = box(guide), box(src)
    a = (box(guide * src) - mi * ms) / (box(guide * guide) - mi * mi + eps)
    b = ms - a * mi
    return box(a) * guide + box(b)


def _nearest(mask: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """(H, W) bool, flat pixel indices -> flat index of the True pixel nearest (L2) to each of them."""
    src = np.where(mask, 0, 255).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    zero = np.flatnonzero(mask.ravel())
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[labels.ravel()[zero]] = zero
    return lut[labels.ravel()[idx]]


def _bands(hard, s):
    """The ``edge_px`` band around the cut, the foreground inside it and the foreground plus band."""
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * s.edge_px + 1, 2 * s.edge_px + 1))
    u8 = hard.astype(np.uint8)
    inner = cv2.erode(u8, k, borderType=cv2.BORDER_REPLICATE).astype(bool)
    outer = cv2.dilate(u8, k, borderType=cv2.BORDER_REPLICATE).astype(bool)
    return outer & ~inner, inner, outer


def edges(rgb, hard, bg, s, clean: bool = True, crop: bool = True) -> tuple[np.ndarray, np.ndarray, float]:
    """Soft alpha and clean colours in the ``edge_px`` band around the cut. rgb: (H, W, 3) uint8; hard:
    (H, W) bool, the cut's foreground; bg: (H, W) bool, the pixels known to be background.

    Returns alpha (H, W) float32, foreground colours (H, W, 3) uint8, and the mean unmixing residual
    |aF + (1-a)B - C| (RGB in 0..1) over the unmixed band pixels. The colour F is solved from
    C = aF + (1-a)B where a >= 0.25, and is the nearest interior colour below (dividing by a small alpha
    amplifies noise). On a ``clean`` (lossless, flat) background a foreground neighbour may stand in for
    the nearest interior colour (:func:`_local_foreground`). With ``crop``, works in the bounding box of
    the foreground plus a margin, where the nearest pure colours lie when the background is flat (on
    textured ones the background mask is sparse: no crop there) and which holds the guided filter's
    windows."""
    alpha = hard.astype(np.float32)
    out = rgb.copy()
    h, w = hard.shape
    x, y, bw, bh = cv2.boundingRect(hard.astype(np.uint8))
    if bw == 0:
        return alpha, out, 0.0
    pad = 2 * s.guided_radius + 2 * s.edge_px + 8 if crop else max(h, w)
    y0, y1, x0, x1 = max(0, y - pad), min(h, y + bh + pad), max(0, x - pad), min(w, x + bw + pad)
    band, inner, outer = _bands(hard[y0:y1, x0:x1], s)
    pure_bg = ~outer & bg[y0:y1, x0:x1]
    if not pure_bg.any() and (y1 - y0, x1 - x0) != (h, w):
        y0, y1, x0, x1 = 0, h, 0, w
        band, inner, outer = _bands(hard, s)
        pure_bg = ~outer & bg
    if not pure_bg.any():  # no background colour outside the band: any pixel outside it will do
        pure_bg = ~outer
    if not band.any() or not inner.any() or not pure_bg.any():
        return alpha, out, 0.0
    box = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    flat = box.reshape(-1, 3)
    idx = np.flatnonzero(band.ravel())
    unit = np.float32(1 / 255)
    C = flat[idx].astype(np.float32) * unit
    F = flat[_nearest(inner, idx)].astype(np.float32) * unit
    B = flat[_nearest(pure_bg, idx)].astype(np.float32) * unit
    # Clean (lossless) background around the cut: a neighbour may stand for F (see _local_foreground).
    # With JPEG noise a noisy background pixel would explain its noisy neighbour just as well: not there.
    if clean and np.mean(np.abs(B - np.median(B, axis=0)).max(1) <= 1.5 / 255) >= 0.8:
        F = _local_foreground(flat, hard[y0:y1, x0:x1], idx, C, F, B, s)
    d = F - B
    n2 = (d * d).sum(1)
    a = np.clip(((C - B) * d).sum(1) / np.maximum(n2, 1e-8), 0, 1)
    ok = n2 >= s.min_contrast ** 2
    alpha_c = np.ascontiguousarray(alpha[y0:y1, x0:x1])
    # Fallback where F ~ B: guided filter of the hard mask, guided by luminance, read in the band only
    # (the box keeps 2 * guided_radius clear around the band, so the crop changes no value).
    if not ok.all():
        grey = cv2.cvtColor(box, cv2.COLOR_RGB2GRAY).astype(np.float32) * unit
        soft = np.clip(guided_filter(grey, alpha_c, s.guided_radius, s.guided_eps), 0, 1).ravel()
        a = np.where(ok, a, soft[idx])
    a2 = a[:, None]
    res = np.sqrt((((a2 * F + (1 - a2) * B) - C) ** 2).sum(1))
    alpha_c.ravel()[idx] = a
    alpha[y0:y1, x0:x1] = alpha_c
    solved = (C - (1 - a2) * B) / np.maximum(a2, 1e-3)
    col = np.where(a2 >= 0.25, solved, F)
    flat = flat.copy()
    flat[idx] = np.clip(np.round(col * 255), 0, 255).astype(np.uint8)
    out[y0:y1, x0:x1] = flat.reshape(box.shape)
    return alpha, out, float(res[ok].mean()) if ok.any() else 0.0


def _local_foreground(flat, hard, idx, C, F, B, s) -> np.ndarray:
    """The pure foreground colour each band pixel is unmixed against. Candidates: the nearest interior
    colour ``F`` and the colours of the pixel's foreground 8-neighbours; one "explains" the pixel C when
    C lies within ``unmix_tol`` (and within a third of |C - B|) of the segment B-F. ``F`` is kept where
    it is among the best explanations or nothing explains C; else the neighbour farthest from B among
    the best explanations (a fully and a partly covered outline pixel lie on the same segment and tie:
    the farther one is the pure colour).

    The nearest interior pixel is often the fill behind a 1-2 px outline (the band spans the whole
    outline on a slanted edge): unmixing a dark outline over a dark background against a light fill
    gives alpha 0, where the outline pixel beside it explains it exactly. flat: (N, 3) uint8 pixels of
    the box, hard: its (h, w) mask, idx: the band's flat indices, C, F, B: (n, 3) float32 in 0..1.
    Returns (n, 3) float32."""
    hh, ww = hard.shape
    ys, xs = np.divmod(idx, ww)
    hflat = hard.ravel()
    unit = np.float32(1 / 255)
    cands, valid = [F], [np.ones(len(idx), bool)]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            yy, xx = ys + dy, xs + dx
            inb = (yy >= 0) & (yy < hh) & (xx >= 0) & (xx < ww)
            nb = np.where(inb, yy * ww + xx, 0)
            cands.append(flat[nb].astype(np.float32) * unit)
            valid.append(inb & hflat[nb])
    Fk = np.stack(cands, 1)                      # (n, 9, 3)
    ok = np.stack(valid, 1)                      # (n, 9)
    d = Fk - B[:, None]
    e = (C - B)[:, None]
    n2 = d[..., 0] ** 2 + d[..., 1] ** 2 + d[..., 2] ** 2
    dot = e[..., 0] * d[..., 0] + e[..., 1] * d[..., 1] + e[..., 2] * d[..., 2]
    a = np.clip(dot / np.maximum(n2, 1e-8), 0, 1)
    r = a[..., None] * d - e
    res2 = r[..., 0] ** 2 + r[..., 1] ** 2 + r[..., 2] ** 2
    # Explains: residual within the tolerance, and small beside C's own departure from B (a colour
    # barely off the background is "explained" by any far colour with a tiny alpha).
    tol2 = np.minimum(s.unmix_tol ** 2, 0.1 * (e[..., 0] ** 2 + e[..., 1] ** 2 + e[..., 2] ** 2))
    ok &= (res2 <= tol2) & (n2 >= s.min_contrast ** 2)
    # The best explanations (within a third of the tolerance of the best one: colinear mixes tie with
    # the pure colour, a mix with a third colour does not), and of those the farthest from B.
    res = np.sqrt(np.where(ok, res2, np.inf))
    ok &= res <= res.min(axis=1, keepdims=True) + s.unmix_tol / 3
    pick = np.argmax(np.where(ok, n2, -1.0), axis=1)
    pick[~ok.any(1) | ok[:, 0]] = 0
    return Fk[np.arange(len(idx)), pick]
