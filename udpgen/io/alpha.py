"""Straight <-> premultiplied alpha, the one implementation (shard writers, compositing, the trainer, inference).

Straight alpha is what image files hold (uint8 RGBA); premultiplied float is what filtering, compositing and
the networks use: resampling straight colour bleeds the colour of transparent pixels into the edges."""
from __future__ import annotations

import numpy as np

__all__ = ["premultiply", "unpremultiply"]

_INV255 = np.float32(1 / 255)


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 straight alpha (or float in [0, 1]) -> (..., 4) float32 premultiplied in [0, 1]."""
    x = rgba.astype(np.float32) * _INV255 if rgba.dtype == np.uint8 else np.array(rgba, dtype=np.float32)
    x[..., :3] *= x[..., 3:]
    return x


def unpremultiply(pre: np.ndarray) -> np.ndarray:
    """(..., 4) float premultiplied in [0, 1] -> (..., 4) uint8 straight alpha; fully transparent pixels are
    black (their colour is undefined)."""
    a = np.clip(pre[..., 3:], 0, 1)
    rgb = np.where(a > 1e-4, np.clip(pre[..., :3], 0, 1) / np.maximum(a, 1e-4), 0)
    return np.rint(np.clip(np.concatenate([rgb, a], -1), 0, 1) * 255).astype(np.uint8)
