"""Automatic watershed matting of flat-coloured illustrations (the paper's hand-drawn data half).

The CoNR paper cut its hand-drawn characters out "with the help of the watershed algorithm". This module
does it without a person for the common case (a character drawn on a plain or nearly plain background)
and says how sure it is, so a person only reviews the doubtful ones (or draws scribbles for them).

Steps of :func:`matte` (all on numpy arrays, no I/O):

1. Background colour model: the pixels of a thin frame along the image border, clustered in CIE Lab
   (k-means, up to ``max_border_colours`` centres: the largest, plus those holding ``min_border_share``
   of the frame and lying within ``max_centre_spread`` of it, i.e. a gradient, not a cut-off shirt).
   ``dist`` = Lab distance (Delta E 1976) of every pixel to the nearest centre.
2. Background candidates: ``dist < bg_threshold``. Their 4-connected components touching the frame are
   background. Components not touching it (an "enclosed pocket", e.g. between arm and body) are
   background too when they are large (``pocket_min_area``) and flat (mean distance below
   ``pocket_threshold``, spread below ``pocket_max_std``); small ones (eye highlights) stay foreground.
   A large white shirt on a white background is taken for a pocket too: that is what markers are for.
3. User markers override: a candidate component touched by a green scribble is not background, one
   touched by a red scribble is; the scribbled pixels themselves become watershed seeds of their class.
4. Seeds: background shrunk by ``margin_px``; foreground = pixels at least ``margin_px`` away from any
   background. ``cv2.watershed`` floods the band between them over min(dist / edge_contrast, 1), so the
   cut lands on the first clear departure from the background colour (outside the outline), and thin
   strands joined to the body stay foreground.
   Textured backgrounds (mean frame ``dist`` above ``texture_threshold``: photos, patterns) have no
   colour to compare with; there cv2.grabCut (colour mixture models) runs at ``fallback_size``, seeded
   with the frame as sure background and the candidates as probable background, then the colour
   watershed snaps its cut to edges at full size.
5. Soft alpha in an ``edge_px`` band around the cut: each pixel C is unmixed against the nearest pure
   background colour B and nearest pure foreground colour F, alpha = <C-B, F-B> / |F-B|^2 (exact for
   anti-aliased edges over a known background). Where F and B are too alike to unmix, a guided filter of
   the hard mask is used instead. The foreground colour is then solved from C = aF + (1-a)B, so edge
   pixels carry no background tint.

Confidence (a float in [0,1], the product of four factors, each in [0,1]; see :func:`_confidence`):
``border`` (share of the frame the background model explains: low on photos / textures / characters
cut by the frame), ``agreement`` (IoU between the final mask and a second, threshold-only seeding at
twice the tolerance: low when the cut depends on a fragile threshold), ``unmix`` (1 - the mean colour
residual of the edge model in the band beyond JPEG-level noise, scaled: low when edges are not a mix
of two flat colours; fixed at 0.5 on textured backgrounds, so those never score above 0.5) and
``area`` (0 for an empty or full mask, falling off below 0.5 % or above 90 % of the image). Read it as
a review order, not a probability: bench/matting.py measures how many failures (IoU < 0.9) land in
the lowest-confidence 10 %. Below 0.5 means "look at this one".

Markers: an RGB(A) image of the same size; pure green (0,255,0) = foreground, pure red (255,0,0) =
background (each channel within 60 of those values, alpha > 0 where there is an alpha); anything else
is ignored, so a black or transparent canvas with a few strokes is a valid marker file.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import cv2
import numpy as np

from udpgen.errors import SettingsError
from udpgen.errors import UdpgenError

__all__ = ["MattingSettings", "MatteResult", "SettingsError", "matte", "alpha_is_meaningful",
           "marker_masks", "guided_filter"]


@dataclass(frozen=True)
class MattingSettings:
    """Knobs of :func:`matte`. Colour distances are CIE76 Delta E in Lab (L in 0..100); lengths in pixels."""
    bg_threshold: float = 10.0        # a pixel this close to a border colour may be background
    pocket_threshold: float = 5.0     # an enclosed pocket's mean distance to a border colour, at most
    pocket_max_std: float = 5.0       # ... and the spread of its distances (flat fill), at most
    pocket_min_area: float = 0.0005   # ... and its area as a fraction of the image, at least
    border_px: int = 2                # width of the frame that defines the background colour
    max_border_colours: int = 3       # k-means centres on the frame
    min_border_share: float = 0.15    # a centre must hold this share of the frame (the largest always counts)
    max_centre_spread: float = 30.0   # ... and lie this close to the largest one
    margin_px: int = 2                # half width of the band the watershed decides
    edge_contrast: float = 14.0       # distance at which the watershed's elevation saturates (see _watershed)
    edge_px: int = 1                  # half width of the soft-alpha band around the cut
    min_contrast: float = 0.12        # |F - B| (RGB in 0..1) below which an edge pixel is not unmixed
    texture_threshold: float = 2.5    # mean frame distance to the border colours above which the
    #                                   background counts as textured (JPEG noise on a flat one is ~1)
    texture_fallback: bool = True     # textured: grabCut (colour models) seeded from the frame instead
    fallback_size: int = 256          # grabCut runs with the longer side at most this (it is slow)
    guided_radius: int = 2            # guided filter window radius (fallback soft alpha)
    guided_eps: float = 1e-3          # guided filter regulariser (image in 0..1)

    def __post_init__(self):
        positive = {"bg_threshold", "pocket_threshold", "edge_contrast", "max_centre_spread", "fallback_size",
                    "border_px", "max_border_colours", "margin_px",
                    "guided_radius", "guided_eps"}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("bool", bool):
                if not isinstance(v, bool):
                    raise SettingsError(f"MattingSettings.{f.name} must be bool, got {v!r}")
                continue
            kind = int if f.type in ("int", int) else float
            if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not isinstance(v, int)):
                raise SettingsError(f"MattingSettings.{f.name} must be {kind.__name__}, got {v!r}")
            if not np.isfinite(v) or v < 0 or (f.name in positive and v <= 0):
                raise SettingsError(f"MattingSettings.{f.name} must be {'> 0' if f.name in positive else '>= 0'}"
                                    f" and finite, got {v!r}")
        for name in ("pocket_min_area", "min_border_share"):
            if getattr(self, name) > 1:
                raise SettingsError(f"MattingSettings.{name} is a fraction in [0,1], got {getattr(self, name)!r}")


@dataclass
class MatteResult:
    """What :func:`matte` returns.

    rgba: (H, W, 4) uint8, straight (not premultiplied) alpha, edge colours decontaminated.
    alpha: (H, W) float32 in [0, 1].
    confidence: float in [0, 1] (see the module docstring); ``factors`` holds its parts by name.
    notes: human-readable remarks (pockets found, markers used, why confidence is low).
    """
    rgba: np.ndarray
    alpha: np.ndarray
    confidence: float
    notes: list[str] = field(default_factory=list)
    factors: dict[str, float] = field(default_factory=dict)


def alpha_is_meaningful(image: np.ndarray) -> bool:
    """True when ``image`` is (H, W, 4) and its alpha channel is neither all opaque nor all transparent:
    such images are already cut out, and :func:`matte` keeps their alpha."""
    if image.ndim != 3 or image.shape[2] != 4:
        return False
    a = image[..., 3]
    return bool(a.min() < 255 and a.max() > 0)


def marker_masks(markers: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background scribbles of a marker image (H, W, 3|4) uint8 -> two (H, W) bool masks."""
    if markers.ndim != 3 or markers.shape[2] not in (3, 4) or markers.shape[:2] != tuple(shape):
        raise UdpgenError(f"markers must be (H, W, 3|4) matching the image {tuple(shape)}, got {markers.shape}")
    m = markers[..., :3].astype(np.int16)
    visible = markers[..., 3] > 0 if markers.shape[2] == 4 else True
    tol = 60
    green = (m[..., 0] <= tol) & (m[..., 1] >= 255 - tol) & (m[..., 2] <= tol) & visible
    red = (m[..., 0] >= 255 - tol) & (m[..., 1] <= tol) & (m[..., 2] <= tol) & visible
    return green, red


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide. guide, src: (H, W) float32; returns (H, W) float32."""
    k = (2 * radius + 1, 2 * radius + 1)
    box = lambda x: cv2.boxFilter(x, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mi, ms = box(guide), box(src)
    a = (box(guide * src) - mi * ms) / (box(guide * guide) - mi * mi + eps)
    b = ms - a * mi
    return box(a) * guide + box(b)


def matte(image: np.ndarray, markers: np.ndarray | None = None,
          settings: MattingSettings = MattingSettings()) -> MatteResult:
    """Cut the character out of ``image``.

    image: (H, W, 3) uint8 RGB, or (H, W, 4) uint8 RGBA (when its alpha is meaningful, see
        :func:`alpha_is_meaningful`, it is returned unchanged with confidence 1).
    markers: optional (H, W, 3|4) uint8 scribbles (green = foreground, red = background).
    Returns a :class:`MatteResult`.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 8:
        raise UdpgenError(f"matte() takes an (H>=8, W>=8, 3|4) uint8 image, got "
                          f"{getattr(image, 'shape', type(image))} {getattr(image, 'dtype', '')}")
    if alpha_is_meaningful(image):
        a = image[..., 3].astype(np.float32) / 255
        return MatteResult(image.copy(), a, 1.0, ["kept the input's alpha channel"], {})
    rgb = np.ascontiguousarray(image[..., :3])
    h, w = rgb.shape[:2]
    s = settings
    notes: list[str] = []
    lab = cv2.cvtColor(rgb.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_RGB2Lab)
    frame = np.zeros((h, w), bool)
    b = min(s.border_px, h // 4, w // 4)
    frame[:b], frame[-b:], frame[:, :b], frame[:, -b:] = True, True, True, True
    centres, all_centres = _border_colours(lab[frame], s)
    dist = _distance_to(lab, centres)
    border_share = float(np.mean(dist[frame] < s.bg_threshold))

    fg_user = bg_user = None
    if markers is not None:
        fg_user, bg_user = marker_masks(markers, (h, w))
        notes.append(f"user markers: {int(fg_user.sum())} foreground, {int(bg_user.sum())} background pixels")
    bg, n_pockets = _background(dist, frame, s, fg_user, bg_user)
    if n_pockets:
        notes.append(f"{n_pockets} enclosed background pocket(s)")

    frame_noise = float(dist[frame].mean())
    textured = s.texture_fallback and frame_noise > s.texture_threshold
    if textured:
        notes.append(f"textured background (mean frame distance {frame_noise:.1f}): grabCut fallback")
        seed_bg = bg if len(all_centres) == len(centres) else \
            _background(_distance_to(lab, all_centres), frame, s, fg_user, bg_user)[0]
        hard = _grabcut(rgb, seed_bg, frame, s, fg_user, bg_user)
        hard = _refine(rgb, hard, s, fg_user, bg_user)
    else:
        hard = _watershed(dist, bg, s, fg_user, bg_user)
    alpha, fg_rgb, residual = _edges(rgb, hard, bg, s)
    rgba = np.empty((h, w, 4), np.uint8)
    rgba[..., :3] = fg_rgb
    rgba[..., 3] = np.round(alpha * 255)
    rgba[alpha <= 0, :3] = 0  # fully transparent pixels carry no colour (smaller PNGs, no stray tint)

    # Second seeding for the agreement factor: threshold only, twice the tolerance, no watershed.
    bg2, _ = _background(dist, frame, replace(s, bg_threshold=2 * s.bg_threshold),
                         fg_user, bg_user)
    conf, factors = _confidence(hard, ~bg2, border_share, None if textured else residual)
    for name, v in factors.items():
        if v < 0.8:
            notes.append(f"low {name}: {v:.2f}")
    return MatteResult(rgba, alpha, conf, notes, factors)


# --- steps ------------------------------------------------------------------------------------------

def _border_colours(border_lab: np.ndarray, s: MattingSettings) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) Lab frame pixels -> background colour centres, largest cluster first: (K, 3) float32 of
    those near the largest (flat-background model) and (K', 3) of all holding min_border_share (used to
    seed the textured fallback, where a frame of several unrelated colours is the normal case)."""
    pts = border_lab.astype(np.float32)
    k = min(s.max_border_colours, len(pts))
    if k <= 1 or float(pts.std(axis=0).max()) < 1.0:
        c = np.median(pts, axis=0, keepdims=True).astype(np.float32)
        return c, c
    # Fixed seed and kmeans++ centres: the same image always gives the same matte.
    cv2.setRNGSeed(0)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, _ = cv2.kmeans(pts, k, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    share = np.bincount(labels.ravel(), minlength=k) / len(pts)
    order = [int(i) for i in np.argsort(-share) if share[i] > 0]
    # A cluster's mean is pulled by JPEG ringing and outliers; the median of its members is not.
    med = {i: np.median(pts[labels.ravel() == i], axis=0) for i in order}
    big = [order[0]] + [i for i in order[1:] if share[i] >= s.min_border_share]
    # Extra centres must resemble the dominant one (a gradient, a vignette): a distinct colour holding a
    # share of the frame is far more often a character part cut by the frame (a bust shot's shirt).
    near = [i for i in big if np.linalg.norm(med[i] - med[order[0]]) <= s.max_centre_spread]
    return (np.stack([med[i] for i in near]).astype(np.float32),
            np.stack([med[i] for i in big]).astype(np.float32))


def _distance_to(lab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(H, W, 3) Lab, (K, 3) centres -> (H, W) float32 Delta E to the nearest centre."""
    best = None
    for c in centres:
        d = np.sqrt(((lab - c) ** 2).sum(axis=2, dtype=np.float32))
        best = d if best is None else np.minimum(best, d)
    return best


