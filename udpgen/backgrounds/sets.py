"""Background images for compositing: fit to a size, drop near-duplicates, a built-in default set.

With no user data, :func:`iter_backgrounds` yields the freely licensed photos that ship inside
scikit-image plus procedurally generated flat / gradient / noise backgrounds, so compositing always works.

Built-in photos (:data:`BUILTIN`), each checked against its licence line in the skimage.data docstring
(scikit-image 0.26; the files are in the wheel, nothing is downloaded):

========== ===================================================== =================================
name       licence (skimage.data docstring)                      why it is in
========== ===================================================== =================================
astronaut  NASA, "released into the public domain"               colour photo, indoor clutter
chelsea    CC0 by the photographer (Stefan van der Walt)         colour photo, fur texture
coffee     CC0 by the photographer (Rachel Michetti)             colour photo, table scene
rocket     SpaceX, "released in the public domain"               colour photo, outdoor sky
hubble_deep_field  NASA, "may be freely used in the public domain"   dark colour texture
brick      CC0Textures, Creative Commons CC0                     grey texture (made RGB)
grass      DeviantArt, Creative Commons CC0                      grey texture (made RGB)
gravel     CC0Textures, Creative Commons CC0                     grey texture (made RGB)
camera     CC0 by the photographer (Lav Varshney)                grey photo (made RGB)
========== ===================================================== =================================

Left out on purpose: ``logo`` (the project's logo, no licence line), ``moon`` / ``page`` / ``text`` /
``coins`` ("no known copyright restrictions" or no licence line: not an explicit CC0/PD grant),
``horse`` (binary silhouette), ``retina`` / ``cell`` / microscopy images (CC0 but not a plausible backdrop),
and every image fetched with pooch (not in the wheel: a download).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from udpgen.io.images import list_images

__all__ = ["BUILTIN", "builtin_backgrounds", "fit", "dhash", "hamming", "procedural", "Source", "iter_sources",
           "make_background", "iter_backgrounds", "list_inputs"]

BUILTIN = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "brick", "grass", "gravel", "camera")
PROCEDURAL_KINDS = ("flat", "linear", "radial", "noise")


def _size2(size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return int(h), int(w)


def _rgb(img: np.ndarray) -> np.ndarray:
    """Any (H, W), (H, W, 1|3|4) uint8 -> (H, W, 3) uint8 (alpha dropped: backgrounds are opaque)."""
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def builtin_image(name: str) -> np.ndarray:
    """The :data:`BUILTIN` skimage.data image ``name`` -> (H, W, 3) uint8 RGB."""
    import skimage.data

    return _rgb(np.asarray(getattr(skimage.data, name)(), dtype=np.uint8))


def builtin_backgrounds() -> list[tuple[str, np.ndarray]]:
    """The :data:`BUILTIN` skimage.data images as (name, (H, W, 3) uint8 RGB) pairs."""
    return [(name, builtin_image(name)) for name in BUILTIN]


def fit(img: np.ndarray, size, rng: np.random.Generator | None = None) -> np.ndarray:
    """Scale ``img`` (H, W[, C]) uint8 to cover ``size`` (int or (h, w)) and crop -> (h, w, 3) uint8.
    The crop is centred, or at a random place when ``rng`` is given."""
    h, w = _size2(size)
    img = _rgb(img)
    s = max(h / img.shape[0], w / img.shape[1])
    nh, nw = max(h, round(img.shape[0] * s)), max(w, round(img.shape[1] * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    img = cv2.resize(img, (nw, nh), interpolation=interp)
    y = (nh - h) // 2 if rng is None else int(rng.integers(0, nh - h + 1))
    x = (nw - w) // 2 if rng is None else int(rng.integers(0, nw - w + 1))
    return np.ascontiguousarray(img[y:y + h, x:x + w])


def dhash(img: np.ndarray, bits: int = 8) -> int:
    """Difference hash: grey image shrunk to (bits, bits+1), one bit per horizontal step -> int of bits^2 bits.
    Near-duplicates (rescaled, recompressed, lightly edited) differ in a few bits."""
    g = _rgb(img)
    g = cv2.cvtColor(g, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(g, (bits + 1, bits), interpolation=cv2.INTER_AREA).astype(np.int16)
    diff = (small[:, 1:] > small[:, :-1]).ravel()
    return int(sum(1 << i for i, b in enumerate(diff) if b))


def hamming(a: int, b: int) -> int:
    """Number of differing bits of two hashes."""
    return bin(a ^ b).count("1")


def procedural(rng: np.random.Generator, size, kind: str | None = None) -> np.ndarray:
    """A generated background (h, w, 3) uint8: ``flat`` colour, ``linear`` / ``radial`` gradient between
    two colours, or ``noise`` (smooth multi-octave value noise tinted by two colours); kind None = random."""
    h, w = _size2(size)
    kind = kind or PROCEDURAL_KINDS[int(rng.integers(len(PROCEDURAL_KINDS)))]
    c0, c1 = rng.integers(0, 256, 3).astype(np.float32), rng.integers(0, 256, 3).astype(np.float32)
    if kind == "flat":
        t = np.zeros((h, w), np.float32)
    elif kind == "linear":
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = xx / max(w - 1, 1) * np.cos(ang) + yy / max(h - 1, 1) * np.sin(ang)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    elif kind == "radial":
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = np.hypot(yy - cy, xx - cx)
        t = t / max(float(t.max()), 1e-6)
    elif kind == "noise":
        t = np.zeros((h, w), np.float32)
        amp, total = 1.0, 0.0
        for octave in range(1, 6):
            cells = 2 ** octave + 1
            grid = rng.random((cells, cells)).astype(np.float32)
            t += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
            total += amp
            amp *= 0.5
        t = np.clip(t / total, 0, 1)
    else:
        raise ValueError(f"procedural kind must be one of {PROCEDURAL_KINDS}, got {kind!r}")
    out = c0 + t[..., None] * (c1 - c0)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def list_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Folders (their images, recursively) and files (as given) -> image paths, in order."""
    files = []
    for p in map(Path, paths):
        files += list_images(p) if p.is_dir() else [p]
    return files


