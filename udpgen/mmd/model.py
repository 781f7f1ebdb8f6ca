"""The in-memory MMD model, motion and pose: frozen dataclasses of numpy arrays.

One ``Model`` serves PMX 2.0/2.1 and PMD files (PMD is converted on read). Everything stays in MMD's
native frame: left-handed, +Y up, the character facing -Z, lengths in MMD units (1 unit = 8 cm), angles
in radians, quaternions as (x, y, z, w). Conversion to a right-handed frame happens once, at output.

Indices are int32 with -1 meaning "none". Arrays are owned by the dataclass and must be treated as
read-only; build a new model with :func:`dataclasses.replace` to change one.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

import numpy as np


class WeightType(IntEnum):
    """Vertex deform type (PMX numbering)."""
    BDEF1 = 0
    BDEF2 = 1
    BDEF4 = 2
    SDEF = 3
    QDEF = 4


class BoneFlag(IntFlag):
    """PMX bone flags (uint16)."""
    TAIL_IS_BONE = 0x0001      # the tail is given by a bone index, else by an offset
    ROTATABLE = 0x0002
    TRANSLATABLE = 0x0004
    VISIBLE = 0x0008
    OPERABLE = 0x0010
    IK = 0x0020
    LOCAL_APPEND = 0x0080      # append from the source's local (parent-relative) transform
    APPEND_ROTATE = 0x0100
    APPEND_TRANSLATE = 0x0200
    FIXED_AXIS = 0x0400
    LOCAL_AXIS = 0x0800
    AFTER_PHYSICS = 0x1000     # deform after physics
    EXTERNAL_PARENT = 0x2000


class MaterialFlag(IntFlag):
    """PMX material draw flags (uint8)."""
    DOUBLE_SIDED = 0x01
    GROUND_SHADOW = 0x02
    CAST_SHADOW = 0x04
    RECEIVE_SHADOW = 0x08
    EDGE = 0x10
    VERTEX_COLOR = 0x20        # PMX 2.1
    POINT = 0x40               # PMX 2.1
    LINE = 0x80                # PMX 2.1


class MorphKind(IntEnum):
    """Morph type (PMX numbering)."""
    GROUP = 0
    VERTEX = 1
    BONE = 2
    UV = 3
    UV1 = 4
    UV2 = 5
    UV3 = 6
    UV4 = 7
    MATERIAL = 8
    FLIP = 9        # PMX 2.1
    IMPULSE = 10    # PMX 2.1


# Morph offsets are structured arrays, one dtype per kind; ``index`` is the vertex, bone, material
# (-1 = every material), morph or rigid body the offset applies to.
MORPH_DTYPES: dict[MorphKind, np.dtype] = {
    MorphKind.GROUP: np.dtype([("index", "<i4"), ("weight", "<f4")]),
    MorphKind.VERTEX: np.dtype([("index", "<i4"), ("offset", "<f4", (3,))]),
    MorphKind.BONE: np.dtype([("index", "<i4"), ("translation", "<f4", (3,)), ("rotation", "<f4", (4,))]),
    MorphKind.UV: np.dtype([("index", "<i4"), ("offset", "<f4", (4,))]),
    MorphKind.MATERIAL: np.dtype([
        ("index", "<i4"), ("operation", "u1"),           # 0 = multiply, 1 = add
        ("diffuse", "<f4", (4,)), ("specular", "<f4", (3,)), ("specular_power", "<f4"),
        ("ambient", "<f4", (3,)), ("edge_color", "<f4", (4,)), ("edge_size", "<f4"),
        ("texture", "<f4", (4,)), ("sphere", "<f4", (4,)), ("toon", "<f4", (4,))]),
    MorphKind.IMPULSE: np.dtype([("index", "<i4"), ("local", "u1"), ("velocity", "<f4", (3,)),
                                 ("torque", "<f4", (3,))]),
}
for _k in (MorphKind.UV1, MorphKind.UV2, MorphKind.UV3, MorphKind.UV4):
    MORPH_DTYPES[_k] = MORPH_DTYPES[MorphKind.UV]
MORPH_DTYPES[MorphKind.FLIP] = MORPH_DTYPES[MorphKind.GROUP]


@dataclass(frozen=True, eq=False)
class Material:
    """One material: a run of ``face_count`` consecutive triangles of ``Model.faces``.

    Colours are linear floats as stored (RGB or RGBA in [0, 1] by convention, not clipped).
    Texture fields index ``Model.textures`` (-1 = none). ``toon_shared`` selects MMD's shared
    toon01..toon10.bmp by ``toon_index`` (0..9) instead of a model texture.
    """
    name: str
    name_en: str = ""
    diffuse: np.ndarray = field(default_factory=lambda: np.array([1, 1, 1, 1], np.float32))   # (4,) RGBA
    specular: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))              # (3,)
    specular_power: float = 0.0
    ambient: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))               # (3,)
    flags: int = 0                      # MaterialFlag bits
    edge_color: np.ndarray = field(default_factory=lambda: np.array([0, 0, 0, 1], np.float32))  # (4,)
    edge_size: float = 0.0
    texture_index: int = -1
    sphere_index: int = -1
    sphere_mode: int = 0                # 0 off, 1 multiply, 2 add, 3 sub-texture
    toon_shared: bool = False
    toon_index: int = -1                # shared: 0..9 (toon01..toon10), else a texture index; -1 none
    memo: str = ""
    face_count: int = 0                 # triangles (the file stores 3x this as an index count)

    @property
    def double_sided(self) -> bool:
        return bool(self.flags & MaterialFlag.DOUBLE_SIDED)

    @property
    def draws_edge(self) -> bool:
        return bool(self.flags & MaterialFlag.EDGE)


@dataclass(frozen=True, eq=False)
class IKLink:
    """One joint of an IK chain, with optional Euler limits in radians (lower <= upper, per axis)."""
    bone: int
    lower: np.ndarray | None = None     # (3,) float32 radians, None = unlimited
    upper: np.ndarray | None = None     # (3,)


@dataclass(frozen=True, eq=False)
class IK:
    """CCD IK: move ``target`` (the effector bone) onto the IK bone, rotating ``links`` (effector side first)."""
    target: int
    loop_count: int
    limit_angle: float                  # radians per iteration step ("unit angle")
    links: tuple[IKLink, ...] = ()


@dataclass(frozen=True, eq=False)
class Bone:
    """One bone. ``position`` is the rest-pose head in model space; ``layer`` the transform level."""
    name: str
    name_en: str = ""
    position: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))   # (3,)
    parent: int = -1
    layer: int = 0
    flags: int = BoneFlag.ROTATABLE | BoneFlag.VISIBLE | BoneFlag.OPERABLE
    tail_index: int = -1                # when flags & TAIL_IS_BONE
    tail_offset: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))  # otherwise
    append_parent: int = -1             # when APPEND_ROTATE / APPEND_TRANSLATE
    append_ratio: float = 0.0
    fixed_axis: np.ndarray | None = None    # (3,) when FIXED_AXIS
    local_x: np.ndarray | None = None       # (3,) when LOCAL_AXIS
    local_z: np.ndarray | None = None       # (3,)
    external_key: int = -1              # when EXTERNAL_PARENT
    ik: IK | None = None                # when IK

    @property
    def is_ik(self) -> bool:
        return self.ik is not None

    @property
    def append_rotate(self) -> bool:
        return bool(self.flags & BoneFlag.APPEND_ROTATE)

    @property
    def append_translate(self) -> bool:
        return bool(self.flags & BoneFlag.APPEND_TRANSLATE)

    @property
    def local_append(self) -> bool:
        return bool(self.flags & BoneFlag.LOCAL_APPEND)

    @property
    def after_physics(self) -> bool:
        return bool(self.flags & BoneFlag.AFTER_PHYSICS)


@dataclass(frozen=True, eq=False)
class Morph:
    """One morph; ``offsets`` is a structured array of ``MORPH_DTYPES[kind]``."""
    name: str
    name_en: str = ""
    panel: int = 0                      # 0 system, 1 eyebrow, 2 eye, 3 mouth, 4 other
    kind: MorphKind = MorphKind.VERTEX
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(0, MORPH_DTYPES[MorphKind.VERTEX]))


@dataclass(frozen=True, eq=False)
class DisplayFrame:
    """A display slot group; ``elements`` are (is_morph, index) pairs."""
    name: str
    name_en: str = ""
    special: bool = False
    elements: tuple[tuple[bool, int], ...] = ()


@dataclass(frozen=True, eq=False)
class RigidBody:
    """A physics rigid body (parsed, not simulated). Shape 0 sphere, 1 box, 2 capsule; mode 0 follows the
    bone, 1 physics, 2 physics + bone position. Rotation is Euler radians."""
    name: str
    name_en: str = ""
    bone: int = -1
    group: int = 0
    no_collision_mask: int = 0
    shape: int = 0
    size: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    position: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    mass: float = 0.0
    linear_damping: float = 0.0
    angular_damping: float = 0.0
    restitution: float = 0.0
    friction: float = 0.0
    mode: int = 0


@dataclass(frozen=True, eq=False)
class Joint:
    """A physics joint between two rigid bodies (parsed, not simulated). kind 0 = 6DOF spring."""
    name: str
    name_en: str = ""
    kind: int = 0
    rigid_a: int = -1
    rigid_b: int = -1
    position: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    linear_lower: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    linear_upper: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    angular_lower: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    angular_upper: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    spring_linear: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    spring_angular: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))


def _empty(shape, dtype=np.float32):
    return field(default_factory=lambda: np.zeros(shape, dtype))


@dataclass(frozen=True, eq=False)
class Model:
    """A whole MMD model. N vertices, F triangles, A additional UVs (0..4).

    Vertex arrays:
        positions (N, 3) float32, normals (N, 3) float32, uvs (N, 2) float32 (v down, as in the file),
        additional_uvs (N, A, 4) float32,
        weight_types (N,) uint8 (:class:`WeightType`),
        bone_indices (N, 4) int32 (-1 where unused), bone_weights (N, 4) float32 (stored weights; BDEF1 has
        (1, 0, 0, 0), BDEF2 (w, 1 - w, 0, 0), SDEF like BDEF2),
        sdef (N, 3, 3) float32: SDEF C, R0, R1 (zeros for other vertices),
        edge_scale (N,) float32.
    faces (F, 3) int32 vertex indices, in file winding (clockwise front faces, left-handed).
    """
    format: str = "pmx"                 # 'pmx' or 'pmd'
    version: float = 2.0
    path: str | None = None             # file it was read from (textures resolve beside it)
    encoding: str = "utf-16-le"         # text encoding of the source file
    name: str = ""
    name_en: str = ""
    comment: str = ""
    comment_en: str = ""
    positions: np.ndarray = _empty((0, 3))
    normals: np.ndarray = _empty((0, 3))
    uvs: np.ndarray = _empty((0, 2))
    additional_uvs: np.ndarray = _empty((0, 0, 4))
    weight_types: np.ndarray = _empty((0,), np.uint8)
    bone_indices: np.ndarray = _empty((0, 4), np.int32)
    bone_weights: np.ndarray = _empty((0, 4))
    sdef: np.ndarray = _empty((0, 3, 3))
    edge_scale: np.ndarray = _empty((0,))
    faces: np.ndarray = _empty((0, 3), np.int32)
    textures: tuple[str, ...] = ()      # paths as stored in the file (may use backslashes)
    materials: tuple[Material, ...] = ()
    bones: tuple[Bone, ...] = ()
    morphs: tuple[Morph, ...] = ()
    display_frames: tuple[DisplayFrame, ...] = ()
    rigid_bodies: tuple[RigidBody, ...] = ()
    joints: tuple[Joint, ...] = ()
    soft_body_count: int = 0            # PMX 2.1 soft bodies are skipped; how many there were
    toon_textures: tuple[str, ...] = () # PMD's toon texture list (10 names), empty for PMX
    repairs: tuple[tuple[str, int], ...] = ()   # (tolerance key, count) applied on reading (udpgen.mmd.repair)

    @property
    def vertex_count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def face_count(self) -> int:
        return int(self.faces.shape[0])

    @property
    def additional_uv_count(self) -> int:
        return int(self.additional_uvs.shape[1])

    def bone_index(self, name: str) -> int:
        """Index of the first bone called ``name``, or -1."""
        for i, b in enumerate(self.bones):
            if b.name == name:
                return i
        return -1

    def material_faces(self) -> list[tuple[int, int]]:
        """(first triangle, triangle count) of each material, in file order."""
        out, start = [], 0
        for m in self.materials:
            out.append((start, m.face_count))
            start += m.face_count
        return out

    def resolve_texture(self, index: int) -> str | None:
        """Absolute path of texture ``index`` if the file exists, else None (see :func:`resolve_relative`)."""
        if index < 0 or index >= len(self.textures) or self.path is None:
            return None
        return resolve_relative(os.path.dirname(os.path.abspath(self.path)), self.textures[index])


_SHARED_TOON = re.compile(r"toon(0[1-9]|10)\.bmp", re.IGNORECASE)


def shared_toon_index(name: str) -> int | None:
    """MMD's shared toon a texture path names (``'toon03.bmp'`` -> 2, any folder or case), else None. MMD
    uses its own Data/toonNN.bmp when a model's folder has no file of that name."""
    m = _SHARED_TOON.fullmatch(name.replace("\\", "/").rsplit("/", 1)[-1])
    return int(m.group(1)) - 1 if m else None


