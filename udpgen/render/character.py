"""One model on the GL side (:class:`Character`) and one pose of it (:class:`CharacterPose`).

A Character uploads everything that does not change from frame to frame once: rest positions, normals,
uvs, canonical landmarks, bone indices and weights, SDEF centres, edge scales, the faces (in the
right-handed winding) and the textures. A pose then costs a few KB: the bone texels (four RGBA32F texels
per bone: the 3 x 4 skinning matrix rows and the rotation quaternion for SDEF). Vertex and UV morphs
re-upload positions / uvs only for poses whose morph weights move them.

Bad input is caught here, before GL sees it: faces with out-of-range or repeated indices and faces on
non-finite vertices are dropped, non-finite normals/uvs/weights zeroed, out-of-range bone indices given
weight 0; each kind is counted in the renderer's warnings.
"""
from __future__ import annotations

import ctypes
import dataclasses
import logging
from dataclasses import dataclass, field

import numpy as np

from udpgen.errors import UdpgenError
from udpgen.mmd.model import MaterialFlag, Model, MorphKind, WeightType, shared_toon_index
from udpgen.rig import Rig
from udpgen.rig import quat as Q
from udpgen.rig.morph import MaterialValues, expand_weights
from udpgen.rig.skeleton import BonePose
from udpgen.rig.skin import blend_weights

from .camera import MMD_TO_WORLD, bounding_sphere
from .texture import GLTexture, TextureSet

log = logging.getLogger("udpgen.render")

__all__ = ["Character", "CharacterPose", "MaterialDraw"]

STATIC_DTYPE = np.dtype([("normal", "<f4", 3), ("landmark", "<f4", 3), ("bones", "<i4", 4), ("weights", "<f4", 4),
                         ("kind", "<i4"), ("c", "<f4", 3), ("cr0", "<f4", 3), ("cr1", "<f4", 3), ("edge", "<f4")])
# (location, field, components, integer?) of the static buffer; locations match shaders/skin.vert
_STATIC_ATTRS = ((1, "normal", 3, False), (3, "landmark", 3, False), (4, "bones", 4, True), (5, "weights", 4, False),
                 (6, "kind", 1, True), (7, "c", 3, False), (8, "cr0", 3, False), (9, "cr1", 3, False),
                 (10, "edge", 1, False))


@dataclass
class MaterialDraw:
    """What drawing material ``index`` needs: its slice of the index buffer and its textures."""
    index: int
    first: int                  # first index (not triangle) in the element buffer
    count: int                  # number of indices (3 per kept triangle)
    texture: GLTexture | None
    sphere: GLTexture | None
    sphere_mode: int            # 0 none, 1 multiply, 2 add (3, sub-texture, is drawn as none)
    toon: GLTexture | None
    edge: bool                  # the EDGE flag
    double_sided: bool
    vertices: np.ndarray = field(repr=False, default=None)   # unique vertex indices of its kept faces


@dataclass
class CharacterPose:
    """A posed character, ready to draw from any camera.

    values: the FramePose; bones: BonePose (MMD frame); texels (n * 4, 4) float32: the bone data uploaded to
    the texture buffer; positions (N, 3) / uvs (N, 2) float32: morphed rest values, None when morphs leave
    them unchanged; materials: MaterialValues after material morphs.
    """
    character: "Character"
    values: object
    bones: BonePose
    texels: np.ndarray
    positions: np.ndarray | None
    uvs: np.ndarray | None
    materials: MaterialValues
    _skinned: np.ndarray | None = field(default=None, repr=False)

    @property
    def visible(self) -> np.ndarray:
        """(M,) bool: materials drawn in this pose (diffuse alpha > 0 and at least one face)."""
        return self.materials.visible & self.character.has_faces

    def skinned_positions(self) -> np.ndarray:
        """(N, 3) float32 posed vertices in MMD's frame by the numpy reference skinning (cached)."""
        if self._skinned is None:
            c = self.character
            rest = c.rest_positions if self.positions is None else self.positions
            self._skinned = c.rig.skinner.skin(self.bones.skinning(), rest)[0]
        return self._skinned

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        """(centre (3,) world frame, radius) of the posed vertices of the visible materials."""
        used = self.character.used_vertices(self.visible)
        if not used.any():
            raise UdpgenError(f"{self.character.name}: no visible material in this pose: nothing to draw")
        p = self.skinned_positions()[used]        # finite: faces on non-finite vertices were dropped
        if not np.isfinite(p).all():
            return bounding_sphere(p @ MMD_TO_WORLD[:3, :3].astype(np.float32))     # raises if none is finite
        # bounding_sphere's rule, in float32 and in MMD's frame (the z flip moves only the centre), on
        # coordinate rows (numpy reduces (k, 3) along axis 0 several times slower): ~0.5 ms for 28k vertices
        t = np.ascontiguousarray(p.T)
        centre = 0.5 * (t.min(1) + t.max(1))
        d = t - centre[:, None]
        radius = float(np.sqrt(np.einsum("ij,ij->j", d, d).max()))
        return centre.astype(np.float64) * MMD_TO_WORLD.diagonal()[:3], max(radius, 1e-6)


