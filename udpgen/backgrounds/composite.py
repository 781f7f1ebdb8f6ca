"""Paste an RGBA cut-out onto k random backgrounds: the one implementation used by the shard writer and
by the trainer's data pipeline (conr.data: ``target_composites``), so it is pure numpy (no torch, no cv2),
channels-last, and works on uint8 and float32 inputs alike.

Randomness is split from the pixels: :func:`sample_params` draws one :class:`PasteParams` per composite
from a ``numpy.random.Generator``; :func:`apply_params` renders it. :func:`place_foreground` moves any
other per-pixel array (a UDP image, a mask) exactly like the cut-out, so labels stay aligned when the
character itself is scaled, shifted or flipped. The defaults leave the character where it is (the paper
keeps the composite aligned with the target UDP) and vary only the background.

Shapes and dtypes:
    cut-out     (H, W, 4)  uint8 in 0..255, or float32 in [0, 1]; straight alpha unless premultiplied=True
    background  (h, w, 3)  uint8 or float32 in [0, 1]; any size (it is scaled to cover, cropped, flipped)
    output      (k, Ho, Wo, 3) in the cut-out's dtype (uint8 rounded, float32 in [0, 1]); alpha (k, Ho, Wo)
                float32: the placed cut-out's coverage. (Ho, Wo) = out_size, default the cut-out's (H, W).
Sampling is bilinear with pixel centres at +0.5 (no area filter: zooming out far aliases).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from udpgen.errors import SettingsError
from udpgen.settings import check_settings, setting
from udpgen.io.alpha import premultiply

__all__ = ["SettingsError", "CompositeSettings", "PasteParams", "Composites", "composite", "sample_params",
           "apply_params",
           "place_foreground"]


@dataclass(frozen=True)
class CompositeSettings:
    """Ranges of the random paste. Probabilities in [0,1]; jitters are +- amplitudes of a factor around 1."""
    bg_zoom: tuple[float, float] = setting((1.0, 1.6), kind="pair", low=0, open_low=True)  # over "just covers"
    bg_hflip: float = setting(0.5, low=0, high=1)
    bg_vflip: float = setting(0.0, low=0, high=1)
    bg_brightness: float = setting(0.25, low=0, high=1, open_high=True)
    bg_contrast: float = setting(0.25, low=0, high=1, open_high=True)
    bg_saturation: float = setting(0.4, low=0, high=1, open_high=True)
    fg_scale: tuple[float, float] = setting((1.0, 1.0), kind="pair", low=0, open_low=True)  # about the centre
    fg_shift: float = setting(0.0, low=0, high=1)    # cut-out shift, at most this fraction of the output size
    fg_hflip: float = setting(0.0, low=0, high=1)
    fg_brightness: float = setting(0.0, low=0, high=1, open_high=True)
    fg_contrast: float = setting(0.0, low=0, high=1, open_high=True)
    fg_saturation: float = setting(0.0, low=0, high=1, open_high=True)

    def __post_init__(self):
        check_settings(self)


@dataclass(frozen=True)
class PasteParams:
    """One composite's draw. Boxes are (y0, x0, y1, x1) in source pixels (float; the region sampled);
    jitter tuples are (brightness, contrast, saturation) factors."""
    bg_index: int
    bg_box: tuple[float, float, float, float]
    bg_hflip: bool
    bg_vflip: bool
    bg_jitter: tuple[float, float, float]
    fg_scale: float = 1.0
    fg_shift: tuple[float, float] = (0.0, 0.0)  # (dy, dx) in output pixels
    fg_hflip: bool = False
    fg_jitter: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Composites:
    """images (k, Ho, Wo, 3) in the cut-out's dtype; alpha (k, Ho, Wo) float32; params: the k draws."""
    images: np.ndarray
    alpha: np.ndarray
    params: list[PasteParams] = field(default_factory=list)


