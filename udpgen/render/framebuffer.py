"""The render target: one framebuffer with two colour attachments and a float depth buffer.

attachment 0: RGBA32F, the UDP (landmark x, y, z, occupancy); attachment 1: RGBA8, the colour (premultiplied
while drawing); depth: DEPTH_COMPONENT32F. Single-sampled: multisampling would blend landmarks of
different surfaces at edges and break occupancy == alpha > 0.
"""
from __future__ import annotations

import numpy as np

from udpgen.errors import UdpgenError

__all__ = ["Framebuffer", "check_size"]


def check_size(width, height, ctx) -> tuple[int, int]:
    """Validate an image size against the context's limits; UdpgenError naming the limit otherwise."""
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError):
        raise UdpgenError(f"image size must be integers, got {width!r} x {height!r}") from None
    if w != width or h != height or w <= 0 or h <= 0:
        raise UdpgenError(f"image size must be positive integers, got {width} x {height}")
    max_w, max_h = ctx.max_image_size()
    if w > max_w or h > max_h:
        raise UdpgenError(f"image size {w} x {h} is larger than this GL allows ({max_w} x {max_h}: "
                          f"GL_MAX_TEXTURE_SIZE / GL_MAX_RENDERBUFFER_SIZE / GL_MAX_VIEWPORT_DIMS of {ctx.renderer})")
    return w, h


class Framebuffer:
    """Framebuffer object of ``width`` x ``height`` pixels in the current context."""

    def __init__(self, width: int, height: int):
        from OpenGL import GL

        self.width, self.height = width, height
        self.id = int(GL.glGenFramebuffers(1))
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.id)
        self.renderbuffers = [int(r) for r in GL.glGenRenderbuffers(3)]
        for rb, fmt, attach in zip(self.renderbuffers, (GL.GL_RGBA32F, GL.GL_RGBA8, GL.GL_DEPTH_COMPONENT32F),
                                   (GL.GL_COLOR_ATTACHMENT0, GL.GL_COLOR_ATTACHMENT1, GL.GL_DEPTH_ATTACHMENT)):
            GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, rb)
            GL.glRenderbufferStorage(GL.GL_RENDERBUFFER, fmt, width, height)
            GL.glFramebufferRenderbuffer(GL.GL_FRAMEBUFFER, attach, GL.GL_RENDERBUFFER, rb)
        GL.glBindRenderbuffer(GL.GL_RENDERBUFFER, 0)
        GL.glDrawBuffers(2, [GL.GL_COLOR_ATTACHMENT0, GL.GL_COLOR_ATTACHMENT1])
        status = GL.glCheckFramebufferStatus(GL.GL_FRAMEBUFFER)
        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        if status != GL.GL_FRAMEBUFFER_COMPLETE:
            self.release()
            raise UdpgenError(f"framebuffer RGBA32F + RGBA8 + DEPTH32F of {width} x {height} is incomplete "
                              f"(status 0x{int(status):x}): this GL cannot render UDPs")
        self._udp = np.empty((height, width, 4), np.float32)
        self._rgba = np.empty((height, width, 4), np.uint8)

    def bind(self) -> None:
        from OpenGL import GL

        GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, self.id)
        GL.glViewport(0, 0, self.width, self.height)

    def clear(self) -> None:
        """Background: UDP all zeros, colour transparent black, depth 1."""
        from OpenGL import GL

        zero = np.zeros(4, np.float32)
        GL.glClearBufferfv(GL.GL_COLOR, 0, zero)
        GL.glClearBufferfv(GL.GL_COLOR, 1, zero)
        GL.glClearBufferfv(GL.GL_DEPTH, 0, np.ones(1, np.float32))

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(udp (H, W, 4) float32, premultiplied rgba (H, W, 4) uint8), row 0 = top; new arrays."""
        from OpenGL import GL

        GL.glPixelStorei(GL.GL_PACK_ALIGNMENT, 1)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT0)
        GL.glReadPixels(0, 0, self.width, self.height, GL.GL_RGBA, GL.GL_FLOAT, self._udp)
        GL.glReadBuffer(GL.GL_COLOR_ATTACHMENT1)
        GL.glReadPixels(0, 0, self.width, self.height, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE, self._rgba)
        # GL rows start at the bottom.
        return self._udp[::-1].copy(), self._rgba[::-1].copy()

    def release(self) -> None:
        from OpenGL import GL

        if self.id:
            GL.glDeleteRenderbuffers(3, self.renderbuffers)
            GL.glDeleteFramebuffers(1, [self.id])
            self.id = 0