def _background(dist, frame, s, fg_user, bg_user) -> tuple[np.ndarray, int]:
    """Background mask (H, W) bool: candidate components touching the frame, plus large flat pockets,
    with user scribbles deciding the components they touch. Also returns the number of pockets taken."""
    cand = (dist < s.bg_threshold).astype(np.uint8)
    if bg_user is not None:
        cand[bg_user] = 1
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=4)
    if n <= 1:
        return np.zeros(dist.shape, bool), 0
    area = stats[:, cv2.CC_STAT_AREA]
    is_bg = np.zeros(n, bool)
    is_bg[np.unique(labels[frame])] = True
    big = ~is_bg & (area >= max(1.0, s.pocket_min_area * dist.size))
    big[0] = False
    pocket = np.zeros(n, bool)
    if big.any():
        # Mean and spread of the distance inside the large enclosed components only (few pixels to sum).
        sel = big[labels]
        lab_sel, d_sel = labels[sel], dist[sel].astype(np.float64)
        cnt = np.maximum(area, 1)
        mean = np.bincount(lab_sel, weights=d_sel, minlength=n) / cnt
        std = np.sqrt(np.maximum(np.bincount(lab_sel, weights=d_sel ** 2, minlength=n) / cnt - mean ** 2, 0))
        pocket = big & (mean < s.pocket_threshold) & (std < s.pocket_max_std)
    is_bg |= pocket
    if bg_user is not None:
        is_bg[np.unique(labels[bg_user])] = True
    if fg_user is not None:
        is_bg[np.unique(labels[fg_user])] = False
    is_bg[0] = False  # label 0 is "not a candidate"
    bg = is_bg[labels]
    if bg_user is not None:
        bg |= bg_user
    n_pockets = int(pocket[1:].sum()) if fg_user is None else int((pocket & is_bg)[1:].sum())
    return bg, n_pockets


