"""PMX writer: the inverse of :func:`udpgen.mmd.pmx.parse_pmx`.

Used to make test fixtures and the project's sample character. Index widths follow PMX Editor's rule
(the smallest that fits), so a file PMX Editor wrote reads and writes back byte for byte.
"""
from __future__ import annotations

import io
import os
import struct

import numpy as np

from udpgen.io.atomic import write_bytes_atomic
from udpgen.mmd.binary import INDEX_DTYPES
from udpgen.mmd.model import BoneFlag, Model, MorphKind, WeightType
from udpgen.mmd.pmx import (_JOINT_VECS, _MAT, _RIGID, BONES_PER_TYPE, MAGIC, Header, _deform_sizes,
                            _morph_file_dtype)

_ENCODING_CODES = {"utf-16-le": 0, "utf-8": 1}


def _signed_size(n: int) -> int:
    return 1 if n < 128 else 2 if n < 32768 else 4


def header_for(model: Model, encoding: str | None = None, version: float | None = None,
               index_size: int = 1) -> Header:
    """The PMX globals this writer uses for ``model``: the smallest index widths that hold every index,
    but at least ``index_size`` bytes (1, 2 or 4; wider indices are valid PMX, e.g. for tests)."""
    enc = encoding or (model.encoding if model.encoding in _ENCODING_CODES else "utf-16-le")
    if enc not in _ENCODING_CODES:
        raise ValueError(f"encoding: expected 'utf-16-le' or 'utf-8', got {enc!r}")
    nv = model.vertex_count
    if index_size not in (1, 2, 4):
        raise ValueError(f"index_size: expected 1, 2 or 4, got {index_size!r}")
    vertex = max(index_size, 1 if nv < 256 else 2 if nv < 65536 else 4)
    others = [max(index_size, _signed_size(n)) for n in (len(model.textures), len(model.materials), len(model.bones),
                                                        len(model.morphs), len(model.rigid_bodies))]
    ver = version if version is not None else (model.version if model.format == "pmx" else 2.0)
    return Header(ver, enc, model.additional_uv_count, vertex, *others)


class _Out:
    """Little-endian byte sink with PMX text and index helpers."""

    def __init__(self, h: Header):
        self.h, self.buf = h, io.BytesIO()

    def raw(self, b: bytes) -> None:
        self.buf.write(b)

    def pack(self, fmt: str | struct.Struct, *v) -> None:
        self.buf.write(fmt.pack(*v) if isinstance(fmt, struct.Struct) else struct.pack("<" + fmt, *v))

    def text(self, s: str) -> None:
        b = s.encode(self.h.encoding)
        self.pack("i", len(b))
        self.buf.write(b)

    def index(self, size: int, value: int, unsigned: bool = False) -> None:
        self.buf.write(np.array([value], INDEX_DTYPES[size][1 if unsigned else 0]).tobytes())

    def floats(self, v) -> None:
        self.buf.write(np.asarray(v, "<f4").tobytes())


def _vertex_bytes(model: Model, h: Header) -> bytes:
    """The vertex section without its count, assembled column-wise (see the reader's two passes)."""
    n, head = model.vertex_count, 32 + 16 * h.additional_uvs
    if n == 0:           # skeletons, controller models: reshape(0, -1) cannot infer a column count
        return b""
    deform = _deform_sizes(h.bone)
    wt = model.weight_types.astype(np.int64)
    sizes = np.array([head + 1 + d + 4 for d in deform])[wt]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    out = np.zeros(int(sizes.sum()), np.uint8)
    fixed = np.concatenate([model.positions, model.normals, model.uvs,
                            model.additional_uvs.reshape(n, -1)], axis=1).astype("<f4")
    out[starts[:, None] + np.arange(head)] = fixed.view(np.uint8).reshape(n, head)
    out[starts + head] = wt
    idx_dtype = INDEX_DTYPES[h.bone][0]
    for t in range(5):
        sel = np.flatnonzero(wt == t)
        if sel.size == 0:
            continue
        k = BONES_PER_TYPE[t]
        parts = [model.bone_indices[sel, :k].astype(idx_dtype).view(np.uint8).reshape(sel.size, -1)]
        if t in (WeightType.BDEF2, WeightType.SDEF):
            parts.append(model.bone_weights[sel, :1].astype("<f4").view(np.uint8).reshape(sel.size, -1))
            if t == WeightType.SDEF:
                parts.append(model.sdef[sel].reshape(-1, 9).astype("<f4").view(np.uint8).reshape(sel.size, -1))
        elif t != WeightType.BDEF1:
            parts.append(model.bone_weights[sel].astype("<f4").view(np.uint8).reshape(sel.size, -1))
        parts.append(model.edge_scale[sel, None].astype("<f4").view(np.uint8).reshape(sel.size, -1))
        block = np.concatenate(parts, axis=1)
        out[(starts[sel] + head + 1)[:, None] + np.arange(block.shape[1])] = block
    return out.tobytes()