class Character:
    """GPU resources of one model in the current GL context. Build through ``Renderer.load(model)``.

    rig: the Rig that poses it; landmarks (N, 3) float32: canonical landmarks (default: canonicalize(rig));
    draws: one MaterialDraw per material in file order; warnings: the renderer's Counter.
    """

    def __init__(self, model: Model, warnings, max_texture_size: int, rig: Rig | None = None,
                 landmarks: np.ndarray | None = None, default_toon: int | None = None, mipmaps: bool = True):
        from OpenGL import GL

        self.name = model.path or model.name or "model"
        self.warnings = warnings
        n = model.vertex_count
        if n == 0 or model.face_count == 0:
            raise UdpgenError(f"{self.name}: the model has no vertices or no faces: nothing to render")
        if not model.bones:
            raise UdpgenError(f"{self.name}: the model has no bones")
        clean = self._sanitize_bones(model)
        if clean is not model:
            model, rig = clean, None     # the numpy rig must not index past the bones either
        self.model = model
        self.rig = rig or Rig(model)
        if landmarks is None:
            from udpgen.rig.canonical import canonicalize

            landmarks = canonicalize(self.rig).landmarks
        landmarks = np.asarray(landmarks, np.float32)
        if landmarks.shape != (n, 3):
            raise UdpgenError(f"{self.name}: landmarks have shape {landmarks.shape}, expected ({n}, 3)")
        self.landmarks = np.clip(np.nan_to_num(landmarks, nan=0.0), 0.0, 1.0)
        self.n_bones = len(model.bones)

        pos = np.asarray(model.positions, np.float32)
        finite = np.isfinite(pos).all(axis=1)
        if not finite.all():
            warnings["nan_vertices"] += int((~finite).sum())
            log.warning("%s: %d vertices are not finite; their faces are dropped", self.name, int((~finite).sum()))
        self.finite = finite
        self.rest_positions = np.where(finite[:, None], pos, 0.0).astype(np.float32)
        self.normals = np.nan_to_num(np.asarray(model.normals, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        self.rest_uvs = np.nan_to_num(np.asarray(model.uvs, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        static = self._static(model)
        faces, ranges = self._faces(model)

        self.vao = GL.glGenVertexArrays(1)
        GL.glBindVertexArray(self.vao)
        self.pos_buffer, self.uv_buffer, self.static_buffer, self.index_buffer = (int(b) for b in GL.glGenBuffers(4))
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.pos_buffer)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, self.rest_positions.nbytes, self.rest_positions, GL.GL_DYNAMIC_DRAW)
        GL.glEnableVertexAttribArray(0)
        GL.glVertexAttribPointer(0, 3, GL.GL_FLOAT, GL.GL_FALSE, 12, ctypes.c_void_p(0))
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.uv_buffer)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, self.rest_uvs.nbytes, self.rest_uvs, GL.GL_DYNAMIC_DRAW)
        GL.glEnableVertexAttribArray(2)
        GL.glVertexAttribPointer(2, 2, GL.GL_FLOAT, GL.GL_FALSE, 8, ctypes.c_void_p(0))
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.static_buffer)
        GL.glBufferData(GL.GL_ARRAY_BUFFER, static.nbytes, static, GL.GL_STATIC_DRAW)
        for loc, name, size, integer in _STATIC_ATTRS:
            off = ctypes.c_void_p(STATIC_DTYPE.fields[name][1])
            GL.glEnableVertexAttribArray(loc)
            if integer:
                GL.glVertexAttribIPointer(loc, size, GL.GL_INT, STATIC_DTYPE.itemsize, off)
            else:
                GL.glVertexAttribPointer(loc, size, GL.GL_FLOAT, GL.GL_FALSE, STATIC_DTYPE.itemsize, off)
        GL.glBindBuffer(GL.GL_ELEMENT_ARRAY_BUFFER, self.index_buffer)
        GL.glBufferData(GL.GL_ELEMENT_ARRAY_BUFFER, faces.nbytes, faces, GL.GL_STATIC_DRAW)
        GL.glBindVertexArray(0)
        self.index_count = int(faces.size)
        # Bone texels: a texture buffer, rewritten every pose.
        self.bone_buffer = int(GL.glGenBuffers(1))
        GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, self.bone_buffer)
        GL.glBufferData(GL.GL_TEXTURE_BUFFER, self.n_bones * 64, None, GL.GL_STREAM_DRAW)
        self.bone_texture = int(GL.glGenTextures(1))
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, self.bone_texture)
        GL.glTexBuffer(GL.GL_TEXTURE_BUFFER, GL.GL_RGBA32F, self.bone_buffer)
        GL.glBindTexture(GL.GL_TEXTURE_BUFFER, 0)
        GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, 0)
        self._gpu_positions_morphed = False
        self._gpu_uvs_morphed = False
        self._used: dict[bytes, np.ndarray] = {}

        self.textures = TextureSet(model, warnings, max_texture_size, mipmaps)
        self.draws = [self._material_draw(i, m, ranges[i], faces, default_toon) for i, m in enumerate(model.materials)]
        self.has_faces = np.array([d.count > 0 for d in self.draws], bool)
        kinds = np.array([int(m.kind) for m in model.morphs], np.int64)
        self._moves_vertices = np.isin(kinds, [int(MorphKind.VERTEX)])
        self._moves_uvs = np.isin(kinds, [int(MorphKind.UV)])
        self._base_materials = self.rig.morpher.apply(None)[-1]     # shared by every unmorphed pose (read-only)

    # ------------------------------------------------------------------------------------------ setup
    def _sanitize_bones(self, model: Model) -> Model:
        """The model with out-of-range bone indices set to -1 (weight 0), counted; the same model if none."""
        idx = np.asarray(model.bone_indices)
        bad = (idx >= len(model.bones)) | (idx < -1)
        if not bad.any():
            return model
        self.warnings["bad_bone_indices"] += int(bad.any(axis=1).sum())
        log.warning("%s: %d vertices name bones that do not exist; those weights are dropped", self.name,
                    int(bad.any(axis=1).sum()))
        return dataclasses.replace(model, bone_indices=np.where(bad, -1, idx).astype(np.int32),
                                   bone_weights=np.where(bad, 0.0, model.bone_weights).astype(np.float32))

    def _static(self, model: Model) -> np.ndarray:
        n = model.vertex_count
        wt = np.asarray(model.weight_types)
        # out-of-range indices were made -1 (weight 0) by _sanitize_bones; blend as the numpy Skinner does
        idx, w = blend_weights(model)
        out = np.zeros(n, STATIC_DTYPE)
        out["normal"] = self.normals
        out["landmark"] = self.landmarks
        out["bones"] = idx
        out["weights"] = w
        sdef = wt == WeightType.SDEF
        out["kind"] = sdef.astype(np.int32)
        if sdef.any():
            c, r0, r1 = (np.nan_to_num(model.sdef[sdef, k].astype(np.float64)) for k in range(3))
            rw = r0 * w[sdef, :1] + r1 * w[sdef, 1:2]
            out["c"][sdef] = c
            out["cr0"][sdef] = (c + (c + r0 - rw)) * 0.5
            out["cr1"][sdef] = (c + (c + r1 - rw)) * 0.5
        self.has_sdef = bool(sdef.any())
        out["edge"] = np.nan_to_num(np.asarray(model.edge_scale, np.float32), nan=0.0) if len(model.edge_scale) else 1.0
        return out

    def _faces(self, model: Model) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Kept faces in right-handed winding (uint32, flat) and each material's (first index, count)."""
        n = model.vertex_count
        faces = np.asarray(model.faces, np.int64)
        in_range = ((faces >= 0) & (faces < n)).all(axis=1)
        safe = np.where(in_range[:, None], faces, 0)
        repeated = (safe[:, 0] == safe[:, 1]) | (safe[:, 1] == safe[:, 2]) | (safe[:, 0] == safe[:, 2])
        on_finite = self.finite[safe].all(axis=1)
        keep = in_range & ~repeated & on_finite
        for key, count in (("bad_face_indices", (~in_range).sum()), ("degenerate_faces", (in_range & repeated).sum()),
                           ("nan_faces", (in_range & ~repeated & ~on_finite).sum())):
            if count:
                self.warnings[key] += int(count)
                # the reader already warned of degenerate faces (udpgen.mmd.repair); the rest are news
                (log.info if key == "degenerate_faces" else log.warning)(
                    "%s: %d faces dropped (%s)", self.name, int(count), key.replace("_", " "))
        p = self.rest_positions[safe]
        area2 = np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)
        zero = keep & (area2 == 0)
        if zero.any():     # kept: harmless to draw, and a pose can give them area
            self.warnings["zero_area_faces"] += int(zero.sum())
        # MMD -> right-handed: negating z mirrors the mesh, so swap two corners to keep front faces CCW
        # (the same rule as udpgen.rig.mesh.to_right_handed; the z flip itself is MMD_TO_WORLD).
        rh = faces[:, [0, 2, 1]]
        out, ranges, first = [], [], 0
        total = 0
        for start, count in model.material_faces():
            count = max(0, min(count, len(faces) - start))
            sel = rh[start:start + count][keep[start:start + count]]
            out.append(sel)
            ranges.append((first, sel.size))
            first += sel.size
            total += count
        if total < len(faces):
            self.warnings["faces_without_material"] += int(len(faces) - total)
        flat = np.concatenate(out).astype(np.uint32).ravel() if out else np.zeros(0, np.uint32)
        return flat, ranges

    def _material_draw(self, i: int, m, rng: tuple[int, int], faces: np.ndarray, default_toon) -> MaterialDraw:
        first, count = rng
        texture = self.textures.get(m.texture_index)
        sphere_mode = m.sphere_mode if m.sphere_mode in (1, 2) else 0
        sphere = self.textures.get(m.sphere_index) if sphere_mode else None
        if sphere is None:
            sphere_mode = 0
        if m.toon_shared and 0 <= m.toon_index <= 9:
            toon = self.textures.shared_toon(m.toon_index)
        elif not m.toon_shared and m.toon_index >= 0:
            name = self.model.textures[m.toon_index] if m.toon_index < len(self.model.textures) else ""
            shared = shared_toon_index(name)
            if shared is not None and self.model.resolve_texture(m.toon_index) is None:
                toon = self.textures.shared_toon(shared)    # MMD's own Data/toonNN.bmp
            else:
                toon = self.textures.toon(m.toon_index)
        elif default_toon is not None:
            toon = self.textures.shared_toon(default_toon)
        else:
            toon = None      # MMD draws a material without toon flat (its toon0 is white)
        verts = np.unique(faces[first:first + count]).astype(np.int64)
        return MaterialDraw(i, first, count, texture, sphere, sphere_mode, toon, edge=bool(m.flags & MaterialFlag.EDGE),
                            double_sided=bool(m.flags & MaterialFlag.DOUBLE_SIDED), vertices=verts)

    def used_vertices(self, visible: np.ndarray) -> np.ndarray:
        """(N,) bool: vertices of the kept faces of the ``visible`` (M,) materials (cached per visibility)."""
        key = np.asarray(visible, bool).tobytes()
        mask = self._used.get(key)
        if mask is None:
            mask = np.zeros(self.model.vertex_count, bool)
            for m in np.flatnonzero(visible):
                mask[self.draws[m].vertices] = True
            if len(self._used) > 64:       # material morphs could produce many combinations
                self._used.clear()
            self._used[key] = mask
        return mask

    # ------------------------------------------------------------------------------------------ posing
    def pose(self, values=None, physics=None) -> CharacterPose:
        """Pose on the CPU (bones, morphs, materials): no GL work. ``values``: FramePose or None (rest);
        ``physics``: the rigid-body hook for the bones (``udpgen.rig.physics_world.Physics.settle``) or None."""
        rig = self.rig
        v = values or rig.rest_values()
        w = np.asarray(v.morph_weights, np.float64) if v.morph_weights is not None else None
        positions = uvs = None
        if w is not None and w.size and np.any(w):
            if w.shape != (len(self.model.morphs),):
                raise UdpgenError(f"{self.name}: {w.shape} morph weights for {len(self.model.morphs)} morphs")
            pos, uv, _, bone_t, bone_r, mats = rig.morpher.apply(w)
            eff = expand_weights(self.model, w)
            if np.any(eff[self._moves_vertices] != 0):
                bad = ~np.isfinite(pos).all(axis=1)
                positions = np.where(bad[:, None] | ~self.finite[:, None], self.rest_positions, pos).astype(np.float32)
            if np.any(eff[self._moves_uvs] != 0):
                uvs = np.nan_to_num(uv, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
            bones = rig.pose_bones(v, bone_t, bone_r, physics=physics)
        else:
            mats = self._base_materials
            bones = rig.pose_bones(v, physics=physics)
        s = bones.skinning()
        if not np.isfinite(s).all():
            raise UdpgenError(f"{self.name}: the pose gives non-finite bone matrices (bad animation values?)")
        texels = np.zeros((self.n_bones, 4, 4), np.float32)
        texels[:, :3, :] = s[:, :3, :]
        if self.has_sdef:
            texels[:, 3, :] = Q.from_matrix(s[:, :3, :3])
        return CharacterPose(self, v, bones, texels.reshape(-1, 4), positions, uvs, mats)

    def bind(self, pose: CharacterPose) -> None:
        """Upload what ``pose`` changes (bone texels; morphed positions/uvs, or the rest ones back)."""
        from OpenGL import GL

        if pose.character is not self:
            raise UdpgenError("this pose belongs to another character")
        GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, self.bone_buffer)
        GL.glBufferSubData(GL.GL_TEXTURE_BUFFER, 0, pose.texels.nbytes, pose.texels)
        GL.glBindBuffer(GL.GL_TEXTURE_BUFFER, 0)
        if pose.positions is not None or self._gpu_positions_morphed:
            data = self.rest_positions if pose.positions is None else pose.positions
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.pos_buffer)
            GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data.nbytes, np.ascontiguousarray(data, np.float32))
            self._gpu_positions_morphed = pose.positions is not None
        if pose.uvs is not None or self._gpu_uvs_morphed:
            data = self.rest_uvs if pose.uvs is None else pose.uvs
            GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self.uv_buffer)
            GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, data.nbytes, np.ascontiguousarray(data, np.float32))
            self._gpu_uvs_morphed = pose.uvs is not None
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)

    def release(self) -> None:
        """Free the GL objects (the context must be current)."""
        from OpenGL import GL

        if getattr(self, "vao", 0):
            GL.glDeleteBuffers(5, [self.pos_buffer, self.uv_buffer, self.static_buffer, self.index_buffer,
                                   self.bone_buffer])
            GL.glDeleteTextures([self.bone_texture])
            GL.glDeleteVertexArrays(1, [self.vao])
            self.vao = 0
            self.textures.release()