def _watershed(dist, bg, s, fg_user, bg_user) -> np.ndarray:
    """Hard foreground mask (H, W) bool: watershed between the seeds on the saturated distance to the
    background colour, min(dist / edge_contrast, 1). Saturating matters: a dark outline on a dark
    background is a small step, the outline-to-fill step beside it a big one, and the cut belongs on
    the first (the raw colour gradient would put it on the second and cut the outline off)."""
    kern = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * s.margin_px + 1, 2 * s.margin_px + 1))
    u8 = bg.astype(np.uint8)
    # Outside the image counts as background for the background seeds (a frame stays seeded) ...
    sure_bg = cv2.erode(u8, kern, borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)
    # ... and as foreground for the foreground seeds (a character cut by the frame stays seeded).
    sure_fg = cv2.erode(1 - u8, kern, borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)
    markers = np.zeros(bg.shape, np.int32)
    markers[sure_bg] = 1
    markers[sure_fg] = 2
    if bg_user is not None:
        markers[bg_user] = 1
        markers[fg_user] = 2
    if not (markers == 2).any():
        return np.zeros(bg.shape, bool)
    if not (markers == 1).any():
        return np.ones(bg.shape, bool)
    g = np.clip(dist * np.float32(255 / s.edge_contrast), 0, 255).astype(np.uint8)
    cv2.watershed(cv2.merge([g, g, g]), markers)
    hard = markers == 2
    # Watershed lines (-1) sit on the colour step; give them the side their colour is closer to.
    line = markers == -1
    if line.any():
        hard[line] = ~bg[line]
    return hard


