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
   background, as far as a ball of radius ``gap_px`` rolling in from the frame reaches them (trapped-ball
   filling, as in line-art colourisation tools): a large region it can only enter through a break in the
   outline narrower than the ball (sketchy line art; a white jacket on a white page) is split off as an
   enclosed component and judged by the pocket tests below, so a garment behind a gapped outline stays
   foreground; the small bits the ball misses (corners, anti-aliased rims) stay background. Components not touching it (an "enclosed pocket", e.g. between arm and body) are
   background too when they are large (``pocket_min_area``), of the background colour itself (the
   median colour of their interior within ``pocket_threshold`` of a border colour: JPEG noise averages
   out, the consistent offset of a light garment or of skin does not; spread below ``pocket_max_std``)
   and walled off from the outside background (at most ``pocket_max_hug`` of their boundary within
   ``pocket_gap_px`` of it: a white blouse, white boots are separated from the outside by their own
   outline only, a real pocket by whole limbs). Pockets are taken innermost first (least boundary near
   the outside) and then count as background for that test: a white torso whose sides face the
   pockets behind both arms through its outline is a garment, though only its shoulder line faces the
   outside. Small ones (eye highlights) stay foreground. A region closed by a single thin line (a loop
   of one hair strand) stays foreground: markers settle it.
3. User markers override: a candidate component touched by a green scribble is not background, one
   touched by a red scribble is; the scribbled pixels themselves become watershed seeds of their class.