def _name_keys(entry: str) -> set[str]:
    """Lower-case spellings a directory entry may stand for: itself and, for names that a cp932 zip
    unpacked on Linux garbled (bytes kept raw, or decoded as cp437), the Japanese name it was."""
    keys = {entry.lower()}
    for raw in (os.fsencode(entry), None):
        try:
            raw = raw if raw is not None else entry.encode("cp437")
            keys.add(raw.decode("cp932").lower())
        except (UnicodeError, ValueError):
            pass
    return keys


def resolve_relative(base_dir: str, rel: str) -> str | None:
    """Find ``rel`` below ``base_dir`` as MMD on Windows would; return the real path or None.

    Windows rules: backslashes, any case, ``.`` and ``..``. Two more for files copied off Windows: a name
    that an unzip garbled from cp932 still matches its Japanese spelling, and an absolute path
    (``C:\\Users\\...\\tex\\a.png``, which only ever worked on its author's machine) is tried by its
    trailing components relative to ``base_dir`` (``tex/a.png``, then ``a.png``).
    """
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
    absolute = rel.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:", rel))
    if absolute:
        for k in range(1, len(parts)):
            found = _walk(base_dir, parts[k:])
            if found:
                return found
        return None
    return _walk(base_dir, parts)


def _walk(base_dir: str, parts: list[str]) -> str | None:
    cur = base_dir
    for part in parts:
        if part == "..":
            cur = os.path.dirname(cur)
            continue
        direct = os.path.join(cur, part)
        if os.path.exists(direct):
            cur = direct
            continue
        try:
            entries = sorted(os.listdir(cur))
        except OSError:
            return None
        low = part.lower()
        match = next((e for e in entries if low in _name_keys(e)), None)
        if match is None:
            return None
        cur = os.path.join(cur, match)
    return cur if parts and os.path.isfile(cur) else None


