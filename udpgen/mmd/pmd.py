"""Read PMD 1.0 models (MMD's original format) into the PMX-shaped :class:`Model`.

PMD is converted on read the way MMD, PmxEditor, mmd_tools, saba and babylon-mmd interpret it:

* Weights: PMD stores two bones and an integer weight 0..100 for the first. A vertex whose bones are
  equal, or whose weight is 100 or 0, becomes BDEF1 on the bone that carries all the weight (skinning
  is identical); the rest become BDEF2 (w/100, 1 - w/100). Edge flag 1 means *no* edge: edge_scale 0.
* Materials have no names in PMD; they are called 材質1, 材質2, ... (as PmxEditor does). The texture
  field may hold "tex.bmp*sphere.sph"; a lone .sph/.spa name is a sphere with no texture; .spa adds,
  anything else multiplies. Flags follow MMD: edge flag -> EDGE and GROUND_SHADOW, alpha < 1 ->
  DOUBLE_SIDED, self shadow (CAST/RECEIVE) on unless alpha == 0.98 (MMD's "no self shadow" marker).
  Edge colour is black, edge size 1. Toon byte 255 = none; 0..9 picks an entry of the toon list
  (``Model.toon_textures``, defaults toon01..toon10.bmp when the file has none): a standard
  "toonNN.bmp" name becomes a shared toon (index NN-1), a custom name a model texture.
* Bones by PMD type: 0/3/4 rotate, 1 rotate+move, 2 IK (move, layer 1), 5 rotation-affected (append
  rotate from the bone in the ik field, ratio 1, layer 2), 6 IK target and 7 hidden (not VISIBLE),
  8 twist (FIXED_AXIS along head -> tail), 9 rotation-follow (hidden, append rotate from the bone in
  the tail field, ratio = signed ik field / 100). A layer is never below the parent's. Tail 0 or
  0xFFFF means no tail bone (no bone ever ends at bone 0).
* IK: loop_count = iterations, limit_angle = 4 x the PMD control weight (radians; verified on Gene:
  PMD 0.501782 vs the PMX's 2.007129). Links whose name contains ひざ get MMD's knee limit
  X in [-180, -0.5] degrees. A second IK entry on the same bone goes on a hidden copy "name+" appended
  after the last bone (as mmd_tools does).
* Morphs: the base morph (type 0, first) holds absolute positions of the morphed vertices; the others
  index into that list. They become PMX vertex morphs on mesh vertices, panel = PMD type (1..4).
* Rigid bodies: PMD positions are relative to the bone (bone 0 when none); stored here in model space.

Optional extensions (English names, toon list, physics) may each be absent: the file may end after any
of them. Bytes after the joints warn, or raise with ``strict``.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
import math
import os
import struct
import warnings

import numpy as np

from udpgen.errors import FormatError, InputWarning
from udpgen.mmd.binary import BinaryReader, read_file_bytes
from udpgen.mmd.repair import read_repaired
from udpgen.mmd.model import (IK, MORPH_DTYPES, Bone, BoneFlag, DisplayFrame, IKLink, Joint, Material,
                              MaterialFlag, Model, Morph, MorphKind, RigidBody, WeightType, shared_toon_index)

_VERTEX = np.dtype([("pos", "<f4", (3,)), ("normal", "<f4", (3,)), ("uv", "<f4", (2,)),
                    ("bones", "<u2", (2,)), ("weight", "u1"), ("no_edge", "u1")])      # 38 bytes
_MORPH_ITEM = np.dtype([("index", "<u4"), ("offset", "<f4", (3,))])                      # 16 bytes
_MATERIAL = struct.Struct("<4ff3f3fBBI")        # + 20-byte texture name = 70 bytes
_BONE = struct.Struct("<HHBH3f")                # after the 20-byte name: 39 bytes
_IK = struct.Struct("<HHBHf")                   # + chain u16 x n
_RIGID = struct.Struct("<HBHB3f3f3f5fB")        # after the 20-byte name: 83 bytes
_JOINT = struct.Struct("<II24f")                # after the 20-byte name: 124 bytes
_NONE16 = 0xFFFF
_KNEE_LOWER = np.array([-math.pi, 0, 0], np.float32)
_KNEE_UPPER = np.array([math.radians(-0.5), 0, 0], np.float32)
_DEFAULT_TOONS = tuple(f"toon{i:02d}.bmp" for i in range(1, 11))


def _text(r: BinaryReader, n: int, field: str) -> str:
    # Fixed fields are cut at the first NUL (the rest is 0xFD padding); a 20-byte name may end mid-character.
    return r.fixed_text(n, field, truncated=True)


def _vec(values) -> np.ndarray:
    return np.array(values, np.float32)


def _bad(path, field: str, reason: str, offset: int | None) -> FormatError:
    return FormatError(path, offset, field, reason)


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _read_materials(r: BinaryReader):
    """Raw materials: (fields tuple, texture name, byte offset) per material."""
    out = []
    for i in range(r.count("materials", _MATERIAL.size + 20, signed=False)):
        off = r.pos
        v = r.unpack(_MATERIAL, f"materials[{i}]")
        out.append((v, _text(r, 20, f"materials[{i}].texture"), off))
    return out


def _read_morphs(r: BinaryReader):
    """Raw skins: (name, type, items (K,) _MORPH_ITEM, byte offset of the items) per skin."""
    out = []
    for i in range(r.count("morphs", 25, width=2)):
        name = _text(r, 20, f"morphs[{i}].name")
        n = r.count(f"morphs[{i}].vertices", _MORPH_ITEM.itemsize, signed=False)
        kind = r.u8(f"morphs[{i}].type")
        off = r.pos
        out.append((name, kind, r.array(_MORPH_ITEM, n, f"morphs[{i}].vertices"), off))
    return out


def _convert_material(i, raw, toons, textures: dict, path) -> Material:
    v, tex, off = raw
    diffuse, power, specular, ambient = v[0:4], v[4], v[5:8], v[8:11]
    toon, edge, index_count = v[11], v[12], v[13]
    if index_count % 3:
        raise _bad(path, f"materials[{i}].face_vertex_count", f"{index_count} is not a multiple of 3", off + 46)

    def tex_index(name: str) -> int:
        return textures.setdefault(name, len(textures)) if name else -1

    main, star, sphere = tex.partition("*")
    if not star and main.lower().endswith((".sph", ".spa")):
        main, sphere = "", main
    flags = MaterialFlag(0)
    if edge:
        flags |= MaterialFlag.EDGE | MaterialFlag.GROUND_SHADOW
    if abs(diffuse[3] - 0.98) > 1e-6:       # alpha 0.98 is MMD's switch for "no self shadow"
        flags |= MaterialFlag.CAST_SHADOW | MaterialFlag.RECEIVE_SHADOW
    if diffuse[3] < 1.0:
        flags |= MaterialFlag.DOUBLE_SIDED
    toon_shared, toon_index = True, -1
    if toon != 255:
        if toon > 9:
            raise _bad(path, f"materials[{i}].toon", f"toon index {toon} out of range (0..9, or 255)", off + 44)
        shared = shared_toon_index(toons[toon])
        if shared is not None:
            toon_index = shared
        elif toons[toon]:
            toon_shared, toon_index = False, tex_index(toons[toon])
    return Material(
        name=f"材質{i + 1}", diffuse=_vec(diffuse), specular=_vec(specular), specular_power=power,
        ambient=_vec(ambient), flags=int(flags), edge_size=1.0, texture_index=tex_index(main),
        sphere_index=tex_index(sphere), sphere_mode=(2 if sphere.lower().endswith(".spa") else 1) if sphere else 0,
        toon_shared=toon_shared, toon_index=toon_index, face_count=index_count // 3)


def _bone_layers(parents: list[int], own: list[int], path, offsets: list[int]) -> list[int]:
    """Raise a bone's layer to its parent's (so children deform after their IK/append parents); reject cycles."""
    n = len(parents)
    layer = [-1] * n                        # -1 unvisited, -2 on the current walk
    for i in range(n):
        walk, j = [], i
        while j >= 0 and layer[j] == -1:
            layer[j] = -2
            walk.append(j)
            j = parents[j]
        if j >= 0 and layer[j] == -2:
            raise _bad(path, f"bones[{j}].parent", f"parent chain loops back to bone {j}", offsets[j] + 20)
        top = layer[j] if j >= 0 else 0
        for k in reversed(walk):
            top = layer[k] = max(own[k], top)
    return layer


def _convert_bones(raw, iks, names_en, path) -> list[Bone]:
    """PMD bones + IK list -> Bones. raw: (name, parent, tail, type, ik_field, position, offset) per bone;
    iks: (bone, target, iterations, control weight, chain, offset) per IK entry."""
    n = len(raw)

    def ref(value: int, field: str, off: int, none_ok: bool = True) -> int:
        if none_ok and value == _NONE16:
            return -1
        if value >= n:
            raise _bad(path, field, f"bone index {value} out of range (0..{n - 1}"
                       f"{', or 65535' if none_ok else ''})", off)
        return value

    ik_of: dict[int, list] = {}
    for k, (bone, target, iters, weight, chain, off) in enumerate(iks):
        ref(bone, f"iks[{k}].bone", off, False)
        ref(target, f"iks[{k}].target", off + 2, False)
        links = []
        for j, b in enumerate(chain):
            ref(b, f"iks[{k}].links[{j}]", off + 11 + 2 * j, False)
            knee = "ひざ" in raw[b][0]          # MMD hard-codes a hinge limit for knees
            links.append(IKLink(b, _KNEE_LOWER.copy() if knee else None, _KNEE_UPPER.copy() if knee else None))
        ik_of.setdefault(bone, []).append(IK(target, iters, 4.0 * weight, tuple(links)))

    parents, own, bones = [], [], []
    for i, (name, parent, tail, kind, ik_field, pos, off) in enumerate(raw):
        f = f"bones[{i}]"
        if kind > 9:
            raise _bad(path, f + ".type", f"unknown bone type {kind} (0..9)", off + 24)
        parents.append(ref(parent, f + ".parent", off + 20))
        flags = BoneFlag.ROTATABLE | BoneFlag.VISIBLE | BoneFlag.OPERABLE
        tail_index, append, ratio, axis = -1, -1, 0.0, None
        if kind != 9 and tail not in (0, _NONE16):      # type 9 keeps its append source in the tail field
            tail_index = ref(tail, f + ".tail", off + 22)
            flags |= BoneFlag.TAIL_IS_BONE
        if kind in (1, 2) or i in ik_of:
            flags |= BoneFlag.TRANSLATABLE
        if kind in (6, 7, 9):
            flags &= ~BoneFlag.VISIBLE
        if kind == 5:
            append, ratio = ref(ik_field, f + ".ik_parent", off + 25, False), 1.0
        elif kind == 9:
            append = ref(tail, f + ".tail", off + 22, False)
            ratio = (ik_field - 0x10000 if ik_field >= 0x8000 else ik_field) / 100.0   # signed percentage
        if append >= 0:
            flags |= BoneFlag.APPEND_ROTATE
        if kind == 8 and tail_index >= 0:
            d = np.asarray(raw[tail_index][5], np.float64) - pos
            if np.linalg.norm(d) > 0:
                axis = (d / np.linalg.norm(d)).astype(np.float32)
                flags |= BoneFlag.FIXED_AXIS
        ik = ik_of.get(i, [None])[0]
        if ik is not None:
            flags |= BoneFlag.IK
        own.append(1 if kind == 2 or ik is not None else 2 if kind == 5 else 0)
        bones.append(Bone(name=name, name_en=names_en[i] if names_en else "", position=_vec(pos),
                          parent=parents[-1], flags=int(flags), tail_index=tail_index, append_parent=append,
                          append_ratio=ratio, fixed_axis=axis, ik=ik))
    layers = _bone_layers(parents, own, path, [b[6] for b in raw])
    bones = [dataclasses.replace(b, layer=layers[i]) for i, b in enumerate(bones)]
    for i, extra in ik_of.items():              # MMD solves every IK entry; PMX allows one per bone
        for ik in extra[1:]:
            b = bones[i]
            bones.append(Bone(name=b.name + "+", name_en=b.name_en, position=b.position.copy(), parent=i,
                              layer=b.layer, ik=ik,
                              flags=(b.flags | BoneFlag.IK) & ~int(BoneFlag.VISIBLE | BoneFlag.TAIL_IS_BONE)))
    return bones


def parse_pmd(data: bytes, path: str | os.PathLike | None = None, *, strict: bool = False) -> Model:
    """Decode a whole PMD file into a :class:`Model` (format 'pmd', encoding 'cp932').

    Raises FormatError (file, byte offset, field) for anything malformed, including out-of-range
    references. Bytes after the last section warn, or raise with ``strict`` (so ``strict=True``
    succeeding proves the file was consumed to its last byte).
    """
    r = BinaryReader(data, path)
    magic = r.take(3, "header.magic")
    if magic != b"Pmd":
        raise r.fail("header.magic", f"expected b'Pmd', got {magic!r}", 0)
    version = r.f32("header.version")
    name, comment = _text(r, 20, "header.name"), _text(r, 256, "header.comment")

    nv = r.count("vertices", _VERTEX.itemsize, signed=False)
    v_off = r.pos
    vert = r.array(_VERTEX, nv, "vertices")
    n_index = r.count("faces", 2, signed=False)
    if n_index % 3:
        raise r.fail("faces.count", f"index count {n_index} is not a multiple of 3", r.pos - 4)
    f_off = r.pos
    faces = r.array("<u2", n_index, "faces").astype(np.int32).reshape(-1, 3)
    mat_off = r.pos
    raw_mats = _read_materials(r)
    raw_bones = []
    for i in range(r.count("bones", 39, width=2)):
        off = r.pos
        bname = _text(r, 20, f"bones[{i}].name")
        *head, x, y, z = r.unpack(_BONE, f"bones[{i}]")
        raw_bones.append((bname, *head, np.array([x, y, z], np.float32), off))
    iks = []
    for i in range(r.count("iks", _IK.size, width=2)):
        off = r.pos
        bone, target, n_links, iters, weight = r.unpack(_IK, f"iks[{i}]")
        iks.append((bone, target, iters, weight, r.array("<u2", n_links, f"iks[{i}].links").tolist(), off))
    skins = _read_morphs(r)
    morph_list_off = r.pos + 1
    morph_list = r.array("<u2", r.count("morph_display", 2, width=1), "morph_display").astype(np.int64)
    frame_names = [_text(r, 50, f"bone_frames[{i}].name") for i in range(r.count("bone_frames", 50, width=1))]
    bone_list_off = r.pos + 4
    bone_list = r.array([("bone", "<u2"), ("frame", "u1")], r.count("bone_display", 3, signed=False), "bone_display")

    # Optional extensions: each may be missing entirely (the file simply ends).
    name_en = comment_en = ""
    bones_en: list[str] = []
    skins_en: list[str] = []
    frames_en: list[str] = []
    if r.remaining:
        flag = r.u8("english.flag")
        if flag > 1:
            raise r.fail("english.flag", f"expected 0 or 1, got {flag}", r.pos - 1)
        if flag:
            name_en, comment_en = _text(r, 20, "english.name"), _text(r, 256, "english.comment")
            bones_en = [_text(r, 20, f"english.bones[{i}]") for i in range(len(raw_bones))]
            skins_en = [_text(r, 20, f"english.morphs[{i}]") for i in range(max(len(skins) - 1, 0))]
            frames_en = [_text(r, 50, f"english.bone_frames[{i}]") for i in range(len(frame_names))]
    toons = _DEFAULT_TOONS
    if r.remaining:
        toons = tuple(_text(r, 100, f"toon_textures[{i}]") for i in range(10))
    raw_rigid, raw_joints = [], []
    if r.remaining:
        for i in range(r.count("rigid_bodies", 83, signed=False)):
            off = r.pos
            raw_rigid.append((_text(r, 20, f"rigid_bodies[{i}].name"), r.unpack(_RIGID, f"rigid_bodies[{i}]"), off))
        for i in range(r.count("joints", 124, signed=False)):
            off = r.pos
            raw_joints.append((_text(r, 20, f"joints[{i}].name"), r.unpack(_JOINT, f"joints[{i}]"), off))
    if r.remaining:
        msg = f"{r.remaining} unexpected bytes after the last section"
        if strict:
            raise r.fail("end", msg)
        warnings.warn(f"{r.path or '<bytes>'}: {msg}", InputWarning, stacklevel=2)
    p = r.path

    # ---- vertices: validate, then PMX-style weights (see module docstring)
    nb = len(raw_bones)
    w = vert["weight"].astype(np.int32)
    if nv and w.max() > 100:
        i = _first_bad(w > 100)
        raise _bad(p, f"vertices[{i}].weight", f"weight {w[i]} out of range (0..100)", v_off + 38 * i + 36)
    b0, b1 = vert["bones"][:, 0].astype(np.int32), vert["bones"][:, 1].astype(np.int32)
    only0, only1 = (b0 == b1) | (w == 100), (w == 0) & (b0 != b1)
    used_bad = (b0 >= nb) & ~only1 | (b1 >= nb) & ~only0
    if used_bad.any():
        i = _first_bad(used_bad)
        raise _bad(p, f"vertices[{i}].bones", f"bone indices {[int(b0[i]), int(b1[i])]} out of range (0..{nb - 1})",
                   v_off + 38 * i + 32)
    single = only0 | only1
    bone_indices = np.full((nv, 4), -1, np.int32)
    bone_indices[:, 0] = np.where(only1, b1, b0)
    bone_indices[:, 1] = np.where(single, -1, b1)
    bone_weights = np.zeros((nv, 4), np.float32)
    bone_weights[:, 0] = np.where(single, 1.0, w / 100.0)
    bone_weights[:, 1] = np.where(single, 0.0, 1.0 - w / 100.0)
    if faces.size and faces.max() >= nv:
        i = _first_bad(faces.reshape(-1) >= nv)
        raise _bad(p, f"faces[{i // 3}]", f"vertex index {int(faces.flat[i])} out of range (0..{nv - 1})",
                   f_off + 2 * i)

    # ---- materials
    textures: dict[str, int] = {}
    materials = tuple(_convert_material(i, m, toons, textures, p) for i, m in enumerate(raw_mats))
    total = sum(m.face_count for m in materials)
    if total != len(faces):
        raise _bad(p, "materials.face_vertex_count", f"materials cover {total} triangles, the file has {len(faces)}",
                   mat_off)

    bones = _convert_bones(raw_bones, iks, bones_en, p)

    # ---- morphs: base-relative PMD skins -> PMX vertex morphs on mesh vertices
    morphs = []
    base_idx = np.zeros(0, np.int64)
    extra_base = 0
    for i, (mname, kind, items, off) in enumerate(skins):
        f = f"morphs[{i}]"
        if (i == 0 and kind != 0) or kind > 4:
            raise _bad(p, f + ".type", f"type {kind}: the first morph must be the base (0), the others 1..4", off - 1)
        if i > 0 and kind == 0:
            # A second "base" skin: some accessory tools write one; MikuMikuDance loads it as an ordinary
            # base-relative morph on its hidden panel. So do we (panel 0), with one warning per file.
            extra_base += 1
        idx = items["index"].astype(np.int64)
        limit = nv if i == 0 else len(base_idx)
        if idx.size and idx.max() >= limit:
            j = _first_bad(idx >= limit)
            raise _bad(p, f"{f}.vertices[{j}].index", f"index {idx[j]} out of range (0..{limit - 1})", off + 16 * j)
        if i == 0:
            base_idx = idx
            continue
        offsets = np.zeros(len(items), MORPH_DTYPES[MorphKind.VERTEX])
        offsets["index"], offsets["offset"] = base_idx[idx], items["offset"]
        morphs.append(Morph(name=mname, name_en=skins_en[i - 1] if skins_en else "", panel=kind,
                            kind=MorphKind.VERTEX, offsets=offsets))

    # ---- display frames: PMX's two special frames, then PMD's bone frames
    if morph_list.size and (morph_list.min() < 1 or morph_list.max() >= len(skins)):
        j = _first_bad((morph_list < 1) | (morph_list >= len(skins)))
        raise _bad(p, f"morph_display[{j}]", f"morph index {morph_list[j]} out of range (1..{len(skins) - 1})",
                   morph_list_off + 2 * j)
    frames = [DisplayFrame("Root", "Root", True, ((False, 0),) if nb else ()),
              DisplayFrame("表情", "Exp", True, tuple((True, int(k) - 1) for k in morph_list))]
    members: list[list] = [[] for _ in frame_names]
    for j, (bone, frame) in enumerate(bone_list.tolist()):
        if bone >= nb or not 1 <= frame <= len(frame_names):    # frame numbers are 1-based
            raise _bad(p, f"bone_display[{j}]", f"bone {bone} / frame {frame} out of range "
                       f"(bones 0..{nb - 1}, frames 1..{len(frame_names)})", bone_list_off + 3 * j)
        members[frame - 1].append((False, bone))
    for j, fname in enumerate(frame_names):    # PMD frame names end in a newline
        frames.append(DisplayFrame(fname.rstrip("\r\n"), frames_en[j].rstrip("\r\n") if frames_en else "",
                                   False, tuple(members[j])))

    # ---- physics: PMD rigid positions are relative to the bone (bone 0 when none)
    rigid = []
    for i, (rname, v, off) in enumerate(raw_rigid):
        bone, group, mask, shape = v[0:4]
        if bone != _NONE16 and bone >= nb:
            raise _bad(p, f"rigid_bodies[{i}].bone", f"bone index {bone} out of range (0..{nb - 1}, or 65535)",
                       off + 20)
        if shape > 2 or v[18] > 2:
            raise _bad(p, f"rigid_bodies[{i}].shape/mode", f"shape {shape} / mode {v[18]} not in 0..2", off + 25)
        anchor = -1 if bone == _NONE16 else bone
        origin = raw_bones[max(anchor, 0)][5] if nb else np.zeros(3, np.float32)
        rigid.append(RigidBody(rname, bone=anchor, group=group, no_collision_mask=mask, shape=shape,
                               size=_vec(v[4:7]), position=_vec(v[7:10]) + origin, rotation=_vec(v[10:13]),
                               mass=v[13], linear_damping=v[14], angular_damping=v[15], restitution=v[16],
                               friction=v[17], mode=v[18]))
    joints = []
    for i, (jname, v, off) in enumerate(raw_joints):
        for k, side in enumerate("ab"):
            if not 0 <= v[k] < len(rigid):
                raise _bad(p, f"joints[{i}].rigid_{side}",
                           f"rigid body index {v[k]} out of range (0..{len(rigid) - 1})", off + 20 + 4 * k)
        vs = [_vec(v[k:k + 3]) for k in range(2, 26, 3)]
        joints.append(Joint(jname, rigid_a=v[0], rigid_b=v[1], position=vs[0], rotation=vs[1], linear_lower=vs[2],
                            linear_upper=vs[3], angular_lower=vs[4], angular_upper=vs[5], spring_linear=vs[6],
                            spring_angular=vs[7]))

    model = Model(
        format="pmd", version=float(version), path=os.fspath(path) if path is not None else None, encoding="cp932",
        name=name, name_en=name_en, comment=comment, comment_en=comment_en,
        positions=np.ascontiguousarray(vert["pos"], np.float32),
        normals=np.ascontiguousarray(vert["normal"], np.float32),
        uvs=np.ascontiguousarray(vert["uv"], np.float32), additional_uvs=np.zeros((nv, 0, 4), np.float32),
        weight_types=np.where(single, WeightType.BDEF1, WeightType.BDEF2).astype(np.uint8),
        bone_indices=bone_indices, bone_weights=bone_weights, sdef=np.zeros((nv, 3, 3), np.float32),
        edge_scale=np.where(vert["no_edge"] != 0, 0.0, 1.0).astype(np.float32), faces=faces,
        textures=tuple(textures), materials=materials, bones=tuple(bones), morphs=tuple(morphs),
        display_frames=tuple(frames), rigid_bodies=tuple(rigid), joints=tuple(joints), toon_textures=toons)
    return read_repaired(model, Counter(extra_base_morph=extra_base))


def read_pmd(path: str | os.PathLike, *, strict: bool = False) -> Model:
    """Read a .pmd file; see :func:`parse_pmd`."""
    return parse_pmd(read_file_bytes(path), path, strict=strict)
