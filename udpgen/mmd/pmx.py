"""PMX 2.0 / 2.1 reader and writer.

``parse_pmx(data)`` turns the bytes of a .pmx file into a :class:`~udpgen.mmd.model.Model`;
``pmx_bytes(model)`` is its inverse (byte-identical for files written with the usual index sizes, which is
what PMX Editor writes). The big sections (vertices, faces, morph offsets) are decoded with numpy gathers
rather than a Python loop per element: the vertex records are variable-length, so one cheap pass finds
where each starts and the fields are then pulled out column-wise. ``read_vertices_reference`` is the
straightforward per-vertex decoder the fast path is tested (and benchmarked) against.

Layout reference: the PMX 2.0/2.1 specification that ships with PMX Editor.
"""
from __future__ import annotations

import os
import struct
import warnings

import numpy as np

from udpgen.errors import FormatError, InputWarning
from udpgen.mmd.binary import INDEX_DTYPES, BinaryReader, read_file_bytes
from udpgen.mmd.repair import read_repaired
from udpgen.mmd.model import (IK, MORPH_DTYPES, Bone, BoneFlag, DisplayFrame, IKLink, Joint, Material,
                              Model, Morph, MorphKind, RigidBody, WeightType)

MAGIC = b"PMX "
ENCODINGS = {0: "utf-16-le", 1: "utf-8"}
_GLOBALS = ("encoding", "additional_uvs", "vertex_index_size", "texture_index_size", "material_index_size",
            "bone_index_size", "morph_index_size", "rigid_index_size")

_MAT = struct.Struct("<4f3ff3fB4ff")          # diffuse, specular, power, ambient, flags, edge colour, edge size
# Bone slots used by each WeightType (BDEF1, BDEF2, BDEF4, SDEF, QDEF).
BONES_PER_TYPE = (1, 2, 4, 2, 4)

_RIGID = struct.Struct("<BHB3f3f3ffffffB")    # group, mask, shape, size, pos, rot, mass, damp x2, rest., fric., mode
_JOINT_VECS = struct.Struct("<24f")           # pos, rot, lin lo/hi, ang lo/hi, spring lin/ang


class Header:
    """The PMX globals: text encoding, additional UV count and the byte size of each index kind."""

    __slots__ = ("version", "encoding", "additional_uvs", "vertex", "texture", "material", "bone", "morph",
                 "rigid")

    def __init__(self, version, encoding, additional_uvs, vertex, texture, material, bone, morph, rigid):
        self.version, self.encoding, self.additional_uvs = version, encoding, additional_uvs
        self.vertex, self.texture, self.material = vertex, texture, material
        self.bone, self.morph, self.rigid = bone, morph, rigid


def _read_header(r: BinaryReader) -> Header:
    magic = r.take(4, "header.magic")
    if magic != MAGIC:
        raise r.fail("header.magic", f"expected {MAGIC!r}, got {magic!r} (not a PMX file)", 0)
    version = round(r.f32("header.version"), 3)
    if version not in (2.0, 2.1):
        raise r.fail("header.version", f"unsupported PMX version {version} (2.0 and 2.1 are supported)", 4)
    offset = r.pos
    n = r.u8("header.globals_count")
    if n < 8:
        raise r.fail("header.globals_count", f"expected at least 8 globals, got {n}", offset)
    g = r.take(n, "header.globals")
    if g[0] not in ENCODINGS:
        raise r.fail("header.encoding", f"expected 0 (UTF-16LE) or 1 (UTF-8), got {g[0]}", offset + 1)
    if g[1] > 4:
        raise r.fail("header.additional_uvs", f"expected 0..4, got {g[1]}", offset + 2)
    for i in range(2, 8):
        if g[i] not in (1, 2, 4):
            raise r.fail(f"header.{_GLOBALS[i]}", f"expected 1, 2 or 4, got {g[i]}", offset + 1 + i)
    return Header(version, ENCODINGS[g[0]], g[1], *g[2:8])