def _float(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a.astype(np.float32) * np.float32(1 / 255)
    if a.dtype in (np.float32, np.float64):
        return a.astype(np.float32, copy=False)
    raise TypeError(f"expected uint8 or float32 pixels, got {a.dtype}")


def _size2(out_size, default) -> tuple[int, int]:
    if out_size is None:
        return int(default[0]), int(default[1])
    h, w = (out_size, out_size) if np.isscalar(out_size) else out_size
    if int(h) < 1 or int(w) < 1:
        raise ValueError(f"out_size must be positive, got {out_size!r}")
    return int(h), int(w)


def _axis(n_out: int, start: float, stop: float, n_in: int, flip: bool, zero_outside: bool):
    """Bilinear taps along one axis: output pixel i samples source coordinate start + (i+0.5)*step - 0.5
    (reversed when flipped). Returns (i0, i1, w0, w1). Outside the source, taps either fade to zero
    (cut-outs: transparent beyond their frame) or repeat the edge pixel (backgrounds)."""
    step = (stop - start) / n_out
    c = start + (np.arange(n_out, dtype=np.float64) + 0.5) * step - 0.5
    if flip:
        c = c[::-1]
    f = np.floor(c)
    w1 = (c - f).astype(np.float32)
    w0 = 1 - w1
    if zero_outside:
        w0 = np.where((f < 0) | (f > n_in - 1), 0, w0).astype(np.float32)
        w1 = np.where((f + 1 < 0) | (f + 1 > n_in - 1), 0, w1).astype(np.float32)
    i0 = np.clip(f, 0, n_in - 1).astype(np.intp)
    i1 = np.clip(f + 1, 0, n_in - 1).astype(np.intp)
    return i0, i1, w0, w1


def _resample(img: np.ndarray, box, out_hw, hflip=False, vflip=False, zero_outside=True) -> np.ndarray:
    """Bilinear sample of (h, w, C) ``img`` over box (y0, x0, y1, x1) -> (Ho, Wo, C) float32, in the units of
    ``img`` (uint8 input gives 0..255 floats: callers scale once at the end instead of converting a whole
    background image first)."""
    y0, x0, y1, x1 = box
    iy0, iy1, wy0, wy1 = _axis(out_hw[0], y0, y1, img.shape[0], vflip, zero_outside)
    ix0, ix1, wx0, wx1 = _axis(out_hw[1], x0, x1, img.shape[1], hflip, zero_outside)
    # only the columns the taps reach: a zoomed background is sampled over part of its width
    lo, hi = int(min(ix0.min(), ix1.min())), int(max(ix0.max(), ix1.max())) + 1
    img = img[:, lo:hi]
    rows = img[iy0] * wy0[:, None, None] + img[iy1] * wy1[:, None, None]
    return rows[:, ix0 - lo] * wx0[None, :, None] + rows[:, ix1 - lo] * wx1[None, :, None]


_LUMA = np.float32([0.299, 0.587, 0.114])


def _jitter(rgb: np.ndarray, factors) -> np.ndarray:
    """Brightness b, contrast c (about the mean grey), saturation s (about the pixel's grey) on float32
    (..., 3). All three are linear in the pixel, so they fold into one 3 x 3 matrix and an offset:
    out = b c (s x + (1 - s) grey(x)) + (1 - c) mean(grey(b x)), clipped to [0, 1]."""
    b, c, s = factors
    if (b, c, s) == (1.0, 1.0, 1.0):
        return rgb
    # x @ M with M = b c (s I + (1 - s) luma 1^T): column j of M gives output channel j
    m = np.float32(b * c) * (np.float32(s) * np.eye(3, dtype=np.float32)
                             + np.float32(1 - s) * _LUMA[:, None] * np.ones((1, 3), np.float32))
    offset = np.float32(1 - c) * np.float32(b) * (rgb @ _LUMA).mean(dtype=np.float32)
    return np.clip(rgb @ m + offset, 0, 1)


def sample_params(rng: np.random.Generator, settings: CompositeSettings, bg_shapes: Sequence[tuple[int, ...]],
                  out_size: tuple[int, int]) -> PasteParams:
    """Draw one composite's parameters; ``bg_shapes`` are the (h, w, ...) shapes of the backgrounds."""
    s = settings
    i = int(rng.integers(len(bg_shapes)))
    h, w = bg_shapes[i][:2]
    ho, wo = out_size
    zoom = rng.uniform(*s.bg_zoom)
    scale = max(ho / h, wo / w) * zoom  # output pixels per background pixel
    ch, cw = ho / scale, wo / scale
    y0, x0 = rng.uniform(0, h - ch), rng.uniform(0, w - cw)
    u = lambda amp: float(rng.uniform(1 - amp, 1 + amp)) if amp else 1.0  # noqa: E731
    bg_jit = (u(s.bg_brightness), u(s.bg_contrast), u(s.bg_saturation))
    fg_scale = float(rng.uniform(*s.fg_scale))
    shift = (float(rng.uniform(-1, 1) * s.fg_shift * ho), float(rng.uniform(-1, 1) * s.fg_shift * wo)) \
        if s.fg_shift else (0.0, 0.0)
    return PasteParams(i, (float(y0), float(x0), float(y0 + ch), float(x0 + cw)), bool(rng.random() < s.bg_hflip),
                       bool(rng.random() < s.bg_vflip), bg_jit, fg_scale, shift, bool(rng.random() < s.fg_hflip),
                       (u(s.fg_brightness), u(s.fg_contrast), u(s.fg_saturation)))


def _fg_box(params: PasteParams, in_hw, out_hw):
    """Source box of the cut-out for the output frame: scale about the centres, then shift."""
    (h, w), (ho, wo) = in_hw, out_hw
    sy, sx = ho / h * params.fg_scale, wo / w * params.fg_scale  # output pixels per cut-out pixel
    cy, cx = h / 2 - params.fg_shift[0] / sy, w / 2 - params.fg_shift[1] / sx
    return cy - ho / sy / 2, cx - wo / sx / 2, cy + ho / sy / 2, cx + wo / sx / 2


def place_foreground(arr: np.ndarray, params: PasteParams, out_size: tuple[int, int],
                     nearest: bool = False) -> np.ndarray:
    """Move (H, W[, C]) ``arr`` like the cut-out of ``params`` -> (Ho, Wo[, C]) float32, zeros outside.
    nearest=True samples without blending (for UDP images and label maps)."""
    a = _float(arr) if arr.dtype == np.uint8 else arr.astype(np.float32, copy=False)
    squeeze = a.ndim == 2
    a = a[..., None] if squeeze else a
    box = _fg_box(params, a.shape[:2], out_size)
    if nearest:
        def idx(n_out, start, stop, n_in, flip):
            c = start + (np.arange(n_out) + 0.5) * (stop - start) / n_out
            c = c[::-1] if flip else c
            return np.clip(np.floor(c), 0, n_in - 1).astype(np.intp), (c >= 0) & (c < n_in)
        iy, vy = idx(out_size[0], box[0], box[2], a.shape[0], False)
        ix, vx = idx(out_size[1], box[1], box[3], a.shape[1], params.fg_hflip)
        out = a[iy][:, ix] * (vy[:, None] & vx[None, :])[..., None]
    else:
        out = _resample(a, box, out_size, hflip=params.fg_hflip)
    return out[..., 0] if squeeze else out


def _premultiplied(cutout: np.ndarray, premultiplied: bool) -> np.ndarray:
    """(H, W, 4) cut-out -> float32 premultiplied RGBA in [0, 1]."""
    fg = _float(cutout)
    if fg.ndim != 3 or fg.shape[2] != 4:
        raise ValueError(f"cut-out must be (H, W, 4), got {cutout.shape}")
    return fg if premultiplied else premultiply(fg)


def _render(pre: np.ndarray, background: np.ndarray, params: PasteParams, out_hw) -> tuple[np.ndarray, np.ndarray]:
    """One composite of the premultiplied float32 cut-out ``pre`` -> ((Ho, Wo, 3) float32, (Ho, Wo) alpha)."""
    if out_hw == pre.shape[:2] and params.fg_scale == 1.0 and params.fg_shift == (0.0, 0.0) and not params.fg_hflip:
        placed = pre          # the identity placement (the default): bilinear taps of weight 1 and 0 exactly
    else:
        placed = _resample(pre, _fg_box(params, pre.shape[:2], out_hw), out_hw, hflip=params.fg_hflip)
    alpha = np.clip(placed[..., 3], 0, 1)
    col = placed[..., :3]
    if params.fg_jitter != (1.0, 1.0, 1.0):
        straight = np.where(alpha[..., None] > 1e-6, col / np.maximum(alpha[..., None], 1e-6), 0)
        col = _jitter(np.clip(straight, 0, 1), params.fg_jitter) * alpha[..., None]
    if background.dtype not in (np.uint8, np.float32):
        background = _float(background)               # float64 -> float32; other dtypes raise
    bg = background[..., None].repeat(3, 2) if background.ndim == 2 else background[..., :3]
    bg = _resample(bg, params.bg_box, out_hw, params.bg_hflip, params.bg_vflip, zero_outside=False)
    if background.dtype == np.uint8:
        bg *= np.float32(1 / 255)
    bg = _jitter(np.clip(bg, 0, 1), params.bg_jitter)
    return np.clip(col + bg * (1 - alpha[..., None]), 0, 1), alpha


def apply_params(cutout: np.ndarray, background: np.ndarray, params: PasteParams, out_size=None,
                 premultiplied: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Render one composite -> ((Ho, Wo, 3) float32 in [0,1], (Ho, Wo) float32 alpha)."""
    pre = _premultiplied(cutout, premultiplied)
    return _render(pre, background, params, _size2(out_size, pre.shape[:2]))


def composite(cutout: np.ndarray, backgrounds: Sequence[np.ndarray], k: int, rng: np.random.Generator,
              settings: CompositeSettings = CompositeSettings(), out_size=None,
              premultiplied: bool = False) -> Composites:
    """Paste ``cutout`` on ``k`` backgrounds drawn with replacement from ``backgrounds`` (see the module
    docstring for shapes). The same rng state gives the same composites, bit for bit."""
    if k < 1 or not len(backgrounds):
        raise ValueError(f"need k >= 1 and at least one background, got k={k}, {len(backgrounds)} backgrounds")
    out_hw = _size2(out_size, cutout.shape[:2])
    params = [sample_params(rng, settings, [b.shape for b in backgrounds], out_hw) for _ in range(k)]
    pre = _premultiplied(cutout, premultiplied)           # once for the k composites
    imgs, alphas = zip(*(_render(pre, backgrounds[p.bg_index], p, out_hw) for p in params))
    images = np.stack(imgs)
    if cutout.dtype == np.uint8:
        images = np.round(images * 255).astype(np.uint8)
    return Composites(images, np.stack(alphas).astype(np.float32), params)