def _grabcut(rgb, bg, frame, s, fg_user, bg_user) -> np.ndarray:
    """Hard mask (H, W) bool from cv2.grabCut at reduced size, seeded: background candidates on the frame
    are sure background, other candidates probable background, the rest probable foreground."""
    h, w = bg.shape
    mask = np.where(bg, cv2.GC_PR_BGD, cv2.GC_PR_FGD).astype(np.uint8)
    mask[frame] = cv2.GC_BGD  # all of it: textured frames are rarely within bg_threshold of a centre
    if bg_user is not None:
        mask[bg_user], mask[fg_user] = cv2.GC_BGD, cv2.GC_FGD
    f = min(1.0, s.fallback_size / max(h, w))
    size = (max(8, round(w * f)), max(8, round(h * f)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA) if f < 1 else rgb
    m = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST) if f < 1 else mask
    if not ((m == cv2.GC_BGD) | (m == cv2.GC_PR_BGD)).any() or not ((m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)).any():
        return ~bg
    cv2.setRNGSeed(0)
    cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), m, None, np.zeros((1, 65)), np.zeros((1, 65)), 5,
                cv2.GC_INIT_WITH_MASK)
    fg = ((m == cv2.GC_FGD) | (m == cv2.GC_PR_FGD)).astype(np.uint8)
    return cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR).astype(bool) if f < 1 else fg.astype(bool)