# ------------------------------------------------------------------------------------------------
# Vertices
# ------------------------------------------------------------------------------------------------

def _deform_sizes(bi: int) -> tuple[int, ...]:
    """Bytes of the deform block per WeightType for bone index size ``bi``."""
    return (bi, 2 * bi + 4, 4 * bi + 16, 2 * bi + 4 + 36, 4 * bi + 16)


def _gather(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """(len(starts), width) uint8: ``width`` bytes from each start offset, as one contiguous array."""
    return buf[starts[:, None] + np.arange(width)]


def _read_vertices(r: BinaryReader, h: Header):
    """Vectorised vertex section decoder; returns the vertex arrays of :class:`Model` as a dict."""
    head = 32 + 16 * h.additional_uvs                  # pos, normal, uv, additional uvs
    deform = _deform_sizes(h.bone)
    total = tuple(head + 1 + d + 4 for d in deform)     # whole record per weight type
    n = r.count("vertices", min(total))
    start, data, size = r.pos, r.data, r.size

    # Pass 1 (the only per-vertex Python loop): where each record starts and its weight type.
    offsets = np.empty(n, np.int64)
    types = bytearray(n)
    pos = start
    for i in range(n):
        tpos = pos + head
        if tpos >= size:
            raise r.fail(f"vertices[{i}].weight_type", "file ends inside the vertex section (truncated?)", pos)
        t = data[tpos]
        if t > 4:
            raise r.fail(f"vertices[{i}].weight_type", f"expected 0..4 (BDEF1..QDEF), got {t}", tpos)
        offsets[i] = pos
        types[i] = t
        pos += total[t]
    if pos > size:
        raise r.fail(f"vertices[{n - 1}]", f"record runs {pos - size} bytes past the end of the file", int(offsets[-1]))
    r.pos = pos

    # Pass 2: column-wise gathers.
    buf = np.frombuffer(data, np.uint8)
    wt = np.frombuffer(bytes(types), np.uint8).copy()
    fixed = _gather(buf, offsets, head).view("<f4").astype(np.float32)
    positions, normals, uvs = fixed[:, 0:3], fixed[:, 3:6], fixed[:, 6:8]
    additional = fixed[:, 8:].reshape(n, h.additional_uvs, 4)

    bone_indices = np.full((n, 4), -1, np.int32)
    bone_weights = np.zeros((n, 4), np.float32)
    sdef = np.zeros((n, 3, 3), np.float32)
    edge_scale = np.empty(n, np.float32)
    idx_dtype = INDEX_DTYPES[h.bone][0]
    bi = h.bone
    for t in range(5):
        sel = np.flatnonzero(wt == t)
        if sel.size == 0:
            continue
        block = _gather(buf, offsets[sel] + head + 1, deform[t] + 4)    # deform block + edge scale
        k = BONES_PER_TYPE[t]
        bone_indices[sel, :k] = np.ascontiguousarray(block[:, :k * bi]).view(idx_dtype)
        floats = np.ascontiguousarray(block[:, k * bi:]).view("<f4")
        if t == WeightType.BDEF1:
            bone_weights[sel, 0] = 1.0
        elif t in (WeightType.BDEF2, WeightType.SDEF):
            bone_weights[sel, 0] = floats[:, 0]
            bone_weights[sel, 1] = 1.0 - floats[:, 0]
            if t == WeightType.SDEF:
                sdef[sel] = floats[:, 1:10].reshape(-1, 3, 3)
        else:
            bone_weights[sel] = floats[:, :4]
        edge_scale[sel] = floats[:, -1]
    return dict(positions=np.ascontiguousarray(positions), normals=np.ascontiguousarray(normals),
                uvs=np.ascontiguousarray(uvs), additional_uvs=np.ascontiguousarray(additional),
                weight_types=wt, bone_indices=bone_indices, bone_weights=bone_weights, sdef=sdef,
                edge_scale=edge_scale)


def read_vertices_reference(r: BinaryReader, h: Header) -> dict:
    """Per-vertex decoder with one read call per field: slow, obviously right; tests and bench/ only."""
    n = r.count("vertices", 32 + 16 * h.additional_uvs + 1 + h.bone + 4)
    out = dict(positions=np.zeros((n, 3), np.float32), normals=np.zeros((n, 3), np.float32),
               uvs=np.zeros((n, 2), np.float32), additional_uvs=np.zeros((n, h.additional_uvs, 4), np.float32),
               weight_types=np.zeros(n, np.uint8), bone_indices=np.full((n, 4), -1, np.int32),
               bone_weights=np.zeros((n, 4), np.float32), sdef=np.zeros((n, 3, 3), np.float32),
               edge_scale=np.zeros(n, np.float32))
    for i in range(n):
        f = f"vertices[{i}]"
        out["positions"][i] = [r.f32(f + ".position") for _ in range(3)]
        out["normals"][i] = [r.f32(f + ".normal") for _ in range(3)]
        out["uvs"][i] = [r.f32(f + ".uv") for _ in range(2)]
        for a in range(h.additional_uvs):
            out["additional_uvs"][i, a] = [r.f32(f + ".additional_uv") for _ in range(4)]
        t = r.u8(f + ".weight_type")
        if t > 4:
            raise r.fail(f + ".weight_type", f"expected 0..4, got {t}", r.pos - 1)
        out["weight_types"][i] = t
        for j in range(BONES_PER_TYPE[t]):
            out["bone_indices"][i, j] = r.index(h.bone, f + ".bones")
        if t == 0:
            out["bone_weights"][i, 0] = 1.0
        elif t in (1, 3):
            w = r.f32(f + ".weight")
            out["bone_weights"][i, :2] = (w, 1.0 - w)
            if t == 3:
                out["sdef"][i] = np.array([r.f32(f + ".sdef") for _ in range(9)], np.float32).reshape(3, 3)
        else:
            out["bone_weights"][i] = [r.f32(f + ".weights") for _ in range(4)]
        out["edge_scale"][i] = r.f32(f + ".edge_scale")
    return out


# ------------------------------------------------------------------------------------------------
# Other sections
# ------------------------------------------------------------------------------------------------

def _read_faces(r: BinaryReader, h: Header, reference: bool = False) -> np.ndarray:
    offset = r.pos
    n = r.count("faces", h.vertex)
    if n % 3:
        raise r.fail("faces.count", f"index count {n} is not a multiple of 3", offset)
    if reference:
        return np.array([r.index(h.vertex, "faces", unsigned=True) for _ in range(n)], np.int32).reshape(-1, 3)
    dtype = INDEX_DTYPES[h.vertex][1]
    return r.array(dtype, n, "faces").astype(np.int32).reshape(-1, 3)


def _read_materials(r: BinaryReader, h: Header) -> list[Material]:
    enc, ti = h.encoding, h.texture
    out = []
    for i in range(r.count("materials", 8 + _MAT.size + 2 * ti + 2 + 1 + 4 + 4)):
        f = f"materials[{i}]"
        name = r.text(enc, f + ".name")
        name_en = r.text(enc, f + ".name_en")
        v = r.unpack(_MAT, f + ".colors")
        tex = r.index(ti, f + ".texture")
        sphere = r.index(ti, f + ".sphere_texture")
        sphere_mode = r.u8(f + ".sphere_mode")
        off = r.pos
        shared = r.u8(f + ".toon_shared")
        if shared > 1:
            raise r.fail(f + ".toon_shared", f"expected 0 or 1, got {shared}", off)
        toon = r.u8(f + ".toon") if shared else r.index(ti, f + ".toon")
        memo = r.text(enc, f + ".memo")
        off = r.pos
        count = r.i32(f + ".index_count")
        if count < 0 or count % 3:
            raise r.fail(f + ".index_count", f"expected a non-negative multiple of 3, got {count}", off)
        out.append(Material(
            name=name, name_en=name_en, diffuse=np.array(v[0:4], np.float32), specular=np.array(v[4:7], np.float32),
            specular_power=v[7], ambient=np.array(v[8:11], np.float32), flags=v[11],
            edge_color=np.array(v[12:16], np.float32), edge_size=v[16], texture_index=tex, sphere_index=sphere,
            sphere_mode=sphere_mode, toon_shared=bool(shared), toon_index=toon, memo=memo, face_count=count // 3))
    return out


def _read_bones(r: BinaryReader, h: Header) -> list[Bone]:
    enc, bi = h.encoding, h.bone
    out = []
    for i in range(r.count("bones", 8 + 12 + bi + 4 + 2 + bi)):
        f = f"bones[{i}]"
        name = r.text(enc, f + ".name")
        name_en = r.text(enc, f + ".name_en")
        position = r.floats(3, f + ".position")
        parent = r.index(bi, f + ".parent")
        layer = r.i32(f + ".layer")
        flags = r.u16(f + ".flags")
        kw = {}
        if flags & BoneFlag.TAIL_IS_BONE:
            kw["tail_index"] = r.index(bi, f + ".tail_index")
        else:
            kw["tail_offset"] = r.floats(3, f + ".tail_offset")
        if flags & (BoneFlag.APPEND_ROTATE | BoneFlag.APPEND_TRANSLATE):
            kw["append_parent"] = r.index(bi, f + ".append_parent")
            kw["append_ratio"] = r.f32(f + ".append_ratio")
        if flags & BoneFlag.FIXED_AXIS:
            kw["fixed_axis"] = r.floats(3, f + ".fixed_axis")
        if flags & BoneFlag.LOCAL_AXIS:
            kw["local_x"] = r.floats(3, f + ".local_x")
            kw["local_z"] = r.floats(3, f + ".local_z")
        if flags & BoneFlag.EXTERNAL_PARENT:
            kw["external_key"] = r.i32(f + ".external_key")
        if flags & BoneFlag.IK:
            target = r.index(bi, f + ".ik.target")
            loops = r.i32(f + ".ik.loop_count")
            angle = r.f32(f + ".ik.limit_angle")
            links = []
            for j in range(r.count(f + ".ik.links", bi + 1)):
                lf = f"{f}.ik.links[{j}]"
                bone = r.index(bi, lf + ".bone")
                off = r.pos
                limited = r.u8(lf + ".has_limits")
                if limited > 1:
                    raise r.fail(lf + ".has_limits", f"expected 0 or 1, got {limited}", off)
                if limited:
                    links.append(IKLink(bone, r.floats(3, lf + ".lower"), r.floats(3, lf + ".upper")))
                else:
                    links.append(IKLink(bone))
            kw["ik"] = IK(target=target, loop_count=loops, limit_angle=angle, links=tuple(links))
        out.append(Bone(name=name, name_en=name_en, position=position, parent=parent, layer=layer,
                        flags=flags, **kw))
    return out


def _morph_file_dtype(kind: MorphKind, h: Header) -> np.dtype:
    """Packed on-disk dtype of one offset record: the canonical dtype with the file's index width."""
    if kind in (MorphKind.VERTEX, MorphKind.UV, MorphKind.UV1, MorphKind.UV2, MorphKind.UV3, MorphKind.UV4):
        idx = INDEX_DTYPES[h.vertex][1]
    else:
        size = {MorphKind.GROUP: h.morph, MorphKind.FLIP: h.morph, MorphKind.BONE: h.bone,
                MorphKind.MATERIAL: h.material, MorphKind.IMPULSE: h.rigid}[kind]
        idx = INDEX_DTYPES[size][0]
    canon = MORPH_DTYPES[kind]
    return np.dtype([("index", idx)] + [(name, canon.fields[name][0]) for name in canon.names[1:]])


_STRUCT_CODES = {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "f4": "f"}


def _records_reference(r: BinaryReader, dtype: np.dtype, n: int, field: str) -> np.ndarray:
    """``n`` packed records of ``dtype`` decoded one struct.unpack at a time (the slow reference path)."""
    widths = [int(np.prod(dtype.fields[name][0].shape)) for name in dtype.names]
    fmt = struct.Struct("<" + "".join(_STRUCT_CODES[dtype.fields[name][0].base.str[1:]] * w
                                      for name, w in zip(dtype.names, widths)))
    out = np.zeros(n, dtype)
    for i in range(n):
        values, k = r.unpack(fmt, f"{field}[{i}]"), 0
        for name, w in zip(dtype.names, widths):
            out[i][name] = values[k] if w == 1 and not dtype.fields[name][0].shape else values[k:k + w]
            k += w
    return out


def _read_morphs(r: BinaryReader, h: Header, reference: bool = False) -> list[Morph]:
    enc = h.encoding
    out = []
    for i in range(r.count("morphs", 8 + 1 + 1 + 4)):
        f = f"morphs[{i}]"
        name = r.text(enc, f + ".name")
        name_en = r.text(enc, f + ".name_en")
        panel = r.u8(f + ".panel")
        off = r.pos
        kind = r.u8(f + ".kind")
        if kind > 10 or (kind > 8 and h.version < 2.1):
            raise r.fail(f + ".kind", f"expected 0..{8 if h.version < 2.1 else 10} for PMX {h.version}, got {kind}", off)
        kind = MorphKind(kind)
        dtype = _morph_file_dtype(kind, h)
        n = r.count(f + ".offsets", dtype.itemsize)
        raw = _records_reference(r, dtype, n, f + ".offsets") if reference else r.array(dtype, n, f + ".offsets")
        offsets = np.zeros(raw.shape[0], MORPH_DTYPES[kind])
        for field in dtype.names:
            offsets[field] = raw[field]
        out.append(Morph(name=name, name_en=name_en, panel=panel, kind=kind, offsets=offsets))
    return out


def _read_display_frames(r: BinaryReader, h: Header) -> list[DisplayFrame]:
    out = []
    for i in range(r.count("display_frames", 8 + 1 + 4)):
        f = f"display_frames[{i}]"
        name = r.text(h.encoding, f + ".name")
        name_en = r.text(h.encoding, f + ".name_en")
        special = r.u8(f + ".special")
        elements = []
        for j in range(r.count(f + ".elements", 1 + min(h.bone, h.morph))):
            off = r.pos
            is_morph = r.u8(f"{f}.elements[{j}].type")
            if is_morph > 1:
                raise r.fail(f"{f}.elements[{j}].type", f"expected 0 (bone) or 1 (morph), got {is_morph}", off)
            elements.append((bool(is_morph), r.index(h.morph if is_morph else h.bone, f"{f}.elements[{j}].index")))
        out.append(DisplayFrame(name=name, name_en=name_en, special=bool(special), elements=tuple(elements)))
    return out


def _read_rigid_bodies(r: BinaryReader, h: Header) -> list[RigidBody]:
    out = []
    for i in range(r.count("rigid_bodies", 8 + h.bone + _RIGID.size)):
        f = f"rigid_bodies[{i}]"
        name = r.text(h.encoding, f + ".name")
        name_en = r.text(h.encoding, f + ".name_en")
        bone = r.index(h.bone, f + ".bone")
        v = r.unpack(_RIGID, f + ".params")
        out.append(RigidBody(name=name, name_en=name_en, bone=bone, group=v[0], no_collision_mask=v[1], shape=v[2],
                             size=np.array(v[3:6], np.float32), position=np.array(v[6:9], np.float32),
                             rotation=np.array(v[9:12], np.float32), mass=v[12], linear_damping=v[13],
                             angular_damping=v[14], restitution=v[15], friction=v[16], mode=v[17]))
    return out


def _read_joints(r: BinaryReader, h: Header) -> list[Joint]:
    out = []
    for i in range(r.count("joints", 8 + 1 + 2 * h.rigid + _JOINT_VECS.size)):
        f = f"joints[{i}]"
        name = r.text(h.encoding, f + ".name")
        name_en = r.text(h.encoding, f + ".name_en")
        kind = r.u8(f + ".kind")
        a = r.index(h.rigid, f + ".rigid_a")
        b = r.index(h.rigid, f + ".rigid_b")
        v = np.array(r.unpack(_JOINT_VECS, f + ".params"), np.float32).reshape(8, 3)
        out.append(Joint(name=name, name_en=name_en, kind=kind, rigid_a=a, rigid_b=b, position=v[0], rotation=v[1],
                         linear_lower=v[2], linear_upper=v[3], angular_lower=v[4], angular_upper=v[5],
                         spring_linear=v[6], spring_angular=v[7]))
    return out


_SOFT_PARAMS = struct.Struct("<BHBiiffi12f6f4i3f")   # group .. material coefficients (after the material index)


def _skip_soft_bodies(r: BinaryReader, h: Header) -> int:
    """PMX 2.1 soft bodies: walked over (every field checked) but not kept; returns how many there were."""
    if r.remaining == 0:        # some 2.1 writers stop after the joints
        return 0
    n = r.count("soft_bodies", 8 + 1 + h.material + _SOFT_PARAMS.size + 8)
    for i in range(n):
        f = f"soft_bodies[{i}]"
        r.text(h.encoding, f + ".name")
        r.text(h.encoding, f + ".name_en")
        r.u8(f + ".shape")
        r.index(h.material, f + ".material")
        r.unpack(_SOFT_PARAMS, f + ".params")
        anchor = h.rigid + h.vertex + 1
        r.skip(anchor * r.count(f + ".anchors", anchor), f + ".anchors")
        r.skip(h.vertex * r.count(f + ".pins", h.vertex), f + ".pins")
    return n


# ------------------------------------------------------------------------------------------------
# Validation of cross-references (one pass, after parsing, so every check names the field and value)
# ------------------------------------------------------------------------------------------------

def _check_range(path, field: str, values: np.ndarray, upper: int, allow_none: bool = True) -> None:
    values = np.asarray(values)
    lower = -1 if allow_none else 0
    bad = np.flatnonzero((values < lower) | (values >= upper))
    if bad.size:
        i = int(bad[0])
        raise FormatError(path, None, field.format(i=i),
                          f"index {int(values.flat[i])} out of range (0..{upper - 1}{', or -1' if allow_none else ''})")


def validate(model: Model) -> None:
    """Check every index in ``model`` points at something that exists; raise FormatError naming the first bad one."""
    p = model.path
    nv, nb, nt = model.vertex_count, len(model.bones), len(model.textures)
    bad = np.flatnonzero(((model.bone_indices < -1) | (model.bone_indices >= nb)).any(1))
    if bad.size:
        i = int(bad[0])
        raise FormatError(p, None, f"vertices[{i}].bones",
                          f"bone indices {model.bone_indices[i].tolist()} out of range (0..{nb - 1}, or -1)")
    _check_range(p, "faces[{i}]", model.faces.max(1) if model.face_count else np.zeros(0), nv, allow_none=False)
    total = sum(m.face_count for m in model.materials)
    if total != model.face_count:
        raise FormatError(p, None, "materials.index_count",
                          f"materials cover {total} triangles but the model has {model.face_count}")
    for i, m in enumerate(model.materials):
        for name, value in (("texture", m.texture_index), ("sphere_texture", m.sphere_index)) + \
                (() if m.toon_shared else (("toon", m.toon_index),)):
            _check_range(p, f"materials[{i}].{name}", np.array([value]), nt)
    for i, b in enumerate(model.bones):
        refs = [("parent", b.parent), ("append_parent", b.append_parent)]
        if b.flags & BoneFlag.TAIL_IS_BONE:
            refs.append(("tail_index", b.tail_index))
        if b.ik is not None:
            refs.append(("ik.target", b.ik.target))
            refs += [(f"ik.links[{j}].bone", l.bone) for j, l in enumerate(b.ik.links)]
        for name, value in refs:
            _check_range(p, f"bones[{i}].{name}", np.array([value]), nb)
    limits = {MorphKind.GROUP: len(model.morphs), MorphKind.FLIP: len(model.morphs), MorphKind.VERTEX: nv,
              MorphKind.BONE: nb, MorphKind.MATERIAL: len(model.materials), MorphKind.IMPULSE: len(model.rigid_bodies)}
    for i, m in enumerate(model.morphs):
        upper = limits.get(m.kind, nv)          # UV morphs index vertices
        allow_none = m.kind == MorphKind.MATERIAL   # -1 = every material
        _check_range(p, f"morphs[{i}].offsets[{{i}}].index", m.offsets["index"], upper, allow_none)
    for i, d in enumerate(model.display_frames):
        for j, (is_morph, idx) in enumerate(d.elements):
            _check_range(p, f"display_frames[{i}].elements[{j}]", np.array([idx]),
                         len(model.morphs) if is_morph else nb, allow_none=False)
    for i, rb in enumerate(model.rigid_bodies):
        _check_range(p, f"rigid_bodies[{i}].bone", np.array([rb.bone]), nb)
    for i, j in enumerate(model.joints):
        _check_range(p, f"joints[{i}].rigid_a", np.array([j.rigid_a]), len(model.rigid_bodies))
        _check_range(p, f"joints[{i}].rigid_b", np.array([j.rigid_b]), len(model.rigid_bodies))


# ------------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------------

def parse_pmx(data: bytes, path: str | os.PathLike | None = None, *, strict: bool = False,
              reference: bool = False) -> Model:
    """Decode a whole PMX file.

    Raises FormatError (file, byte offset, field) for anything malformed. Bytes left after the last
    section are an error with ``strict``, else a warning (a few tools append junk). ``reference`` decodes
    the big sections one element at a time instead of column-wise: same result, many times slower; it
    exists so tests and bench/ can check the fast path against it.
    """
    r = BinaryReader(data, path)
    h = _read_header(r)
    name = r.text(h.encoding, "header.name")
    name_en = r.text(h.encoding, "header.name_en")
    comment = r.text(h.encoding, "header.comment")
    comment_en = r.text(h.encoding, "header.comment_en")
    vertices = read_vertices_reference(r, h) if reference else _read_vertices(r, h)
    faces = _read_faces(r, h, reference)
    textures = tuple(r.text(h.encoding, f"textures[{i}]") for i in range(r.count("textures", 4)))
    materials = _read_materials(r, h)
    bones = _read_bones(r, h)
    morphs = _read_morphs(r, h, reference)
    frames = _read_display_frames(r, h)
    rigid = _read_rigid_bodies(r, h)
    joints = _read_joints(r, h)
    soft = _skip_soft_bodies(r, h) if h.version >= 2.1 else 0
    if r.remaining:
        msg = f"{r.remaining} unexpected bytes after the last section"
        if strict:
            raise r.fail("end", msg)
        warnings.warn(f"{r.path or '<bytes>'}: {msg}", InputWarning, stacklevel=2)
    model = Model(format="pmx", version=h.version, path=os.fspath(path) if path is not None else None,
                  encoding=h.encoding, name=name, name_en=name_en, comment=comment, comment_en=comment_en,
                  faces=faces, textures=textures, materials=tuple(materials), bones=tuple(bones),
                  morphs=tuple(morphs), display_frames=tuple(frames), rigid_bodies=tuple(rigid),
                  joints=tuple(joints), soft_body_count=soft, **vertices)
    validate(model)
    return read_repaired(model)


def read_pmx(path: str | os.PathLike, *, strict: bool = False) -> Model:
    """Read a .pmx file; see :func:`parse_pmx`."""
    return parse_pmx(read_file_bytes(path), path, strict=strict)
