"""The renderer: one GL pass writes the float UDP and the toon-shaded RGBA of a posed character.

::

    from udpgen.render import Renderer, CameraSampler
    with Renderer(256) as r:
        char = r.load(model)                        # uploads vertices, landmarks and textures once
        pose = char.pose(values)                    # FramePose -> bones, morphs, materials (CPU)
        centre, radius = pose.bounding_sphere()
        cam = CameraSampler().sample(rng, centre, radius, r.width, r.height)
        out = r.render(pose, cam)                   # RenderResult: udp, rgba, camera dict, warnings

What one :meth:`Renderer.render` draws, in this order, into the two attachments of :class:`Framebuffer`:

1. the visible materials (diffuse alpha > 0 after material morphs), in file order with the translucent
   ones (diffuse alpha < 1, or a texture with partial alpha) after the opaque ones; faces two-sided by
   default (hair cards, skirts: MMD's per-material flag is often unset on them), else culled as MMD does;
2. the outlines: for materials with the EDGE flag, the inverted hull (back faces of the mesh pushed out along
   the screen-space normal by ``edge_size * vertex edge_scale * outline_px * H / 256`` pixels) in the edge
   colour. The hull writes its vertices' landmarks into the UDP target too, so occupancy still equals
   alpha > 0 pixel for pixel.

The UDP target is never blended (glDisablei(GL_BLEND, 0)): the nearest surface's landmark wins. The colour
target blends premultiplied colour; :meth:`render` returns it un-premultiplied (straight alpha).
"""
from __future__ import annotations

import ctypes
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from udpgen.errors import UdpgenError
from udpgen.settings import check_settings, setting

from .camera import MMD_TO_WORLD, Camera
from .character import Character, CharacterPose
from .framebuffer import Framebuffer, check_size
from .platform import get_context
from .program import Program

__all__ = ["Renderer", "RenderSettings", "RenderResult", "EmptyRenderError"]

MMD_LIGHT_COLOR = 154.0 / 255.0


class EmptyRenderError(UdpgenError):
    """The camera saw nothing of the character: the images would be blank."""


@dataclass(frozen=True)
class RenderSettings:
    """How to draw. outline: draw edges; outline_px: outline width in pixels per unit of PMX edge size at
    an image height of 256 px (it scales with the height; MMD itself uses 1 px per unit at any size, which
    leaves the common edge size 0.45 sub-pixel, dotted, in small images); two_sided: draw every face from both sides
    (else back faces are culled where the material is not double-sided, as MMD does); texture_alpha: take
    alpha from textures (off: only material alpha cuts, for geometry checks); light_direction: direction
    the light travels in the camera frame (it follows the camera, so every view is lit from the front-top);
    light_color: MMD's light (154/255 grey); default_toon: shared toon 0..9 for materials without a toon
    (None = flat, as MMD); allow_empty: return an empty render flagged instead of raising
    EmptyRenderError; mipmaps: trilinear texture filtering."""
    outline: bool = setting(True, kind=bool)
    outline_px: float = setting(2.0, low=0)
    two_sided: bool = setting(True, kind=bool)
    texture_alpha: bool = setting(True, kind=bool)
    light_direction: tuple[float, float, float] = setting((-0.5, -1.0, -0.5), kind="vector", nonzero=True)
    light_color: float = setting(MMD_LIGHT_COLOR, low=0)
    default_toon: int | None = setting(None, kind=int, low=0, high=9, optional=True)
    allow_empty: bool = setting(False, kind=bool)
    mipmaps: bool = setting(True, kind=bool)

    def __post_init__(self):
        check_settings(self)