def _refine(rgb, hard, s, fg_user, bg_user) -> np.ndarray:
    """Snap a coarse hard mask to colour edges at full size: watershed of the colour image in a band of
    1/f + margin_px pixels around its boundary (no background colour model exists to do better)."""
    r = s.margin_px + int(np.ceil(max(rgb.shape[:2]) / s.fallback_size))
    kern = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    u8 = hard.astype(np.uint8)
    markers = np.zeros(hard.shape, np.int32)
    markers[cv2.erode(1 - u8, kern, borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)] = 1
    markers[cv2.erode(u8, kern, borderType=cv2.BORDER_CONSTANT, borderValue=1).astype(bool)] = 2
    if bg_user is not None:
        markers[bg_user], markers[fg_user] = 1, 2
    if not (markers == 1).any() or not (markers == 2).any():
        return hard
    cv2.watershed(np.ascontiguousarray(rgb[..., ::-1]), markers)
    line = markers == -1
    out = markers == 2
    out[line] = hard[line]
    return out


def _nearest(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W) int64 flat index of the nearest True pixel (L2)."""
    src = np.where(mask, 0, 255).astype(np.uint8)
    _, labels = cv2.distanceTransformWithLabels(src, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    zero = np.flatnonzero(mask.ravel())
    lut = np.zeros(int(labels.max()) + 1, np.int64)
    lut[labels.ravel()[zero]] = zero
    return lut[labels]


def _bands(hard, bg, s):
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * s.edge_px + 1, 2 * s.edge_px + 1))
    u8 = hard.astype(np.uint8)
    inner = cv2.erode(u8, k, borderType=cv2.BORDER_REPLICATE).astype(bool)
    outer = cv2.dilate(u8, k, borderType=cv2.BORDER_REPLICATE).astype(bool)
    band = outer & ~inner
    pure_bg = ~outer & bg if (~outer & bg).any() else ~outer
    return band, inner, pure_bg


def _edges(rgb, hard, bg, s) -> tuple[np.ndarray, np.ndarray, float]:
    """Soft alpha and clean colours in the ``edge_px`` band around the cut.

    Returns alpha (H, W) float32, foreground colours (H, W, 3) uint8, and the mean unmixing residual
    |aF + (1-a)B - C| (RGB in 0..1) over the unmixed band pixels. The colour F is solved from
    C = aF + (1-a)B where a >= 0.25, and is the nearest interior colour below (dividing by a small alpha
    amplifies noise)."""
    alpha = hard.astype(np.float32)
    out = rgb.copy()
    band, inner, pure_bg = _bands(hard, bg, s)
    if not band.any() or not inner.any() or not pure_bg.any():
        return alpha, out, 0.0
    img = rgb.reshape(-1, 3).astype(np.float32) * np.float32(1 / 255)
    idx = np.flatnonzero(band.ravel())
    C = img[idx]
    F = img[_nearest(inner).ravel()[idx]]
    B = img[_nearest(pure_bg).ravel()[idx]]
    d = F - B
    n2 = (d * d).sum(1)
    a = np.clip(((C - B) * d).sum(1) / np.maximum(n2, 1e-8), 0, 1)
    ok = n2 >= s.min_contrast ** 2
    # Fallback where F ~ B: guided filter of the hard mask, guided by luminance, read in the band only.
    if not ok.all():
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1 / 255)
        soft = np.clip(guided_filter(grey, alpha, s.guided_radius, s.guided_eps), 0, 1).ravel()
        a = np.where(ok, a, soft[idx])
    a2 = a[:, None]
    res = np.sqrt((((a2 * F + (1 - a2) * B) - C) ** 2).sum(1))
    alpha.ravel()[idx] = a
    solved = (C - (1 - a2) * B) / np.maximum(a2, 1e-3)
    col = np.where(a2 >= 0.25, solved, F)
    out.reshape(-1, 3)[idx] = np.clip(np.round(col * 255), 0, 255).astype(np.uint8)
    return alpha, out, float(res[ok].mean()) if ok.any() else 0.0


def _confidence(hard, mask2, border_share, residual) -> tuple[float, dict[str, float]]:
    """Product of four factors in [0,1] (see the module docstring); returns it and the factors.
    residual None (textured background, no colour model to unmix against): the unmix factor is 0.5."""
    inter = np.count_nonzero(hard & mask2)
    union = np.count_nonzero(hard | mask2)
    agreement = inter / union if union else 0.0
    frac = float(hard.mean())
    area = 0.0 if frac == 0 or frac == 1 else float(min(1.0, frac / 0.005, (1 - frac) / 0.1))
    # JPEG q85 ringing leaves residuals of 0.02-0.05 on correct edges; wrong models give 0.1 and more.
    unmix = 0.5 if residual is None else float(np.clip(1 - max(0.0, residual - 0.03) / 0.15, 0, 1))
    factors = {"border": border_share, "agreement": float(agreement), "unmix": unmix, "area": area}
    conf = float(np.clip(np.prod(list(factors.values())), 0, 1))
    return conf, {k: round(float(v), 4) for k, v in factors.items()}