4. Seeds: background shrunk by ``margin_px``; foreground = pixels at least ``margin_px`` away from any
   background. ``cv2.watershed`` floods the band between them over min(dist / edge_contrast, 1), so the
   cut lands on the first clear departure from the background colour (outside the outline), and thin
   strands joined to the body stay foreground.
   Textured backgrounds (mean frame ``dist`` above ``texture_threshold``: photos, patterns) have no
   colour to compare with; there cv2.grabCut (colour mixture models) runs at ``fallback_size``, seeded
   with the frame as sure background and the candidates as probable background (or, given a ``prior``,
   a segmentation network's mask is taken instead), then the colour watershed snaps its cut to edges at
   full size.
5. Soft alpha in an ``edge_px`` band around the cut (:mod:`udpgen.drawn.soft_alpha`): each pixel C is unmixed against the nearest pure
   background colour B and nearest pure foreground colour F, alpha = <C-B, F-B> / |F-B|^2 (exact for
   anti-aliased edges over a known background). On a lossless background, where F does not explain C
   (C far from the segment B-F: a dark outline whose nearest interior pixel is the light fill behind
   it), the foreground 8-neighbour that explains it best is F instead. Where F and B are too alike to
   unmix, a guided filter of the hard mask is used instead. The foreground colour is then solved from
   C = aF + (1-a)B, so edge pixels carry no background tint.

Confidence (a float in [0,1], the product of six factors, each in [0,1]; see :func:`_confidence`):
``border`` (share of the frame the background model explains: low on photos / textures / characters
cut by the frame), ``agreement`` (IoU between the final mask and a second, threshold-only seeding at
twice the tolerance: low when the cut depends on a fragile threshold), ``unmix`` (1 - the mean colour
residual of the edge model in the band beyond JPEG-level noise, scaled: low when edges are not a mix
of two flat colours; fixed at 0.5 on textured backgrounds, so those never score above 0.5),
``area`` (0 for an empty or full mask, falling off below 0.5 % or above 90 % of the image),
``edges`` (textured backgrounds only, else 1: the share of the cut lying on a clear grey step, to the
8th power; outlined characters give 90-100 %, cuts leaking into the texture less) and ``purity`` (flat
backgrounds only, else 1: falls as the background keeps regions that match the border colour only
loosely, e.g. a dark skirt on a dark background given to it). Read it as a review order, not a
probability: bench/matting.py measures how many failures (IoU < 0.9) land in the lowest-confidence
10 %. Below 0.5 means "look at this one".

Markers: an RGB(A) image of the same size; pure green (0,255,0) = foreground, pure red (255,0,0) =
background (each channel within 60 of those values, alpha > 0 where there is an alpha); anything else
is ignored, so a black or transparent canvas with a few strokes is a valid marker file.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from udpgen.errors import SettingsError, UdpgenError
from udpgen.drawn.soft_alpha import edges, guided_filter
from udpgen.settings import check_settings, setting

__all__ = ["MattingSettings", "MatteResult", "SettingsError", "matte", "alpha_is_meaningful",
           "require_character", "marker_masks", "guided_filter"]


@dataclass(frozen=True)
class MattingSettings:
    """Knobs of :func:`matte`. Colour distances are CIE76 Delta E in Lab (L in 0..100); lengths in pixels."""
    # a pixel this close to a border colour may be background
    bg_threshold: float = setting(10.0, low=0, open_low=True)
    # an enclosed pocket is background when its median interior colour is this close to a border colour,
    # the spread of its distances (flat fill) at most pocket_max_std, its area (fraction of the image) at
    # least pocket_min_area, and at most pocket_max_hug of its boundary within pocket_gap_px (at 512 px)
    # of the outside background (else: a light garment inside its outline)
    pocket_threshold: float = setting(1.7, low=0, open_low=True)
    pocket_max_std: float = setting(5.0, low=0)
    pocket_min_area: float = setting(0.0005, low=0, high=1)
    pocket_gap_px: float = setting(6.0, low=0, open_low=True)
    pocket_max_hug: float = setting(0.25, low=0, high=1)
    # trapped ball radius (at 512 px): the outside background floods only where a ball this wide fits, so
    # outline gaps up to 2 * gap_px px stay closed (0: plain flood fill)
    gap_px: float = setting(3.0, low=0)
    # the frame that defines the background colour: its width, k-means centres on it; a centre must hold
    # min_border_share of the frame (the largest always counts) and lie max_centre_spread of the largest
    border_px: int = setting(2, kind=int, low=0, open_low=True)
    max_border_colours: int = setting(3, kind=int, low=0, open_low=True)
    min_border_share: float = setting(0.15, low=0, high=1)
    max_centre_spread: float = setting(30.0, low=0, open_low=True)
    # half width of the band the watershed decides; distance at which its elevation saturates (_watershed)
    margin_px: int = setting(2, kind=int, low=0, open_low=True)
    edge_contrast: float = setting(14.0, low=0, open_low=True)
    # soft alpha: half width of the band around the cut; |F - B| (RGB in 0..1) below which an edge pixel is
    # not unmixed; |aF + (1-a)B - C| up to which F explains C
    edge_px: int = setting(1, kind=int, low=0)
    min_contrast: float = setting(0.12, low=0)
    unmix_tol: float = setting(0.06, low=0)
    # mean frame distance to the border colours above which the background counts as textured (JPEG noise
    # on a flat one is ~1); textured: grabCut (colour models) seeded from the frame instead, with the
    # longer side at most fallback_size (it is slow)
    texture_threshold: float = setting(2.5, low=0)
    texture_fallback: bool = setting(True, kind=bool)
    fallback_size: int = setting(256, kind=int, low=0, open_low=True)
    # confidence: grey step (levels) of a clear edge on textured backgrounds; on flat ones, background this
    # far (times bg_threshold) from the border colours is only a loose match
    edge_step: float = setting(50.0, low=0, open_low=True)
    loose_share: float = setting(0.6, low=0, open_low=True)
    # guided filter (fallback soft alpha): window radius, regulariser (image in 0..1)
    guided_radius: int = setting(2, kind=int, low=0, open_low=True)
    guided_eps: float = setting(1e-3, low=0, open_low=True)

    def __post_init__(self):
        check_settings(self)


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


def require_character(rgba: np.ndarray, kept: bool = False) -> None:
    """Raise UdpgenError when a cut-out (H, W, 4) uint8 holds no character: its alpha is all 0 (nothing
    differs from the border colours), or, unless ``kept`` (the input's own alpha), all above 0 (no
    background along the border). The one rule for `udpgen matte`, its review page and handdrawn."""
    a = rgba[..., 3]
    if not (a > 0).any():
        raise UdpgenError("no character found: the matte is empty (nothing differs from the border colours; "
                          "draw marker scribbles or cut it out first)")
    if not kept and (a > 0).all():
        raise UdpgenError("no background border: the matte keeps the whole image (draw marker scribbles "
                          "or cut it out first)")


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


def matte(image: np.ndarray, markers: np.ndarray | None = None,
          settings: MattingSettings = MattingSettings(),
          prior: np.ndarray | Callable[[], np.ndarray] | None = None) -> MatteResult:
    """Cut the character out of ``image``.

    image: (H, W, 3) uint8 RGB, or (H, W, 4) uint8 RGBA (when its alpha is meaningful, see
        :func:`alpha_is_meaningful`, it is returned unchanged with confidence 1).
    markers: optional (H, W, 3|4) uint8 scribbles (green = foreground, red = background).
    prior: optional (H, W) float foreground probability in [0, 1] (a segmentation network's, see
        udpgen.drawn.masks.network_prior). Used on textured backgrounds only, where no colour model of
        the background exists: its mask (>= 0.5) replaces grabCut's, and the colour watershed snaps it to
        the image's edges at full size as it does grabCut's (:func:`_refine`). On flat backgrounds the
        colour model is the better judge and it is not used. A callable is called (with no argument) for
        it only when it is used: a network runs on textured backgrounds alone.
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
    bg, n_pockets = _background(dist, frame, s, fg_user, bg_user, lab, centres)
    if n_pockets:
        notes.append(f"{n_pockets} enclosed background pocket(s)")

    frame_noise = float(dist[frame].mean())
    textured = s.texture_fallback and frame_noise > s.texture_threshold
    if textured:
        notes.append(f"textured background (mean frame distance {frame_noise:.1f}): grabCut fallback")
        seed_bg = bg if len(all_centres) == len(centres) else \
            _background(_distance_to(lab, all_centres), frame, s, fg_user, bg_user, lab, all_centres)[0]
        if callable(prior):
            prior = prior()
        if prior is not None:
            if getattr(prior, "shape", None) != (h, w):
                raise UdpgenError(f"prior must be (H, W) = {(h, w)}, got {getattr(prior, 'shape', type(prior))}")
            notes.append("the network's mask instead of grabCut")
            hard = prior >= 0.5
            if fg_user is not None:
                hard[fg_user], hard[bg_user] = True, False
        else:
            hard = _grabcut(rgb, seed_bg, frame, s, fg_user, bg_user)
        hard = _refine(rgb, hard, s, fg_user, bg_user)
    else:
        if prior is not None:
            notes.append("network mask unused: flat background (the colour model decides)")
        hard = _watershed(dist, bg, s, fg_user, bg_user)
    alpha, fg_rgb, residual = edges(rgb, hard, bg, s, clean=not textured, crop=not textured)
    # Fully transparent pixels carry no colour (smaller PNGs, no stray tint). cv2, not numpy boolean
    # indexing, for speed; convertScaleAbs rounds like np.round.
    colour = cv2.bitwise_and(fg_rgb, fg_rgb, mask=(alpha > 0).view(np.uint8))
    rgba = np.dstack([colour, cv2.convertScaleAbs(alpha, alpha=255)])

    # Second seeding for the agreement factor: threshold only, twice the tolerance, no watershed.
    bg2, _ = _background(dist, frame, replace(s, bg_threshold=2 * s.bg_threshold),
                         fg_user, bg_user, lab, centres)
    if textured:
        conf, factors = _confidence(hard, ~bg2, border_share, None, support=_edge_support(rgb, hard, s))
    else:
        conf, factors = _confidence(hard, ~bg2, border_share, residual, loose=_loose_background(dist, hard, s))
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
    ones = np.ones((1, 3), np.float32)
    for c in centres:
        # cv2 per-pixel ops: numpy's sum over a length-3 last axis is an order of magnitude slower.
        diff = cv2.subtract(lab, (float(c[0]), float(c[1]), float(c[2]), 0.0))
        d = cv2.sqrt(cv2.transform(cv2.multiply(diff, diff), ones))
        best = d if best is None else np.minimum(best, d)
    return best


def _background(dist, frame, s, fg_user, bg_user, lab=None, centres=None) -> tuple[np.ndarray, int]:
    """Background mask (H, W) bool: candidate components touching the frame, plus enclosed pockets (see
    :func:`_pockets`), with user scribbles deciding the components they touch. Also returns the number
    of pockets taken. ``lab``/``centres`` (the image in Lab, the border colours) feed the pocket colour
    test; without them a pocket's colour is judged from ``dist`` alone."""
    cand = (dist < s.bg_threshold).astype(np.uint8)
    if bg_user is not None:
        cand[bg_user] = 1
    n, labels, stats, _ = cv2.connectedComponentsWithStats(cand, connectivity=4)
    if n <= 1:
        return np.zeros(dist.shape, bool), 0
    is_bg = np.zeros(n, bool)
    is_bg[np.unique(labels[frame])] = True
    is_bg[0] = False
    if s.gap_px > 0:
        labels, stats, is_bg, n = _trapped(cand, labels, stats, is_bg, frame, s)
    area = stats[:, cv2.CC_STAT_AREA]
    big = ~is_bg & (area >= max(1.0, s.pocket_min_area * dist.size))
    big[0] = False
    pocket = _pockets(cand, labels, stats, is_bg, big, dist, s, lab, centres) if big.any() else big
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


def _trapped(cand, labels, stats, is_bg, frame, s):
    """Trapped-ball split of the frame-connected background (as in trapped-ball filling for line-art
    colourisation, Zhang et al. 2009): a ball of radius ``gap_px`` (scaled from 512 px) rolls from the
    frame through the candidates; what it cannot reach without squeezing through a gap narrower than
    the ball, and that is large (``pocket_min_area``, and several balls' area), becomes an enclosed
    component of its own under a new label, so the pocket tests decide it (a white jacket behind a
    broken outline stays foreground). Small unreached bits (corners, anti-aliased rims) stay background.
    Returns the new (labels, stats, is_bg, n)."""
    h, w = cand.shape
    r = s.gap_px * max(1.0, max(h, w) / 512)
    ri = max(1, int(round(r)))
    ball = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ri + 1, 2 * ri + 1))
    outer = is_bg[labels]
    # Outside the image counts as background, so the ball enters along the whole frame.
    core = cv2.erode(outer.astype(np.uint8), ball, borderType=cv2.BORDER_CONSTANT, borderValue=1)
    nc, clab = cv2.connectedComponents(core, connectivity=8)
    seeded = np.zeros(nc, bool)
    seeded[np.unique(clab[frame & core.astype(bool)])] = True
    seeded[0] = False
    reached = cv2.dilate(seeded[clab].astype(np.uint8), ball).astype(bool) & outer
    left = (outer & ~reached).astype(np.uint8)
    nl, llab, lstats, _ = cv2.connectedComponentsWithStats(left, connectivity=4)
    if nl <= 1:
        return labels, stats, is_bg, len(is_bg)
    touches = np.zeros(nl, bool)
    touches[np.unique(llab[frame])] = True
    min_area = max(s.pocket_min_area * h * w, 4 * np.pi * ri * ri)
    new = ~touches & (lstats[:, cv2.CC_STAT_AREA] >= min_area)
    new[0] = False
    ids = np.flatnonzero(new)
    if not len(ids):
        return labels, stats, is_bg, len(is_bg)
    n = len(is_bg)
    remap = np.zeros(nl, np.int32)
    remap[ids] = n + np.arange(len(ids), dtype=np.int32)
    labels = labels.copy()
    sel = new[llab]
    labels[sel] = remap[llab[sel]]
    stats = np.concatenate([stats, lstats[ids]])
    is_bg = np.concatenate([is_bg, np.zeros(len(ids), bool)])
    return labels, stats, is_bg, len(is_bg)