@dataclass
class RenderResult:
    """One view. udp (H, W, 4) float32: (x, y, z, occupancy), landmarks in [0, 1], background all 0;
    rgba (H, W, 4) uint8 straight alpha, alpha > 0 exactly where occupancy is 1; camera: the camera's
    JSON-ready dict (intrinsics, extrinsics); coverage: fraction of occupied pixels; empty: nothing seen
    (only returned with allow_empty); warnings: the renderer's counted warnings so far (dict)."""
    udp: np.ndarray
    rgba: np.ndarray
    camera: dict
    coverage: float
    empty: bool
    warnings: dict = field(default_factory=dict)

    def metadata(self) -> dict:
        return {"camera": self.camera, "coverage": self.coverage, "empty": self.empty, "warnings": self.warnings}


class Renderer:
    """Renders characters at one image size in this process's GL context (created on first use).

    warnings: collections.Counter of problems worked around (missing_texture, unreadable_texture,
    nan_vertices, degenerate_faces, ...), shared by every character this renderer loads.
    """

    def __init__(self, width: int, height: int | None = None, settings: RenderSettings | None = None):
        self.context = get_context()
        self.width, self.height = check_size(width, width if height is None else height, self.context)
        self.settings = settings or RenderSettings()
        self.warnings: Counter = Counter()
        self.framebuffer = Framebuffer(self.width, self.height)
        self.program = Program("skin.vert", "surface.frag")
        self._feedback: Program | None = None
        self._characters: list[Character] = []
        self.program.use()
        for name, unit in (("u_bones", 0), ("u_texture", 1), ("u_sphere", 2), ("u_toon", 3)):
            self.program.int(name, unit)

    # ------------------------------------------------------------------------------------------ models
    def load(self, model, rig=None, landmarks: np.ndarray | None = None) -> Character:
        """Upload ``model`` (a udpgen.mmd Model) once; ``landmarks`` (N, 3) default to its canonical ones."""
        self.context.make_current()
        ch = Character(model, self.warnings, self.context.limits["max_texture_size"], rig=rig, landmarks=landmarks,
                       default_toon=self.settings.default_toon, mipmaps=self.settings.mipmaps)
        self._characters.append(ch)
        return ch

    # ------------------------------------------------------------------------------------------ drawing
    def render(self, pose: CharacterPose, camera: Camera) -> RenderResult:
        """Draw ``pose`` seen by ``camera`` (its size must be the renderer's) -> RenderResult."""
        from OpenGL import GL
        from OpenGL.error import GLError

        if (camera.width, camera.height) != (self.width, self.height):
            raise UdpgenError(f"camera is {camera.width} x {camera.height} but the renderer "
                              f"{self.width} x {self.height}")
        ch = pose.character
        visible = pose.visible
        if not visible.any():
            raise UdpgenError(f"{ch.name}: no visible material in this pose (all diffuse alpha 0 or no faces)")
        self.context.make_current()
        try:
            self._draw(pose, camera, visible)
            udp, rgba = self.framebuffer.read()
            err = GL.glGetError()
        except GLError as e:
            raise UdpgenError(f"OpenGL error while rendering {ch.name}: {e}") from None
        finally:
            GL.glBindVertexArray(0)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
        if err != GL.GL_NO_ERROR:
            raise UdpgenError(f"OpenGL error 0x{int(err):x} while rendering {ch.name}")
        _unpremultiply(rgba)
        occupied = udp[..., 3] > 0
        if not np.array_equal(occupied, rgba[..., 3] > 0):      # the contract; cheap enough to check always
            bad = int((occupied != (rgba[..., 3] > 0)).sum())
            raise UdpgenError(f"{ch.name}: occupancy and alpha disagree on {bad} pixels (a GL driver bug?)")
        coverage = float(occupied.mean())
        empty = coverage == 0.0
        if empty and not self.settings.allow_empty:
            raise EmptyRenderError(f"{ch.name}: the camera sees nothing of the character (empty image)")
        return RenderResult(udp, rgba, camera.to_dict(), coverage, empty, dict(self.warnings))

    def _draw(self, pose: CharacterPose, camera: Camera, visible: np.ndarray) -> None:
        from OpenGL import GL

        s, ch, prog, mats = self.settings, pose.character, self.program, pose.materials
        self.framebuffer.bind()
        self.framebuffer.clear()
        ch.bind(pose)
        prog.use()
        GL.glActiveTexture(GL.GL_TEXTURE0)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, ch.bone_texture)
        prog.mat4("u_model_view", camera.world_to_camera @ MMD_TO_WORLD)
        prog.mat4("u_projection", camera.projection())
        prog.vec("u_viewport", (self.width, self.height))
        light = np.asarray(s.light_direction, np.float64)
        prog.vec("u_light_dir", light / np.linalg.norm(light))
        prog.vec("u_light_color", (s.light_color,) * 3)
        prog.int("u_texture_alpha", s.texture_alpha)
        GL.glEnable(GL.GL_DEPTH_TEST)
        GL.glDepthFunc(GL.GL_LESS)
        GL.glDepthMask(GL.GL_TRUE)
        GL.glDisable(GL.GL_MULTISAMPLE)
        GL.glDisablei(GL.GL_BLEND, 0)          # landmarks are replaced, never mixed
        GL.glEnablei(GL.GL_BLEND, 1)           # colour: premultiplied "over"
        GL.glBlendFuncSeparate(GL.GL_SRC_ALPHA, GL.GL_ONE_MINUS_SRC_ALPHA, GL.GL_ONE, GL.GL_ONE_MINUS_SRC_ALPHA)
        GL.glFrontFace(GL.GL_CCW)
        GL.glBindVertexArray(ch.vao)

        order = [i for i in np.flatnonzero(visible)]
        translucent = {i: bool(mats.diffuse[i, 3] < 1.0 or (ch.draws[i].texture is not None
                                                            and ch.draws[i].texture.translucent)) for i in order}
        order.sort(key=lambda i: translucent[i])     # stable: file order within each group
        prog.int("u_edge_pass", 0)
        prog.vec("u_edge_px", 0.0)
        for i in order:
            d = ch.draws[i]
            if s.two_sided or d.double_sided:
                GL.glDisable(GL.GL_CULL_FACE)
            else:
                GL.glEnable(GL.GL_CULL_FACE)
                GL.glCullFace(GL.GL_BACK)
            prog.vec("u_diffuse", mats.diffuse[i])
            prog.vec("u_ambient", mats.ambient[i])
            self._bind(1, d.texture, "u_has_texture")
            prog.vec("u_texture_tint", mats.texture_tint[i])
            prog.int("u_sphere_mode", d.sphere_mode if d.sphere is not None else 0)
            if d.sphere is not None:
                self._bind(2, d.sphere, None)
                prog.vec("u_sphere_tint", mats.sphere_tint[i])
            self._bind(3, d.toon, "u_has_toon")
            prog.vec("u_toon_tint", mats.toon_tint[i])
            GL.glDrawElements(GL.GL_TRIANGLES, d.count, GL.GL_UNSIGNED_INT, ctypes.c_void_p(4 * d.first))

        if s.outline and s.outline_px > 0:
            # Inverted hull: only its back faces are drawn, so it shows just outside the silhouette.
            GL.glEnable(GL.GL_CULL_FACE)
            GL.glCullFace(GL.GL_FRONT)
            prog.int("u_edge_pass", 1)
            px = s.outline_px * self.height / 256.0
            for i in order:
                d = ch.draws[i]
                size = float(mats.edge_size[i])
                if not d.edge or not size > 0 or not mats.edge_color[i, 3] > 0:
                    continue
                prog.vec("u_edge_px", size * px)
                prog.vec("u_edge_color", np.clip(mats.edge_color[i], 0.0, 1.0))
                GL.glDrawElements(GL.GL_TRIANGLES, d.count, GL.GL_UNSIGNED_INT, ctypes.c_void_p(4 * d.first))
            prog.vec("u_edge_px", 0.0)
            prog.int("u_edge_pass", 0)
        GL.glDisable(GL.GL_CULL_FACE)

    def _bind(self, unit: int, tex, flag: str | None) -> None:
        from OpenGL import GL

        GL.glActiveTexture(GL.GL_TEXTURE0 + unit)
        GL.glBindTexture(GL.GL_TEXTURE_2D, tex.id if tex is not None else 0)
        if flag:
            self.program.int(flag, tex is not None)

    # ------------------------------------------------------------------------------------------ checks
    def skin(self, pose: CharacterPose) -> np.ndarray:
        """(N, 3) float32 vertices skinned by the vertex shader (MMD frame), read back by transform feedback:
        the GPU skinning that :meth:`render` uses, for comparison with udpgen.rig's numpy skinning."""
        from OpenGL import GL

        self.context.make_current()
        if self._feedback is None:
            self._feedback = Program("skin.vert", None, feedback=("v_skinned",))
            self._feedback.use()
            self._feedback.int("u_bones", 0)
        ch = pose.character
        n = ch.model.vertex_count
        ch.bind(pose)
        self._feedback.use()
        self._feedback.vec("u_edge_px", 0.0)
        buf = int(GL.glGenBuffers(1))
        active = False
        try:
            self.framebuffer.bind()        # a draw needs a complete framebuffer even with rasterising off
            GL.glBindBuffer(GL.GL_TRANSFORM_FEEDBACK_BUFFER, buf)
            GL.glBufferData(GL.GL_TRANSFORM_FEEDBACK_BUFFER, n * 12, None, GL.GL_STREAM_READ)
            GL.glBindBufferBase(GL.GL_TRANSFORM_FEEDBACK_BUFFER, 0, buf)
            GL.glActiveTexture(GL.GL_TEXTURE0)
            GL.glBindTexture(GL.GL_TEXTURE_BUFFER, ch.bone_texture)
            GL.glBindVertexArray(ch.vao)
            GL.glEnable(GL.GL_RASTERIZER_DISCARD)
            GL.glBeginTransformFeedback(GL.GL_POINTS)
            active = True
            GL.glDrawArrays(GL.GL_POINTS, 0, n)
            GL.glEndTransformFeedback()
            active = False
            out = np.empty((n, 3), np.float32)
            ptr = GL.glMapBufferRange(GL.GL_TRANSFORM_FEEDBACK_BUFFER, 0, out.nbytes, GL.GL_MAP_READ_BIT)
            if not ptr:
                raise UdpgenError("could not map the transform feedback buffer")
            ctypes.memmove(out.ctypes.data, ptr, out.nbytes)
            GL.glUnmapBuffer(GL.GL_TRANSFORM_FEEDBACK_BUFFER)
        finally:
            if active:
                GL.glEndTransformFeedback()
            GL.glDisable(GL.GL_RASTERIZER_DISCARD)
            GL.glBindVertexArray(0)
            GL.glBindFramebuffer(GL.GL_FRAMEBUFFER, 0)
            GL.glBindBufferBase(GL.GL_TRANSFORM_FEEDBACK_BUFFER, 0, 0)
            GL.glDeleteBuffers(1, [buf])
        return out

    # ------------------------------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Free this renderer's GL objects (the context stays for the process)."""
        if getattr(self, "framebuffer", None) is None:
            return
        try:
            self.context.make_current()
        except UdpgenError:             # the context is gone, and its objects with it
            self._characters.clear()
            self.framebuffer = None
            return
        for ch in self._characters:
            ch.release()
        self._characters.clear()
        self.program.release()
        if self._feedback is not None:
            self._feedback.release()
        self.framebuffer.release()
        self.framebuffer = None

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _unpremultiply(rgba: np.ndarray) -> None:
    """In place: premultiplied -> straight alpha (only partly transparent pixels change)."""
    a = rgba[..., 3]
    part = (a > 0) & (a < 255)
    if part.any():
        px = rgba[part].astype(np.float32)
        px[:, :3] = np.clip(np.rint(px[:, :3] * 255.0 / px[:, 3:4]), 0, 255)
        rgba[part] = px.astype(np.uint8)