# ------------------------------------------------------------------------------------------------
# Motions (VMD) and poses (VPD)
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class BoneKeys:
    """K bone keyframes of a VMD, in file order (not sorted).

    names: the distinct bone names as raw bytes (cp932, cut at NUL, at most 15 bytes: VMD truncates, so
    match against a model by bytes, see :func:`vmd_name_bytes`); name_index (K,) int32 into ``names``;
    frame (K,) uint32; position (K, 3) float32 (MMD units, relative to the rest pose);
    rotation (K, 4) float32 (x, y, z, w, relative to the rest pose); interpolation (K, 64) uint8, the raw
    bytes (curve k of X, Y, Z, R at bytes 16k + {0, 4, 8, 12} = x1, y1, x2, y2 in 0..127).
    """
    names: tuple[bytes, ...] = ()
    name_index: np.ndarray = _empty((0,), np.int32)
    frame: np.ndarray = _empty((0,), np.uint32)
    position: np.ndarray = _empty((0, 3))
    rotation: np.ndarray = _empty((0, 4))
    interpolation: np.ndarray = _empty((0, 64), np.uint8)

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True, eq=False)
class MorphKeys:
    """K morph keyframes: names (bytes, as BoneKeys), name_index (K,) int32, frame (K,) uint32, weight (K,) float32."""
    names: tuple[bytes, ...] = ()
    name_index: np.ndarray = _empty((0,), np.int32)
    frame: np.ndarray = _empty((0,), np.uint32)
    weight: np.ndarray = _empty((0,))

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True, eq=False)
class CameraKeys:
    """K camera keys: frame (K,) uint32, distance (K,) float32 (negative = in front of the target),
    target (K, 3) float32, rotation (K, 3) float32 Euler radians, interpolation (K, 24) uint8,
    fov (K,) uint32 degrees, orthographic (K,) bool (the file stores 'perspective off')."""
    frame: np.ndarray = _empty((0,), np.uint32)
    distance: np.ndarray = _empty((0,))
    target: np.ndarray = _empty((0, 3))
    rotation: np.ndarray = _empty((0, 3))
    interpolation: np.ndarray = _empty((0, 24), np.uint8)
    fov: np.ndarray = _empty((0,), np.uint32)
    orthographic: np.ndarray = _empty((0,), bool)

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True, eq=False)
class LightKeys:
    """K light keys: frame (K,) uint32, color (K, 3) float32, direction (K, 3) float32."""
    frame: np.ndarray = _empty((0,), np.uint32)
    color: np.ndarray = _empty((0, 3))
    direction: np.ndarray = _empty((0, 3))

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True, eq=False)
class ShadowKeys:
    """K self-shadow keys: frame (K,) uint32, mode (K,) uint8, distance (K,) float32."""
    frame: np.ndarray = _empty((0,), np.uint32)
    mode: np.ndarray = _empty((0,), np.uint8)
    distance: np.ndarray = _empty((0,))

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@dataclass(frozen=True, eq=False)
class IKKey:
    """One IK-property key: model visibility and IK on/off per IK bone (names as raw cp932 bytes, <= 20)."""
    frame: int
    visible: bool = True
    ik_enabled: tuple[tuple[bytes, bool], ...] = ()


