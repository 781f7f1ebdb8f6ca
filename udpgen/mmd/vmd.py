"""VMD (Vocaloid Motion Data) motions: read, write, and decode the interpolation curves.

Layout (little-endian, no alignment):

* header: 30-byte magic, NUL padded: ``Vocaloid Motion Data 0002`` (version 2, 20-byte model name) or the
  MMD 1.30 ``Vocaloid Motion Data file`` (version 1, 10-byte model name);
* then six sections in this order, each a uint32 count followed by the records:

  ============ =========== =================================================================================
  section      record      fields
  ============ =========== =================================================================================
  bone keys    111 bytes   name 15, frame u32, position 3f, rotation 4f (x, y, z, w), interpolation 64 bytes
  morph keys   23 bytes    name 15, frame u32, weight f
  camera keys  61 bytes    frame u32, distance f, target 3f, rotation 3f (Euler radians), interpolation 24
               bytes, fov u32 (degrees), perspective-off u8
  light keys   28 bytes    frame u32, color 3f, direction 3f
  self-shadow  9 bytes     frame u32, mode u8, distance f
  IK property  variable    frame u32, visible u8, u32 count, then per IK bone: name 20, enabled u8
  ============ =========== =================================================================================

A file may end after any section (motion-only files often stop after the morphs, older ones after the
self-shadow keys); :attr:`Motion.sections` records which sections were there so :func:`vmd_bytes` writes
the same ones back. Bytes after the IK section are rejected (they cannot be represented).

The camera's last byte is a "perspective *off*" flag: 0 for MMD's default perspective view, 1 when the
"パース" (perspective) button is switched off. It is read as ``CameraKeys.orthographic = byte != 0``
(two independent VMD libraries, one C# and one Go, both name it ``IsPerspectiveOff``; babylon-mmd and saba
read the same byte but name it ambiguously ``perspective`` / ``m_isPerspective``).

Names are kept as raw cp932 bytes cut at the first NUL (files pad with NUL, some with 0xFD garbage after
it; a 15-byte name may end in half a double-byte character), see :func:`udpgen.mmd.model.vmd_name_bytes`.
Whatever followed the NUL is dropped, so only files without such garbage (the writer's own, and e.g.
the Gene sample motions) round-trip byte for byte; any file round-trips to an equal :class:`Motion`.

Every problem in the input raises :class:`udpgen.errors.FormatError` naming the file, the byte offset and
the field (e.g. ``bone_keys[17].rotation``). Counts are checked against the bytes left before anything is
allocated, and the fixed-size sections are decoded with numpy structured dtypes (no Python loop per key).
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from udpgen.errors import InputWarning

from udpgen.io.atomic import write_bytes_atomic
from udpgen.mmd.binary import BinaryReader, read_file_bytes
from udpgen.mmd.model import BoneKeys, CameraKeys, IKKey, LightKeys, MorphKeys, Motion, ShadowKeys

MAGIC_V2 = b"Vocaloid Motion Data 0002"
MAGIC_V1 = b"Vocaloid Motion Data file"
MAGIC_SIZE = 30
MODEL_NAME_SIZE = {1: 10, 2: 20}
NAME_SIZE = 15          # bone and morph names
IK_NAME_SIZE = 20       # IK bone names in the IK-property section

#: Section names as used in :attr:`Motion.sections`, in file order.
SECTIONS = ("bones", "morphs", "cameras", "lights", "shadows", "ik")
#: The field prefix each section's errors use.
SECTION_FIELDS = {"bones": "bone_keys", "morphs": "morph_keys", "cameras": "camera_keys",
                  "lights": "light_keys", "shadows": "shadow_keys", "ik": "ik_keys"}

# Packed record layouts (np.dtype without align=True has no padding).
BONE_DTYPE = np.dtype([("name", "u1", (NAME_SIZE,)), ("frame", "<u4"), ("position", "<f4", (3,)),
                       ("rotation", "<f4", (4,)), ("interpolation", "u1", (64,))])
MORPH_DTYPE = np.dtype([("name", "u1", (NAME_SIZE,)), ("frame", "<u4"), ("weight", "<f4")])
CAMERA_DTYPE = np.dtype([("frame", "<u4"), ("distance", "<f4"), ("target", "<f4", (3,)),
                         ("rotation", "<f4", (3,)), ("interpolation", "u1", (24,)), ("fov", "<u4"),
                         ("perspective_off", "u1")])
LIGHT_DTYPE = np.dtype([("frame", "<u4"), ("color", "<f4", (3,)), ("direction", "<f4", (3,))])
SHADOW_DTYPE = np.dtype([("frame", "<u4"), ("mode", "u1"), ("distance", "<f4")])
IK_STATE_DTYPE = np.dtype([("name", "u1", (IK_NAME_SIZE,)), ("enabled", "u1")])
IK_KEY_MIN_SIZE = 4 + 1 + 4     # frame, visible, state count (with no states)

assert (BONE_DTYPE.itemsize, MORPH_DTYPE.itemsize, CAMERA_DTYPE.itemsize, LIGHT_DTYPE.itemsize,
        SHADOW_DTYPE.itemsize, IK_STATE_DTYPE.itemsize) == (111, 23, 61, 28, 9, 21)

#: Quaternions whose norm is within this of 1 are left bit-for-bit as stored: authoring tools write
#: float32 unit quaternions with rounding errors of ~1e-5 (the Gene motions: at most 9.8e-6), and
#: renormalising those would change the file on a round trip for no visible gain.
QUAT_TOLERANCE = 1e-4
#: Below this norm a quaternion is "zero": it has no usable direction.
QUAT_ZERO_NORM = 1e-6

# Bone interpolation: curve k (0 X, 1 Y, 2 Z, 3 rotation) is read from row k of MMD's 4x16 block, at
# bytes 16k + (0, 4, 8, 12) = (x1, y1, x2, y2). Row 0 alone holds all four curves too (at k + (0, 4, 8,
# 12)), but bytes 2 and 3 of row 0 are overwritten (by MMD's physics on/off flag, and with 0 in every key of
# the Gene motions), so reading row 0 would corrupt the Z and rotation curves. babylon-mmd's vmdLoader
# reads by row; saba's VMDAnimation reads row 0 and so gets those two curves wrong.
_BONE_CURVE_BYTES = 16 * np.arange(4)[:, None] + np.array([0, 4, 8, 12])[None, :]       # (4 curves, 4)
# Camera interpolation: six curves (X, Y, Z, rotation, distance, fov), 4 bytes each stored as
# (x1, x2, y1, y2) (saba VMDCameraAnimation, babylon-mmd vmdLoader); returned as (x1, y1, x2, y2).
_CAMERA_CURVE_BYTES = 4 * np.arange(6)[:, None] + np.array([0, 2, 1, 3])[None, :]       # (6 curves, 4)


# ------------------------------------------------------------------------------------------------
# Helpers shared with the rig
# ------------------------------------------------------------------------------------------------

def normalize_quaternions(q, *, tol: float = QUAT_TOLERANCE, zero_to_identity: bool = True
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Make (x, y, z, w) quaternions unit length; report the ones that cannot be.

    Args:
        q: (..., 4) quaternions, any float dtype.
        tol: rows whose norm is within ``tol`` of 1 are returned unchanged (same float32 bits), others are
            divided by their norm (in float64). ``tol=0`` normalises every row.
        zero_to_identity: rows with norm < ``QUAT_ZERO_NORM`` become the identity (0, 0, 0, 1) when True
            (VMD: tools write all-zero quaternions for "no rotation data"); when False they are bad.

    Returns:
        ``(out, bad)``: ``out`` is a new (..., 4) float32 array; ``bad`` the int64 indices (into the rows
        of ``q`` flattened to (N, 4)) of rows that contain NaN/inf, or are zero with ``zero_to_identity``
        False. Bad rows are returned as stored; callers raise, naming the key.
    """
    q = np.asarray(q)
    shape = q.shape
    flat = q.reshape(-1, 4)
    out = flat.astype(np.float32)                     # a copy, same bits where nothing changes
    q64 = flat.astype(np.float64)
    finite = np.isfinite(q64).all(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        norm = np.sqrt(np.einsum("ij,ij->i", np.where(finite[:, None], q64, 0.0),
                                 np.where(finite[:, None], q64, 0.0)))
    zero = finite & (norm < QUAT_ZERO_NORM)
    fix = finite & ~zero & (np.abs(norm - 1.0) > tol)
    if fix.any():
        out[fix] = (q64[fix] / norm[fix, None]).astype(np.float32)
    if zero_to_identity:
        out[zero] = np.array([0, 0, 0, 1], np.float32)
        bad = ~finite
    else:
        bad = ~finite | zero
    return out.reshape(shape), np.flatnonzero(bad)


def bone_curves(interpolation) -> np.ndarray:
    """Decode bone-key interpolation bytes into Bezier control points.

    Args:
        interpolation: (K, 64) uint8 (or (64,)), :attr:`BoneKeys.interpolation` as stored.

    Returns:
        (K, 4, 4) float32 (or (4, 4)): for each key the curves of X, Y, Z translation and rotation, each as
        (x1, y1, x2, y2) in [0, 1] (byte / 127; the curve runs from (0, 0) to (1, 1)). Curve k is read at
        bytes 16k + (0, 4, 8, 12) ("by row", as babylon-mmd does; see the module comment on why not row 0).
        Bytes above 127 (not written by MMD) are clamped to 1.
    """
    a = np.asarray(interpolation, dtype=np.uint8)
    if a.shape[-1:] != (64,):
        raise ValueError(f"bone interpolation must have 64 bytes per key, got shape {a.shape}")
    return np.minimum(a[..., _BONE_CURVE_BYTES], 127).astype(np.float32) / np.float32(127)


def camera_curves(interpolation) -> np.ndarray:
    """Decode camera-key interpolation bytes into Bezier control points.

    Args:
        interpolation: (K, 24) uint8 (or (24,)), :attr:`CameraKeys.interpolation` as stored.

    Returns:
        (K, 6, 4) float32 (or (6, 4)): for each key the curves of target X, Y, Z, rotation, distance and
        fov, each as (x1, y1, x2, y2) in [0, 1] (same order as :func:`bone_curves`). The file stores curve c
        at bytes 4c + (0, 1, 2, 3) = (x1, x2, y1, y2) (saba VMDCameraAnimation.cpp, babylon-mmd
        vmdLoader.ts). Bytes above 127 are clamped to 1.
    """
    a = np.asarray(interpolation, dtype=np.uint8)
    if a.shape[-1:] != (24,):
        raise ValueError(f"camera interpolation must have 24 bytes per key, got shape {a.shape}")
    return np.minimum(a[..., _CAMERA_CURVE_BYTES], 127).astype(np.float32) / np.float32(127)


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------

def read_vmd(path: str | os.PathLike, *, strict: bool = False) -> Motion:
    """Read a .vmd file; see :func:`parse_vmd`. OS problems (missing file, a directory) raise FormatError."""
    return parse_vmd(read_file_bytes(path), path, strict=strict)


def parse_vmd(data: bytes, path: str | os.PathLike | None = None, *, strict: bool = False) -> Motion:
    """Parse VMD bytes into a :class:`Motion` (``path`` only names the file in errors and ``Motion.path``).

    Bone rotations are normalised (see :func:`normalize_quaternions`: near-unit ones kept as stored, zero
    ones become the identity); NaN/inf in any float field raises FormatError naming the key. Bytes after
    the last section warn, or raise FormatError (field ``trailing``) with ``strict``, as for PMX and PMD.
    """
    r = BinaryReader(data, path)
    magic_raw = r.take(MAGIC_SIZE, "header.magic")
    magic = magic_raw.split(b"\0", 1)[0]
    if magic == MAGIC_V2:
        version = 2
    elif magic == MAGIC_V1:
        version = 1
    else:
        raise r.fail("header.magic", f"not a VMD file: starts {magic_raw!r}", 0)
    model_name = r.fixed_bytes(MODEL_NAME_SIZE[version], "header.model_name")

    parts: dict[str, object] = {}
    present: list[str] = []
    readers = {"bones": _read_bones, "morphs": _read_morphs, "cameras": _read_cameras,
               "lights": _read_lights, "shadows": _read_shadows, "ik": _read_ik}
    for section in SECTIONS:
        if r.remaining == 0:            # the file may end after any section
            break
        parts[section] = readers[section](r)
        present.append(section)
    if r.remaining:
        msg = f"{r.remaining} unexpected bytes after the last section ({SECTIONS[-1]})"
        if strict:
            raise r.fail("trailing", msg)
        warnings.warn(f"{r.path or '<bytes>'}: {msg}", InputWarning, stacklevel=2)
    return Motion(path=r.path, model_name=model_name, version=version, sections=tuple(present), **parts)


def _records(r: BinaryReader, section: str, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """The section's count and records: (structured array, byte offset of record 0)."""
    field = SECTION_FIELDS[section]
    n = r.count(field, dtype.itemsize, signed=False)
    base = r.pos
    return r.array(dtype, n, field), base


def _field_offset(arr: np.ndarray, base: int, i: int, name: str) -> int:
    return base + i * arr.dtype.itemsize + arr.dtype.fields[name][1]


def _check_finite(r: BinaryReader, section: str, arr: np.ndarray, base: int, names: tuple[str, ...]) -> None:
    """Reject NaN/inf in the float fields ``names``, naming the first bad key (lowest offset)."""
    worst = None
    for name in names:
        v = arr[name].reshape(len(arr), -1) if len(arr) else arr[name].reshape(0, 1)
        bad = ~np.isfinite(v).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            off = _field_offset(arr, base, i, name)
            if worst is None or off < worst[0]:
                worst = (off, i, name, v[i].tolist())
    if worst is not None:
        off, i, name, values = worst
        raise r.fail(f"{SECTION_FIELDS[section]}[{i}].{name}", f"not a finite number: {values}", off)


def _unique_names(raw: np.ndarray) -> tuple[tuple[bytes, ...], np.ndarray]:
    """(K, W) uint8 NUL-padded names -> (distinct names cut at the first NUL, (K,) int32 index)."""
    raw = raw.copy()
    raw[np.cumsum(raw == 0, axis=1) > 0] = 0        # blank whatever follows the first NUL (0xFD garbage)
    width = raw.shape[1]
    as_bytes = np.ascontiguousarray(raw).view(f"S{width}").reshape(-1)
    uniq, inverse = np.unique(as_bytes, return_inverse=True)
    # numpy 'S' items drop trailing NULs, which after the blanking above is exactly "cut at the first NUL"
    return tuple(bytes(u) for u in uniq), inverse.reshape(-1).astype(np.int32)


def _read_bones(r: BinaryReader) -> BoneKeys:
    arr, base = _records(r, "bones", BONE_DTYPE)
    _check_finite(r, "bones", arr, base, ("position",))
    rotation, bad = normalize_quaternions(arr["rotation"])
    if bad.size:
        i = int(bad[0])
        raise r.fail(f"bone_keys[{i}].rotation", f"not a finite number: {arr['rotation'][i].tolist()}",
                     _field_offset(arr, base, i, "rotation"))
    names, index = _unique_names(arr["name"])
    return BoneKeys(names=names, name_index=index,
                    frame=arr["frame"].astype(np.uint32),
                    position=arr["position"].astype(np.float32),
                    rotation=np.ascontiguousarray(rotation),
                    interpolation=np.ascontiguousarray(arr["interpolation"]))


def _read_morphs(r: BinaryReader) -> MorphKeys:
    arr, base = _records(r, "morphs", MORPH_DTYPE)
    _check_finite(r, "morphs", arr, base, ("weight",))
    names, index = _unique_names(arr["name"])
    return MorphKeys(names=names, name_index=index, frame=arr["frame"].astype(np.uint32),
                     weight=arr["weight"].astype(np.float32))


def _read_cameras(r: BinaryReader) -> CameraKeys:
    arr, base = _records(r, "cameras", CAMERA_DTYPE)
    _check_finite(r, "cameras", arr, base, ("distance", "target", "rotation"))
    return CameraKeys(frame=arr["frame"].astype(np.uint32), distance=arr["distance"].astype(np.float32),
                      target=arr["target"].astype(np.float32), rotation=arr["rotation"].astype(np.float32),
                      interpolation=np.ascontiguousarray(arr["interpolation"]),
                      fov=arr["fov"].astype(np.uint32), orthographic=arr["perspective_off"] != 0)


def _read_lights(r: BinaryReader) -> LightKeys:
    arr, base = _records(r, "lights", LIGHT_DTYPE)
    _check_finite(r, "lights", arr, base, ("color", "direction"))
    return LightKeys(frame=arr["frame"].astype(np.uint32), color=arr["color"].astype(np.float32),
                     direction=arr["direction"].astype(np.float32))


def _read_shadows(r: BinaryReader) -> ShadowKeys:
    arr, base = _records(r, "shadows", SHADOW_DTYPE)
    _check_finite(r, "shadows", arr, base, ("distance",))
    return ShadowKeys(frame=arr["frame"].astype(np.uint32), mode=arr["mode"].astype(np.uint8),
                      distance=arr["distance"].astype(np.float32))


def _read_ik(r: BinaryReader) -> tuple[IKKey, ...]:
    # Variable-size records: one Python iteration per key, but every count is checked against the bytes
    # left first, so the work is bounded by the file size.
    n = r.count("ik_keys", IK_KEY_MIN_SIZE, signed=False)
    keys = []
    for i in range(n):
        frame = r.u32(f"ik_keys[{i}].frame")
        visible = r.u8(f"ik_keys[{i}].visible")
        m = r.count(f"ik_keys[{i}].ik_enabled", IK_STATE_DTYPE.itemsize, signed=False)
        states = r.array(IK_STATE_DTYPE, m, f"ik_keys[{i}].ik_enabled")
        raw = states["name"]
        cut = [bytes(row).split(b"\0", 1)[0] for row in raw]
        keys.append(IKKey(frame=frame, visible=visible != 0,
                          ik_enabled=tuple(zip(cut, (bool(e) for e in states["enabled"])))))
    return tuple(keys)


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------

def write_vmd(motion: Motion, path: str | os.PathLike) -> None:
    """Write ``motion`` to ``path`` atomically (temp file + rename)."""
    write_bytes_atomic(path, vmd_bytes(motion))


def vmd_bytes(motion: Motion) -> bytes:
    """Serialise ``motion`` as VMD.

    Writes the sections named in ``motion.sections`` and, since a file can only end early, every section
    before the last one named (empty if not named); a non-empty section is always written, even if not
    named, so no data is dropped. For a motion read from a file without garbage after the names' NULs this
    reproduces the file byte for byte.

    Raises:
        ValueError: a name longer than its field (15 bytes for bone/morph names, 20 for IK names, 10/20 for
            the model name) or containing NUL, a name_index out of range, NaN/inf in a float field, an
            unknown section name or version, or arrays of mismatched lengths.
    """
    if motion.version not in MODEL_NAME_SIZE:
        raise ValueError(f"VMD version must be 1 or 2, got {motion.version!r}")
    unknown = [s for s in motion.sections if s not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown VMD section(s) {unknown}; expected names from {SECTIONS}")
    data = {"bones": motion.bones, "morphs": motion.morphs, "cameras": motion.cameras,
            "lights": motion.lights, "shadows": motion.shadows, "ik": motion.ik}
    wanted = [SECTIONS.index(s) for s in motion.sections]
    wanted += [i for i, s in enumerate(SECTIONS) if len(data[s])]
    last = max(wanted, default=-1)

    magic = MAGIC_V2 if motion.version == 2 else MAGIC_V1
    parts = [magic.ljust(MAGIC_SIZE, b"\0"),
             _pad(motion.model_name, MODEL_NAME_SIZE[motion.version], "model_name")]
    writers = {"bones": _bone_bytes, "morphs": _morph_bytes, "cameras": _camera_bytes,
               "lights": _light_bytes, "shadows": _shadow_bytes, "ik": _ik_bytes}
    for section in SECTIONS[:last + 1]:
        parts.append(writers[section](data[section]))
    return b"".join(parts)


def _pad(name: bytes, width: int, field: str) -> bytes:
    name = bytes(name)
    if len(name) > width:
        raise ValueError(f"{field}: {name!r} is {len(name)} bytes, the VMD field holds {width}")
    if b"\0" in name:
        raise ValueError(f"{field}: {name!r} contains a NUL byte")
    return name.ljust(width, b"\0")


def _name_table(names: tuple[bytes, ...], index: np.ndarray, width: int, field: str) -> np.ndarray:
    """(K, width) uint8 NUL-padded names for keys ``index`` into ``names``."""
    table = np.zeros((max(len(names), 1), width), np.uint8)
    for j, nm in enumerate(names):
        padded = _pad(nm, width, f"{field}.names[{j}]")
        table[j] = np.frombuffer(padded, np.uint8)
    index = np.asarray(index)
    if index.size and (index.min() < 0 or index.max() >= len(names)):
        raise ValueError(f"{field}.name_index: values must be in [0, {len(names)}), "
                         f"got [{int(index.min())}, {int(index.max())}]")
    return table[index.astype(np.intp)]


def _section(count: int, arr: np.ndarray, field: str) -> bytes:
    # The reader rejects NaN/inf, so the writer must not produce them.
    for name in arr.dtype.names if count else ():
        if arr.dtype.fields[name][0].base.kind == "f":
            v = arr[name].reshape(count, -1)
            bad = ~np.isfinite(v).all(axis=1)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"{field}[{i}].{name}: not a finite number: {v[i].tolist()}")
    return np.uint32(count).astype("<u4").tobytes() + arr.tobytes()


def _bone_bytes(keys: BoneKeys) -> bytes:
    k = len(keys)
    arr = np.zeros(k, BONE_DTYPE)
    arr["name"] = _name_table(keys.names, keys.name_index, NAME_SIZE, "bone_keys")
    arr["frame"] = keys.frame
    arr["position"] = keys.position
    arr["rotation"] = keys.rotation
    arr["interpolation"] = keys.interpolation
    return _section(k, arr, "bone_keys")


def _morph_bytes(keys: MorphKeys) -> bytes:
    k = len(keys)
    arr = np.zeros(k, MORPH_DTYPE)
    arr["name"] = _name_table(keys.names, keys.name_index, NAME_SIZE, "morph_keys")
    arr["frame"] = keys.frame
    arr["weight"] = keys.weight
    return _section(k, arr, "morph_keys")


def _camera_bytes(keys: CameraKeys) -> bytes:
    k = len(keys)
    arr = np.zeros(k, CAMERA_DTYPE)
    arr["frame"] = keys.frame
    arr["distance"] = keys.distance
    arr["target"] = keys.target
    arr["rotation"] = keys.rotation
    arr["interpolation"] = keys.interpolation
    arr["fov"] = keys.fov
    arr["perspective_off"] = np.asarray(keys.orthographic, bool)
    return _section(k, arr, "camera_keys")


def _light_bytes(keys: LightKeys) -> bytes:
    k = len(keys)
    arr = np.zeros(k, LIGHT_DTYPE)
    arr["frame"] = keys.frame
    arr["color"] = keys.color
    arr["direction"] = keys.direction
    return _section(k, arr, "light_keys")


def _shadow_bytes(keys: ShadowKeys) -> bytes:
    k = len(keys)
    arr = np.zeros(k, SHADOW_DTYPE)
    arr["frame"] = keys.frame
    arr["mode"] = keys.mode
    arr["distance"] = keys.distance
    return _section(k, arr, "shadow_keys")


def _ik_bytes(keys: tuple[IKKey, ...]) -> bytes:
    out = [np.uint32(len(keys)).astype("<u4").tobytes()]
    for i, key in enumerate(keys):
        states = np.zeros(len(key.ik_enabled), IK_STATE_DTYPE)
        for j, (name, enabled) in enumerate(key.ik_enabled):
            states["name"][j] = np.frombuffer(_pad(name, IK_NAME_SIZE, f"ik_keys[{i}].ik_enabled[{j}].name"),
                                              np.uint8)
            states["enabled"][j] = 1 if enabled else 0
        head = np.zeros(1, np.dtype([("frame", "<u4"), ("visible", "u1"), ("count", "<u4")]))
        head["frame"] = key.frame
        head["visible"] = 1 if key.visible else 0
        head["count"] = len(states)
        out.append(head.tobytes() + states.tobytes())
    return b"".join(out)
