"""Textures of a model on the GL side: image files, MMD's shared toon ramps, and upload.

Images are read by :func:`udpgen.io.images.read_image` (Pillow: PNG, BMP, TGA, JPEG, DDS DXT1/3/5 and the
.sph/.spa sphere maps, which are BMPs; EXIF, palettes and 16-bit files normalised to 8-bit RGB(A)). A
texture that is missing or cannot be read is not an error: the material falls back to its colour and the
renderer counts a warning (``missing_texture`` / ``unreadable_texture``).

Texture rows are uploaded top row first, so a PMX uv (v = 0 at the top of the image) samples the GL
texture directly, without flipping v.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from udpgen.errors import UdpgenError

log = logging.getLogger("udpgen.render")

__all__ = ["GLTexture", "toon_ramp", "SHARED_TOON_SHADOWS", "load_rgba", "upload_rgba"]

# Shadow colours of the ten shared toon ramps (toon01..toon10.bmp ship with MMD, not with models). These
# are generated stand-ins with the same layout (lit at the top, shadow at the bottom, a soft step in the
# middle) and similar hues, not copies of MMD's bitmaps.
SHARED_TOON_SHADOWS = np.array([
    (0.80, 0.80, 0.80),   # toon01 neutral grey
    (0.96, 0.84, 0.80),   # toon02 warm skin
    (0.62, 0.62, 0.64),   # toon03 dark grey
    (0.92, 0.78, 0.80),   # toon04 pink
    (0.80, 0.86, 0.95),   # toon05 cool blue
    (0.72, 0.72, 0.80),   # toon06 blue grey
    (0.94, 0.90, 0.78),   # toon07 warm yellow
    (0.66, 0.58, 0.56),   # toon08 brown
    (0.86, 0.80, 0.92),   # toon09 lavender
    (0.95, 0.95, 0.95),   # toon10 almost white
])


def toon_ramp(index: int, rows: int = 32) -> np.ndarray:
    """Shared toon ``index`` (0..9 = toon01..toon10) as a (rows, 4, 4) uint8 RGBA ramp: white in the top
    half (lit), the shadow colour in the bottom half, a smooth step over the middle eighth."""
    if not 0 <= index < len(SHARED_TOON_SHADOWS):
        raise UdpgenError(f"shared toon index {index} is not in 0..9")
    v = (np.arange(rows) + 0.5) / rows
    t = np.clip((v - 0.4375) / 0.125, 0.0, 1.0)
    t = t * t * (3.0 - 2.0 * t)
    rgb = (1.0 - t)[:, None] + t[:, None] * SHARED_TOON_SHADOWS[index][None, :]
    rgba = np.concatenate([rgb, np.ones((rows, 1))], 1)
    return np.repeat(np.rint(rgba * 255).astype(np.uint8)[:, None, :], 4, axis=1)


def load_rgba(path: str, max_size: int) -> tuple[np.ndarray, bool]:
    """Read an image file -> ((H, W, 4) uint8 straight RGBA, downscaled) where downscaled says the image was
    larger than ``max_size`` on a side and was shrunk to fit. Raises udpgen FormatError if unreadable."""
    from udpgen.io.images import read_image

    img = read_image(path)
    if img.shape[2] == 3:
        img = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], 2)
    h, w = img.shape[:2]
    if max(h, w) > max_size:
        import cv2

        s = max_size / max(h, w)
        img = cv2.resize(img, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(img), True
    return np.ascontiguousarray(img), False


@dataclass
class GLTexture:
    """A 2D RGBA8 texture on the GL side. ``translucent``: some texels have 0 < alpha < 255 on more than
    a sliver of the image (used to draw such materials after the opaque ones)."""
    id: int
    width: int
    height: int
    has_alpha: bool
    translucent: bool

    def release(self) -> None:
        from OpenGL import GL

        if self.id:
            GL.glDeleteTextures([self.id])
            self.id = 0


def upload_rgba(rgba: np.ndarray, repeat: bool = True, mipmaps: bool = True) -> GLTexture:
    """Upload (H, W, 4) uint8 RGBA (row 0 = top) as a texture; wrap (repeat, as MMD) or clamp; trilinear
    filtering with mipmaps so that 1024-px textures do not alias in a 256-px image."""
    from OpenGL import GL

    rgba = np.ascontiguousarray(rgba, np.uint8)
    h, w = rgba.shape[:2]
    tex = int(GL.glGenTextures(1))
    GL.glBindTexture(GL.GL_TEXTURE_2D, tex)
    GL.glPixelStorei(GL.GL_UNPACK_ALIGNMENT, 1)
    GL.glTexImage2D(GL.GL_TEXTURE_2D, 0, GL.GL_RGBA8, w, h, 0, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, rgba)
    wrap = GL.GL_REPEAT if repeat else GL.GL_CLAMP_TO_EDGE
    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_S, wrap)
    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_WRAP_T, wrap)
    GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MAG_FILTER, GL.GL_LINEAR)
    if mipmaps:
        GL.glGenerateMipmap(GL.GL_TEXTURE_2D)
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR_MIPMAP_LINEAR)
    else:
        GL.glTexParameteri(GL.GL_TEXTURE_2D, GL.GL_TEXTURE_MIN_FILTER, GL.GL_LINEAR)
    GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
    alpha = rgba[..., 3]
    has_alpha = bool((alpha < 255).any())
    translucent = bool(has_alpha and np.count_nonzero((alpha > 0) & (alpha < 255)) > 0.01 * alpha.size)
    return GLTexture(tex, w, h, has_alpha, translucent)


class TextureSet:
    """The textures of one model, each file loaded and uploaded once (materials share them).

    ``get(path_index, kind)`` returns a GLTexture or None; problems are counted in ``warnings`` (a
    collections.Counter shared with the renderer) and logged once per file.
    """

    def __init__(self, model, warnings, max_size: int, mipmaps: bool = True):
        self.model = model
        self.warnings = warnings
        self.max_size = max_size
        self.mipmaps = mipmaps
        self._by_index: dict[int, GLTexture | None] = {}
        self._toons: dict[int, GLTexture] = {}
        self.missing: list[str] = []

    def get(self, index: int) -> GLTexture | None:
        """Texture ``index`` of the model (-1 = none -> None)."""
        if index < 0:
            return None
        if index in self._by_index:
            return self._by_index[index]
        tex = None
        name = self.model.textures[index] if index < len(self.model.textures) else f"#{index}"
        path = self.model.resolve_texture(index)
        if path is None:
            self.warnings["missing_texture"] += 1
            self.missing.append(name)
            log.warning("%s: texture %r not found; its materials use their colour", self.model.path, name)
        else:
            try:
                rgba, shrunk = load_rgba(path, self.max_size)
            except UdpgenError as e:
                self.warnings["unreadable_texture"] += 1
                self.missing.append(name)
                log.warning("%s; its materials use their colour", e)
            else:
                if shrunk:
                    self.warnings["texture_downscaled"] += 1
                tex = upload_rgba(rgba, repeat=True, mipmaps=self.mipmaps)
        self._by_index[index] = tex
        return tex

    def shared_toon(self, index: int) -> GLTexture:
        """The generated ramp for shared toon ``index`` (0..9)."""
        if index not in self._toons:
            self._toons[index] = upload_rgba(toon_ramp(index), repeat=False, mipmaps=False)
        return self._toons[index]

    def toon(self, index: int) -> GLTexture | None:
        """A model toon texture, clamped at the edges (a ramp must not wrap round to its lit end)."""
        tex = self.get(index)
        if tex is not None:
            from OpenGL import GL

            GL.glBindTexture(GL.GL_TEXTURE_2D, tex.id)
            for p in (GL.GL_TEXTURE_WRAP_S, GL.GL_TEXTURE_WRAP_T):
                GL.glTexParameteri(GL.GL_TEXTURE_2D, p, GL.GL_CLAMP_TO_EDGE)
            GL.glBindTexture(GL.GL_TEXTURE_2D, 0)
        return tex

    def release(self) -> None:
        for t in list(self._by_index.values()) + list(self._toons.values()):
            if t is not None:
                t.release()
        self._by_index.clear()
        self._toons.clear()