def pmx_bytes(model: Model, *, encoding: str | None = None, version: float | None = None,
              index_size: int = 1) -> bytes:
    """Encode ``model`` as a PMX file (version 2.0 unless the model is a 2.1 PMX or ``version`` says);
    see :func:`header_for` for ``encoding`` and ``index_size``."""
    h = header_for(model, encoding, version, index_size)
    o = _Out(h)
    o.raw(MAGIC)
    o.pack("f", h.version)
    o.pack("9B", 8, _ENCODING_CODES[h.encoding], h.additional_uvs, h.vertex, h.texture, h.material, h.bone,
           h.morph, h.rigid)
    for s in (model.name, model.name_en, model.comment, model.comment_en):
        o.text(s)
    o.pack("i", model.vertex_count)
    o.raw(_vertex_bytes(model, h))
    o.pack("i", model.faces.size)
    o.raw(model.faces.astype(INDEX_DTYPES[h.vertex][1]).tobytes())
    o.pack("i", len(model.textures))
    for t in model.textures:
        o.text(t)
    o.pack("i", len(model.materials))
    for m in model.materials:
        o.text(m.name)
        o.text(m.name_en)
        o.pack(_MAT, *m.diffuse, *m.specular, m.specular_power, *m.ambient, m.flags, *m.edge_color, m.edge_size)
        o.index(h.texture, m.texture_index)
        o.index(h.texture, m.sphere_index)
        o.pack("2B", m.sphere_mode, int(m.toon_shared))
        if m.toon_shared:
            o.pack("B", m.toon_index & 0xFF)
        else:
            o.index(h.texture, m.toon_index)
        o.text(m.memo)
        o.pack("i", 3 * m.face_count)
    o.pack("i", len(model.bones))
    for b in model.bones:
        o.text(b.name)
        o.text(b.name_en)
        o.floats(b.position)
        o.index(h.bone, b.parent)
        o.pack("iH", b.layer, b.flags)
        if b.flags & BoneFlag.TAIL_IS_BONE:
            o.index(h.bone, b.tail_index)
        else:
            o.floats(b.tail_offset)
        if b.flags & (BoneFlag.APPEND_ROTATE | BoneFlag.APPEND_TRANSLATE):
            o.index(h.bone, b.append_parent)
            o.pack("f", b.append_ratio)
        if b.flags & BoneFlag.FIXED_AXIS:
            o.floats(b.fixed_axis)
        if b.flags & BoneFlag.LOCAL_AXIS:
            o.floats(b.local_x)
            o.floats(b.local_z)
        if b.flags & BoneFlag.EXTERNAL_PARENT:
            o.pack("i", b.external_key)
        if b.flags & BoneFlag.IK:
            o.index(h.bone, b.ik.target)
            o.pack("if", b.ik.loop_count, b.ik.limit_angle)
            o.pack("i", len(b.ik.links))
            for link in b.ik.links:
                o.index(h.bone, link.bone)
                o.pack("B", int(link.lower is not None))
                if link.lower is not None:
                    o.floats(link.lower)
                    o.floats(link.upper)
    o.pack("i", len(model.morphs))
    for m in model.morphs:
        o.text(m.name)
        o.text(m.name_en)
        o.pack("2B", m.panel, int(m.kind))
        dtype = _morph_file_dtype(MorphKind(m.kind), h)
        rec = np.zeros(m.offsets.shape[0], dtype)
        for f in dtype.names:
            rec[f] = m.offsets[f]
        o.pack("i", rec.shape[0])
        o.raw(rec.tobytes())
    o.pack("i", len(model.display_frames))
    for d in model.display_frames:
        o.text(d.name)
        o.text(d.name_en)
        o.pack("Bi", int(d.special), len(d.elements))
        for is_morph, idx in d.elements:
            o.pack("B", int(is_morph))
            o.index(h.morph if is_morph else h.bone, idx)
    o.pack("i", len(model.rigid_bodies))
    for rb in model.rigid_bodies:
        o.text(rb.name)
        o.text(rb.name_en)
        o.index(h.bone, rb.bone)
        o.pack(_RIGID, rb.group, rb.no_collision_mask, rb.shape, *rb.size, *rb.position, *rb.rotation, rb.mass,
               rb.linear_damping, rb.angular_damping, rb.restitution, rb.friction, rb.mode)
    o.pack("i", len(model.joints))
    for j in model.joints:
        o.text(j.name)
        o.text(j.name_en)
        o.pack("B", j.kind)
        o.index(h.rigid, j.rigid_a)
        o.index(h.rigid, j.rigid_b)
        o.pack(_JOINT_VECS, *np.concatenate([j.position, j.rotation, j.linear_lower, j.linear_upper,
                                             j.angular_lower, j.angular_upper, j.spring_linear, j.spring_angular]))
    if h.version >= 2.1:
        o.pack("i", 0)      # soft bodies are not kept by the reader, so none are written
    return o.buf.getvalue()


def write_pmx(model: Model, path: str | os.PathLike, **kw) -> None:
    """Write ``model`` to ``path`` atomically (temp file + rename); ``kw`` as for :func:`pmx_bytes`."""
    write_bytes_atomic(path, pmx_bytes(model, **kw))