@dataclass(frozen=True, eq=False)
class Motion:
    """A VMD motion. ``sections`` lists the sections present in the file, in order (a file may end
    after any section), so a writer can reproduce it byte for byte."""
    path: str | None = None
    model_name: bytes = b""             # raw cp932 bytes (10 in old files, 20 in 0002 files)
    version: int = 2                    # 1 = 'Vocaloid Motion Data file', 2 = '... 0002'
    bones: BoneKeys = field(default_factory=BoneKeys)
    morphs: MorphKeys = field(default_factory=MorphKeys)
    cameras: CameraKeys = field(default_factory=CameraKeys)
    lights: LightKeys = field(default_factory=LightKeys)
    shadows: ShadowKeys = field(default_factory=ShadowKeys)
    ik: tuple[IKKey, ...] = ()
    sections: tuple[str, ...] = ("bones", "morphs", "cameras", "lights", "shadows", "ik")

    @property
    def frame_range(self) -> tuple[int, int] | None:
        """(first, last) frame over all keys, or None for an empty motion."""
        frames = [a.frame for a in (self.bones, self.morphs, self.cameras, self.lights, self.shadows) if len(a)]
        if self.ik:
            frames.append(np.array([k.frame for k in self.ik]))
        if not frames:
            return None
        allf = np.concatenate(frames)
        return int(allf.min()), int(allf.max())


@dataclass(frozen=True, eq=False)
class Pose:
    """A VPD pose: per-bone translation (3,) and unit quaternion (x, y, z, w) relative to the rest pose,
    and morph weights. Names are str (VPD is cp932 text, not truncated)."""
    path: str | None = None
    model_name: str = ""
    bones: tuple[tuple[str, np.ndarray, np.ndarray], ...] = ()
    morphs: tuple[tuple[str, float], ...] = ()


def vmd_name_bytes(name: str, width: int = 15) -> bytes:
    """The bytes a VMD stores for a model's bone/morph ``name``: cp932 cut to ``width`` bytes.

    Compare these to ``BoneKeys.names`` (MMD matches names by these bytes, so two bones whose names
    share the first 15 bytes are indistinguishable to a VMD). Unencodable names give b'' (match nothing).
    """
    try:
        return name.encode("cp932")[:width]
    except UnicodeEncodeError:
        return b""