@dataclass(frozen=True)
class Source:
    """One background to make: ``kind`` 'file' (``ref`` its path), 'builtin' (``ref`` a :data:`BUILTIN`
    name) or 'procedural' (``ref`` one of :data:`PROCEDURAL_KINDS`); ``key`` unique, without dots;
    ``index`` its place in the stream, which seeds its crop (:func:`make_background`)."""
    key: str
    kind: str
    ref: str
    index: int


def iter_sources(paths: Iterable[str | os.PathLike] | None, *, builtin: bool = False,
                 n_procedural: int | None = None, max_hamming: int = 6,
                 on_error=None) -> Iterator[tuple[Source, np.ndarray | None]]:
    """The backgrounds a set is made of, near-duplicates dropped -> (Source, its loaded image; None for a
    procedural one), in order: user images (``paths``: files and/or folders, searched recursively, sorted),
    then with ``builtin`` the :data:`BUILTIN` photos, then ``n_procedural`` generated ones (default 16 with
    the built-in set, else 0).

    max_hamming: an image whose 64-bit dHash (of the whole image, before any crop: two copies hash alike
    whatever their crops) is within this many bits of an earlier one is dropped (-1: none is).
    on_error: called as on_error(path, exception) for an unreadable file, which is then skipped; None = the
    udpgen.errors.FormatError propagates. Keys: the file's stem (with a counter on clashes),
    ``builtin_NAME``, ``procedural_KIND_NNNN``."""
    from udpgen.io.images import read_image

    seen: list[int] = []
    keys: set[str] = set()

    def key_for(stem: str) -> str:
        base = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem) or "image"
        k, i = base, 1
        while k in keys:
            k, i = f"{base}_{i}", i + 1
        keys.add(k)
        return k

    def novel(img) -> bool:
        h = dhash(img)
        if any(hamming(h, o) <= max_hamming for o in seen):
            return False
        seen.append(h)
        return True

    index = 0
    for p in list_inputs(paths or []):
        try:
            img = read_image(p)
        except Exception as e:  # noqa: BLE001 - handed to the caller's callback, or re-raised
            if on_error is None:
                raise
            on_error(p, e)
            continue
        if novel(img):
            yield Source(key_for(p.stem), "file", str(p), index), img
            index += 1
    if builtin:
        for name, img in builtin_backgrounds():
            if novel(img):
                yield Source(key_for(f"builtin_{name}"), "builtin", name, index), img
                index += 1
    for i in range(16 if n_procedural is None and builtin else n_procedural or 0):
        kind = PROCEDURAL_KINDS[i % len(PROCEDURAL_KINDS)]
        # Flat and gradient images hash alike (dHash sees no steps): they are not deduplicated.
        yield Source(key_for(f"procedural_{kind}_{i:04d}"), "procedural", kind, index), None
        index += 1


def make_background(source: Source, size, seed: int, img: np.ndarray | None = None) -> np.ndarray:
    """The background of ``source`` fitted to ``size`` -> (h, w, 3) uint8, with a crop (or a procedural
    image) seeded by (seed, source.index) alone, so that any worker makes it alike. img: the image already
    loaded (as :func:`iter_sources` gives it); else it is read again."""
    rng = np.random.default_rng([seed, source.index])
    if source.kind == "procedural":
        return procedural(rng, size, source.ref)
    if img is None:
        if source.kind == "builtin":
            img = builtin_image(source.ref)
        else:
            from udpgen.io.images import read_image

            img = read_image(source.ref)
    return fit(img, size, rng)


def iter_backgrounds(paths: Iterable[str | os.PathLike] | None, size, seed: int, *, n_procedural: int | None = None,
                     max_hamming: int = 6, on_error=None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (key, (h, w, 3) uint8) backgrounds fitted to ``size`` with a seeded random crop: the
    backgrounds of :func:`iter_sources` (paths None = the built-in set) made by :func:`make_background`.
    Same arguments -> same sequence, and the same images ``udpgen backgrounds`` writes."""
    for src, img in iter_sources(paths, builtin=paths is None, n_procedural=n_procedural,
                                 max_hamming=max_hamming, on_error=on_error):
        yield src.key, make_background(src, size, seed, img)