def _pockets(cand, labels, stats, outer, big, dist, s, lab, centres) -> np.ndarray:
    """Which of the ``big`` enclosed candidate components (bool per label) are background pockets.

    Two tests, both needed:

    * colour: the per-channel median Lab colour of the component's interior (pixels 2 px inside it,
      clear of anti-aliasing and most JPEG ringing) lies within ``pocket_threshold`` of a border colour.
      True background is the border colour exactly, or JPEG noise around it, whose median is that
      colour again; a light garment, skin or a specular highlight is a consistent offset from it (a
      toon-shaded "white" blouse is lit at about 250 grey, 1.9 Delta E from paper white). The spread
      of the distances stays bounded by ``pocket_max_std`` (flat fill).
    * shape: at most ``pocket_max_hug`` of its boundary lies within ``pocket_gap_px`` (at 512 px; scaled
      with larger images) of the frame-connected background. A real pocket (between an arm and the
      body, between the legs) is walled off from the outside by whole limbs, fill and outlines on both
      sides; a white garment or boot is separated from the outside background only by its own
      outline, along much of its silhouette. (An enclosed region cut off by a single thin line, e.g.
      a loop of one hair strand, looks the same: it stays foreground; markers settle it.)
    """
    h, w = dist.shape
    n = len(big)
    gap = s.pocket_gap_px * max(1.0, max(h, w) / 512)
    # Work in the bounding box of the components plus the gap (all that the tests below look at).
    st = stats[big]
    pad = int(np.ceil(gap)) + 3
    x0, y0 = max(0, int(st[:, 0].min()) - pad), max(0, int(st[:, 1].min()) - pad)
    x1 = min(w, int((st[:, 0] + st[:, 2]).max()) + pad)
    y1 = min(h, int((st[:, 1] + st[:, 3]).max()) + pad)
    cand, labels, dist = cand[y0:y1, x0:x1], labels[y0:y1, x0:x1], dist[y0:y1, x0:x1]
    lab = None if lab is None else lab[y0:y1, x0:x1]
    sel = big[labels]
    # Interior: the candidate mask eroded by 2 px (4-connected components keep their labels).
    inner = cv2.erode(cand, np.ones((5, 5), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    inner = inner.astype(bool) & sel
    ids_in = labels[inner]
    has_inner = np.bincount(ids_in, minlength=n) > 0
    use = inner | (sel & ~has_inner[labels])  # components too thin for an interior: all their pixels
    ids = labels[use]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    cuts = np.flatnonzero(np.diff(ids)) + 1
    groups = np.split(order, cuts)
    keys = ids[np.r_[0, cuts]] if len(ids) else np.zeros(0, np.int64)
    off = np.full(n, np.inf)
    if lab is not None and centres is not None:
        vals = lab[use]
        for k, g in zip(keys, groups):
            med = np.median(vals[g], axis=0)
            off[k] = float(np.sqrt(((centres - med) ** 2).sum(axis=1)).min())
    else:  # no colour: the median distance (an upper bound of the median colour's distance)
        vals = dist[use]
        for k, g in zip(keys, groups):
            off[k] = float(np.median(vals[g]))
    # Spread of the distances over the whole component (few pixels: large enclosed components only).
    lab_sel, d_sel = labels[sel], dist[sel].astype(np.float64)
    cnt = np.maximum(np.bincount(lab_sel, minlength=n), 1)
    mean = np.bincount(lab_sel, weights=d_sel, minlength=n) / cnt
    std = np.sqrt(np.maximum(np.bincount(lab_sel, weights=d_sel ** 2, minlength=n) / cnt - mean ** 2, 0))
    pocket = big & (off < s.pocket_threshold) & (std < s.pocket_max_std)
    if pocket.any() and s.pocket_max_hug < 1:
        pocket = _innermost_pockets(cand, labels, sel, outer, pocket, gap, s.pocket_max_hug)
    return pocket


def _innermost_pockets(cand, labels, sel, outer, colour_ok, gap, max_hug) -> np.ndarray:
    """The shape test of :func:`_pockets`: which components passing the colour test (bool per label in
    ``colour_ok``) are pockets, taken innermost first.

    A thin outline with background-coloured pixels on both sides means at least one side is the
    character: an outline is not drawn between two patches of background. So a component is judged
    against all the background found so far, the outside and the pockets already taken: the one with the
    least boundary near the outside (``hug``) first; it is a pocket when at most ``max_hug`` of its
    boundary lies within ``gap`` px of that background, and then counts as background for the rest. A
    white torso whose sides face the pockets behind both arms, and its broken shoulder line the outside,
    is a garment, though little of it faces the outside alone; the pockets are still pockets (they face
    the torso, which is not background when they are judged). All arrays are the crop of :func:`_pockets`;
    ``labels`` (h, w) int32, ``sel``/``cand`` the big components / the candidates, ``outer`` bool per label
    (frame-connected background)."""
    n = len(colour_ok)
    background = outer[labels]
    near = cv2.distanceTransform((~background).astype(np.uint8), cv2.DIST_L2, 3) <= gap
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    edge = sel & ~cv2.erode(cand, cross, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    ids = np.flatnonzero(colour_ok)
    edge_at = {int(k): np.flatnonzero(edge & (labels == k)) for k in ids}
    hug0 = {k: float(near.flat[e].mean()) if len(e) else 0.0 for k, e in edge_at.items()}
    pocket = np.zeros(n, bool)
    pad = int(np.ceil(gap)) + 1
    h, w = labels.shape
    for k in sorted(hug0, key=lambda k: (hug0[k], k)):
        e = edge_at[k]
        if (float(near.flat[e].mean()) if len(e) else 0.0) > max_hug:
            continue
        pocket[k] = True
        ys, xs = np.nonzero(labels == k)
        y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
        x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
        inside = labels[y0:y1, x0:x1] == k
        near[y0:y1, x0:x1] |= cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 3) <= gap
    return pocket


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


def _edge_support(rgb, hard, s) -> float:
    """Share of the cut's pixels (the foreground's outermost ring) within 1 px of a clear grey step
    (a Sobel magnitude of 4 * ``edge_step``: a step of that many grey levels over one pixel).
    Drawn characters are outlined, so a right cut on a textured background runs along strong steps; a
    cut that leaks into the texture or through a flat fill runs partly over weak ones."""
    x, y, bw, bh = cv2.boundingRect(hard.astype(np.uint8))
    if bw == 0:
        return 0.0
    h, w = hard.shape
    y0, y1, x0, x1 = max(0, y - 2), min(h, y + bh + 2), max(0, x - 2), min(w, x + bw + 2)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    mag = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    strong = cv2.dilate((mag > 4 * s.edge_step).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    u8 = hard[y0:y1, x0:x1].astype(np.uint8)
    cut = u8.astype(bool) & ~cv2.erode(u8, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE).astype(bool)
    n = np.count_nonzero(cut)
    return float(np.count_nonzero(cut & strong) / n) if n else 0.0


def _loose_background(dist, hard, s) -> float:
    """Pixels of the background (2 px or more outside the cut) that match the border colours only
    loosely (``dist`` at least ``loose_share`` of ``bg_threshold``), as a fraction of the foreground
    area. A flat background is the border colour, or JPEG noise around it, right up to the outline; a
    large loosely matching region is a garment close to the background colour (or a gradient the border
    does not show) that went to the background."""
    near = cv2.dilate(hard.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    n = np.count_nonzero(hard)
    return float(np.count_nonzero(~near & (dist >= s.loose_share * s.bg_threshold)) / n) if n else 0.0


def _confidence(hard, mask2, border_share, residual, support=None, loose=0.0) -> tuple[float, dict[str, float]]:
    """Product of six factors in [0,1] (see the module docstring); returns it and the factors.
    residual None (textured background, no colour model to unmix against): the unmix factor is 0.5.
    support: :func:`_edge_support` (textured backgrounds; None: edges factor 1); loose:
    :func:`_loose_background` (flat backgrounds; 0 on textured ones)."""
    inter = np.count_nonzero(hard & mask2)
    union = np.count_nonzero(hard | mask2)
    agreement = inter / union if union else 0.0
    frac = float(hard.mean())
    area = 0.0 if frac == 0 or frac == 1 else float(min(1.0, frac / 0.005, (1 - frac) / 0.1))
    # JPEG q85 ringing leaves residuals of 0.02-0.05 on correct edges; wrong models give 0.1 and more.
    unmix = 0.5 if residual is None else float(np.clip(1 - max(0.0, residual - 0.03) / 0.15, 0, 1))
    # Correct cuts on textured backgrounds have 88-100 % support (the outline), failed ones 55-95 %:
    # a steep power spreads that range (0.95 -> 0.66, 0.85 -> 0.27, 0.7 -> 0.06) without ties at 0.
    edges = 1.0 if support is None else float(np.clip(support, 0, 1) ** 8)
    # Correct cuts leave about 1 % (JPEG ringing); a garment given to the background 20 % and more.
    purity = float(np.clip(1 - 3 * max(0.0, loose - 0.02), 0, 1))
    factors = {"border": border_share, "agreement": float(agreement), "unmix": unmix, "area": area,
               "edges": edges, "purity": purity}
    conf = float(np.clip(np.prod(list(factors.values())), 0, 1))
    return conf, {k: round(float(v), 4) for k, v in factors.items()}
