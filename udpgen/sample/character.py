"""The project's own sample character, 見本ちゃん (Sample-chan): a procedural, deterministic MMD model
(.pmx + PNG textures) and a short motion (.vmd), free of third-party rights (CC0).

Run ``python -m udpgen.sample.character --out assets/sample`` to (re)create::

    sample.pmx        ~5k vertices, 36 bones (MMD standard names, leg IK, an append bone), 7 materials
    tex/*.png         4 small textures (skin, face, cloth, hair)
    wave.vmd          frames 0-84 at 30 fps: she waves her right hand and steps forward and back

Every run writes byte-identical files: no randomness, no timestamps, float32 arrays written as is, and
PNGs encoded here (:func:`png_bytes`: unfiltered rows, zlib level 9) rather than by an image library whose
encoder settings could change between versions. Geometry lives in :mod:`udpgen.sample.mesh`; this module
does the skeleton, materials, textures, morphs, motion and file output.

Conventions (MMD native frame: left-handed, +Y up, facing -Z, her left at +X; MMD units, 1 = 8 cm), checked
against Gene_light.pmx:

* rest pose: A-pose, upper arms :data:`ARM_DROOP_DEG` = 37 degrees below horizontal;
* knees bend by a *negative* rotation about X (the lower leg swings to +Z, behind her): knee IK limits
  lower = (-180, 0, 0), upper = (-0.5, 0, 0) degrees, MMD's standard values (Gene: -165 .. +10);
* leg IK: loop 40, unit angle 2.0 rad; toe IK: loop 3, unit angle 4.0 rad (PMD-standard 0.5 / 1.0 x 4;
  Gene uses 2.007 / 4.014); IK bones are children of 全ての親 at layer 0 after the legs (Gene: layer 1
  under 足IK親);
* faces: (b - a) x (c - a) points along the outward normal, as in Gene (MMD's clockwise front faces);
* bone flags follow Gene: rotatable+visible+operable (+tail bone), translatable for 全ての親/センター/
  グルーブ/IK, invisible tip bone (左つま先) = tail-bone+rotatable+operable.
"""
from __future__ import annotations

import argparse
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from udpgen.io.atomic import write_bytes_atomic
from udpgen.mmd.model import (IK, MORPH_DTYPES, Bone, BoneFlag, BoneKeys, DisplayFrame, IKKey, IKLink, Material,
                              MaterialFlag, Model, Morph, MorphKeys, MorphKind, Motion, WeightType)
from udpgen.mmd.pmx_writer import write_pmx
from udpgen.mmd.vmd import write_vmd
from udpgen.sample.mesh import (ARM_DROOP_DEG, EYE_RADII, EYE_X, EYE_Y, FOREARM, HAND, MOUTH_RADII, MOUTH_Y,
                                UPPER_ARM, arm_direction, body_surfaces, face_point, joint_positions)

__all__ = ["ARM_DROOP_DEG", "MODEL_NAME", "build_model", "build_motion", "write_sample", "main"]

MODEL_NAME, MODEL_NAME_EN = "見本ちゃん", "Sample-chan"
LICENSE = "CC0: made procedurally by udpgen.sample.character"
FPS = 30
KNEE_LOWER = np.array([-math.pi, 0, 0], np.float32)                 # radians, MMD standard knee limits
KNEE_UPPER = np.array([math.radians(-0.5), 0, 0], np.float32)
LEG_IK_LOOPS, LEG_IK_UNIT = 40, 2.0
TOE_IK_LOOPS, TOE_IK_UNIT = 3, 4.0

_ROT, _MOVE, _VIS, _OP = BoneFlag.ROTATABLE, BoneFlag.TRANSLATABLE, BoneFlag.VISIBLE, BoneFlag.OPERABLE
_TAIL = BoneFlag.TAIL_IS_BONE
_STD = _ROT | _VIS | _OP                                   # 26, e.g. Gene's 上半身, 左腕, 左ひじ
_MOVABLE = _ROT | _MOVE | _VIS | _OP                       # 30, 全ての親 / センター / グルーブ
_TIP = _TAIL | _ROT | _OP                                  # 19, Gene's invisible end bones (左足先)
_IKF = _TAIL | _ROT | _MOVE | _VIS | _OP | BoneFlag.IK     # 63, Gene's 左足ＩＫ


# ---------------------------------------------------------------------------------------------------
# Skeleton
# ---------------------------------------------------------------------------------------------------
def _bone_specs() -> list[tuple]:
    """(name, name_en, parent, position (3,), tail, flags, extra) in file order, parents first. ``tail`` is
    a bone name (TAIL_IS_BONE), None (TAIL_IS_BONE, no tail) or an offset (3,)."""
    J = joint_positions()
    up = lambda h: np.array([0.0, h, 0.0])                  # noqa: E731
    specs = [("全ての親", "master", None, J["全ての親"], up(1.5), _MOVABLE, {}),
             ("センター", "center", "全ての親", J["センター"], up(1.5), _MOVABLE, {}),
             ("グルーブ", "groove", "センター", J["グルーブ"], up(1.4), _MOVABLE, {}),
             ("腰", "waist", "グルーブ", J["腰"], up(-1.2), _STD, {}),
             ("上半身", "upper body", "腰", J["上半身"], "上半身2", _STD, {}),
             ("上半身2", "upper body2", "上半身", J["上半身2"], "首", _STD, {}),
             ("首", "neck", "上半身2", J["首"], "頭", _STD, {}),
             ("頭", "head", "首", J["頭"], up(2.2), _STD, {}),
             ("両目", "eyes", "頭", J["両目"], np.array([0, 0, -0.8]), _STD, {})]
    for lr, en in (("左", "L"), ("右", "R")):
        # 左目/右目 copy 両目's rotation (append ratio 1): turning 両目 turns both eyes.
        specs.append((lr + "目", f"eye_{en}", "頭", J[lr + "目"], np.array([0, 0, -0.6]),
                      _STD | BoneFlag.APPEND_ROTATE, {"append": ("両目", 1.0)}))
    for lr, en in (("左", "L"), ("右", "R")):
        d = arm_direction(1.0 if lr == "左" else -1.0)
        specs += [(lr + "肩", f"shoulder_{en}", "上半身2", J[lr + "肩"], lr + "腕", _STD, {}),
                  (lr + "腕", f"arm_{en}", lr + "肩", J[lr + "腕"], UPPER_ARM * d, _STD, {}),
                  (lr + "腕捩", f"arm twist_{en}", lr + "腕", J[lr + "腕捩"], lr + "ひじ",
                   _STD | BoneFlag.FIXED_AXIS, {"axis": d}),
                  (lr + "ひじ", f"elbow_{en}", lr + "腕捩", J[lr + "ひじ"], FOREARM * d, _STD, {}),
                  (lr + "手捩", f"wrist twist_{en}", lr + "ひじ", J[lr + "手捩"], lr + "手首",
                   _STD | BoneFlag.FIXED_AXIS, {"axis": d}),
                  (lr + "手首", f"wrist_{en}", lr + "手捩", J[lr + "手首"], HAND * d, _STD, {})]
    specs.append(("下半身", "lower body", "腰", J["下半身"], up(-1.3), _STD, {}))
    for lr, en in (("左", "L"), ("右", "R")):
        specs += [(lr + "足", f"leg_{en}", "下半身", J[lr + "足"], lr + "ひざ", _STD, {}),
                  (lr + "ひざ", f"knee_{en}", lr + "足", J[lr + "ひざ"], lr + "足首", _STD, {}),
                  (lr + "足首", f"ankle_{en}", lr + "ひざ", J[lr + "足首"], lr + "つま先", _STD, {}),
                  (lr + "つま先", f"toe_{en}", lr + "足首", J[lr + "つま先"], None, _TIP, {})]
    for lr, en in (("左", "L"), ("右", "R")):
        specs += [(lr + "足ＩＫ", f"leg IK_{en}", "全ての親", J[lr + "足首"], None, _IKF,
                   {"ik": (lr + "足首", LEG_IK_LOOPS, LEG_IK_UNIT, [(lr + "ひざ", True), (lr + "足", False)])}),
                  (lr + "つま先ＩＫ", f"toe IK_{en}", lr + "足ＩＫ", J[lr + "つま先"], None, _IKF,
                   {"ik": (lr + "つま先", TOE_IK_LOOPS, TOE_IK_UNIT, [(lr + "足首", False)])})]
    return specs


def build_bones() -> tuple[Bone, ...]:
    """The skeleton (36 bones), in an order where parents, append parents and IK links precede use."""
    specs = _bone_specs()
    index = {s[0]: i for i, s in enumerate(specs)}
    f32 = lambda v: np.asarray(v, np.float32)               # noqa: E731
    bones = []
    for name, en, parent, pos, tail, flags, extra in specs:
        kw = {}
        if isinstance(tail, str) or tail is None:
            flags |= _TAIL
            kw["tail_index"] = index[tail] if tail else -1
        else:
            kw["tail_offset"] = f32(tail)
        if "append" in extra:
            kw["append_parent"], kw["append_ratio"] = index[extra["append"][0]], extra["append"][1]
        if "axis" in extra:
            kw["fixed_axis"] = f32(extra["axis"])
        if "ik" in extra:
            target, loops, unit, links = extra["ik"]
            kw["ik"] = IK(index[target], loops, unit, tuple(
                IKLink(index[b], KNEE_LOWER, KNEE_UPPER) if limited else IKLink(index[b]) for b, limited in links))
        bones.append(Bone(name, en, f32(pos), index[parent] if parent else -1, 0, int(flags), **kw))
    return tuple(bones)


# ---------------------------------------------------------------------------------------------------
# Textures (RGBA uint8, painted with numpy) and materials
# ---------------------------------------------------------------------------------------------------
def _canvas(h: int, w: int, rgb) -> np.ndarray:
    img = np.empty((h, w, 4), np.uint8)
    img[...] = (*rgb, 255)
    return img


def build_textures() -> dict[str, np.ndarray]:
    """Textures by relative path, HxWx4 uint8 RGBA: flat anime colours with a few patterns."""
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    skin = _canvas(64, 64, (252, 226, 210))

    hair = _canvas(64, 64, (236, 130, 165))                 # pink, darker strands, a lighter "angel ring"
    strands = np.sin(2 * np.pi * 6 * xx / 64) > 0.55
    hair[strands, :3] = (208, 100, 140)
    hair[(yy > 14) & (yy < 19), :3] = (250, 190, 210)

    face = _canvas(64, 128, (255, 255, 255))                # left: eye, right: mouth
    ex, ey = (xx - 32) / 17, (yy - 35) / 21
    iris = ex ** 2 + ey ** 2 < 1
    shade = np.clip((yy - 14) / 42, 0, 1)[..., None]
    face[:, :64, :3][iris] = ((1 - shade) * np.array([80, 50, 150]) + shade * np.array([175, 140, 235]))[iris]
    face[:, :64, :3][((xx - 32) / 7) ** 2 + ((yy - 35) / 10) ** 2 < 1] = (40, 25, 80)        # pupil
    face[:, :64, :3][(xx - 25) ** 2 + (yy - 26) ** 2 < 25] = (255, 255, 255)                # highlight
    face[:, :64, :3][yy < 9] = (35, 25, 30)                                                   # upper lash
    face[:, 64:, :3] = (150, 45, 65)
    face[:, 64:, :3][yy > 40] = (230, 120, 135)                                               # tongue

    cloth = _canvas(128, 128, (246, 246, 250))              # atlas, see sample_mesh.CLOTH_*
    y2, x2 = np.mgrid[0:128, 0:128] + 0.5
    navy, red = (40, 50, 110), (205, 40, 60)
    cloth[y2 < 8, :3] = navy                                                                  # sailor collar
    cloth[(y2 > 8) & (y2 < 22) & (np.abs(x2 - 64) < 5), :3] = red                             # ribbon (front)
    cloth[(y2 > 58) & (y2 < 64), :3] = navy                                                   # sleeve cuff
    cloth[(y2 >= 64) & (y2 < 96), :3] = navy                                                  # skirt
    cloth[(y2 > 88) & (y2 < 91), :3] = (246, 246, 250)                                        # skirt stripe
    cloth[y2 >= 96, :3] = (95, 58, 45)                                                        # shoes
    cloth[(y2 > 97) & (y2 < 100), :3] = (150, 100, 80)                                        # boot rim
    return {"tex/skin.png": skin, "tex/face.png": face, "tex/cloth.png": cloth, "tex/hair.png": hair}


# (key, name, name_en, texture, double sided, outline, shared toon index); colours live in the textures,
# so diffuse is white (texture x diffuse reproduces them) and ambient a mid grey, as in Gene.
MATERIALS = [("skin", "肌", "skin", "tex/skin.png", False, True, 1),
             ("eye", "目", "eyes", "tex/face.png", False, False, 1),
             ("mouth", "口", "mouth", "tex/face.png", False, False, 1),
             ("clothes", "服", "clothes", "tex/cloth.png", False, True, 0),
             ("skirt", "スカート", "skirt", "tex/cloth.png", True, True, 0),
             ("shoes", "靴", "shoes", "tex/cloth.png", False, True, 0),
             ("hair", "髪", "hair", "tex/hair.png", True, True, 1)]


def _material(name, en, tex, double, edge, toon, face_count, textures) -> Material:
    flags = MaterialFlag.GROUND_SHADOW | MaterialFlag.CAST_SHADOW | MaterialFlag.RECEIVE_SHADOW
    flags |= (MaterialFlag.EDGE if edge else 0) | (MaterialFlag.DOUBLE_SIDED if double else 0)
    return Material(name, en, diffuse=np.ones(4, np.float32), specular=np.zeros(3, np.float32),
                    specular_power=5.0, ambient=np.full(3, 0.6, np.float32), flags=int(flags),
                    edge_color=np.array([0.25, 0.15, 0.2, 1.0], np.float32), edge_size=0.5 if edge else 0.0,
                    texture_index=textures.index(tex), toon_shared=True, toon_index=toon, face_count=face_count)


# ---------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------
def pack_weights(bones: np.ndarray, weights: np.ndarray):
    """Per-vertex (n, 4) bone indices and weights -> PMX weight_types (n,) uint8, bone_indices (n, 4) int32,
    bone_weights (n, 4) float32: BDEF1 for one bone, BDEF2 (w, 1 - w) for two, BDEF4 for more (a third
    bone's gap padded with the first bone at weight 0, never -1, which some loaders reject)."""
    order = np.argsort(-weights, axis=1, kind="stable")
    b, w = np.take_along_axis(bones, order, 1), np.take_along_axis(weights, order, 1)
    keep = w > 1e-4
    b, w = np.where(keep, b, -1), np.where(keep, w, 0.0)
    w /= w.sum(1, keepdims=True)
    count = keep.sum(1)
    types = np.select([count == 1, count == 2], [WeightType.BDEF1, WeightType.BDEF2], WeightType.BDEF4)
    four = count > 2
    b[four] = np.where(b[four] < 0, b[four, :1], b[four])
    w[count == 1] = (1, 0, 0, 0)
    w[count == 2, 1] = 1 - w[count == 2, 0]
    return types.astype(np.uint8), b.astype(np.int32), w.astype(np.float32)


def _vertex_morph(name, en, panel, start, surf, target_xy) -> Morph:
    """Vertex morph moving ``surf``'s vertices to face_point(target_xy) (keeps them on the face)."""
    new, _ = face_point(*target_xy)
    off = np.zeros(len(new), MORPH_DTYPES[MorphKind.VERTEX])
    off["index"] = start + np.arange(len(new))
    off["offset"] = new - surf.positions
    return Morph(name, en, panel, MorphKind.VERTEX, off)


def _build_morphs(parts: dict, bone_index: dict[str, int]) -> tuple[Morph, ...]:
    def closed(surf, cx):          # eye shut into a downward arc just below its centre
        lx, ly = surf.local.T
        return cx + EYE_RADII[0] * lx, EYE_Y + EYE_RADII[1] * (-0.3 + 0.06 * ly - 0.2 * (1 - lx ** 2))

    (sl, eye_l), (sr, eye_r), (sm, mouth) = parts["eye_L"], parts["eye_R"], parts["mouth"]
    blink_l = _vertex_morph("ウィンク", "wink", 2, sl, eye_l, closed(eye_l, EYE_X))
    blink_r = _vertex_morph("ウィンク右", "wink_R", 2, sr, eye_r, closed(eye_r, -EYE_X))
    both = Morph("まばたき", "blink", 2, MorphKind.VERTEX, np.concatenate([blink_l.offsets, blink_r.offsets]))
    lx, ly = mouth.local.T
    a = _vertex_morph("あ", "a", 3, sm, mouth, (0.8 * MOUTH_RADII[0] * lx, MOUTH_Y - 0.1 + 0.2 * ly))
    bow = np.zeros(2, MORPH_DTYPES[MorphKind.BONE])
    bow["index"] = bone_index["上半身"], bone_index["頭"]
    for i, deg in enumerate((-15.0, -10.0)):            # negative about X tips the top forward (-Z)
        bow["rotation"][i] = _quat((1, 0, 0), deg)
    morphs = [both, blink_l, blink_r, a, Morph("おじぎ", "bow", 4, MorphKind.BONE, bow)]
    group = np.zeros(2, MORPH_DTYPES[MorphKind.GROUP])
    group["index"], group["weight"] = (morphs.index(blink_l), morphs.index(a)), (1.0, 0.5)
    return tuple(morphs) + (Morph("ウィンクあ", "wink a", 4, MorphKind.GROUP, group),)


def build_model() -> tuple[Model, dict[str, np.ndarray]]:
    """Sample-chan as a :class:`Model` (path None) and her textures {relative path: HxWx4 RGBA uint8}."""
    bones = build_bones()
    bone_index = {b.name: i for i, b in enumerate(bones)}
    surfaces = body_surfaces(bone_index)
    textures = build_textures()
    tex_names = tuple(textures)
    pos, nor, uv, fac, bidx, bw, materials, parts, n = [], [], [], [], [], [], [], {}, 0
    for key, name, en, tex, double, edge, toon in MATERIALS:
        count = 0
        for s in (s for s in surfaces if s.material == key):
            parts[s.name] = (n, s)
            pos.append(s.positions), nor.append(s.normals), uv.append(s.uvs)
            bidx.append(s.bones), bw.append(s.weights), fac.append(s.faces + n)
            n += len(s.positions)
            count += len(s.faces)
        materials.append(_material(name, en, tex, double, edge, toon, count, tex_names))
    types, bone_ids, weights = pack_weights(np.vstack(bidx), np.vstack(bw))
    morphs = _build_morphs(parts, bone_index)
    b = bone_index
    frames = (DisplayFrame("Root", "Root", True, ((False, 0),)),
              DisplayFrame("表情", "Exp", True, tuple((True, i) for i in range(len(morphs)))),
              DisplayFrame("センター", "center", False, ((False, b["センター"]), (False, b["グルーブ"]))),
              DisplayFrame("ＩＫ", "IK", False, tuple((False, b[k]) for k in
                                                     ("左足ＩＫ", "右足ＩＫ", "左つま先ＩＫ", "右つま先ＩＫ"))),
              DisplayFrame("体(上)", "upper body", False, tuple((False, b[k]) for k in
                                                              ("上半身", "上半身2", "首", "頭", "両目", "左目", "右目"))),
              DisplayFrame("腕", "arms", False, tuple((False, b[lr + k]) for lr in "左右"
                                                     for k in ("肩", "腕", "腕捩", "ひじ", "手捩", "手首"))),
              DisplayFrame("体(下)", "lower body", False, ((False, b["腰"]), (False, b["下半身"]))),
              DisplayFrame("足", "legs", False, tuple((False, b[lr + k]) for lr in "左右"
                                                     for k in ("足", "ひざ", "足首"))))
    positions = np.vstack(pos).astype(np.float32)
    model = Model(
        format="pmx", version=2.0, encoding="utf-16-le", name=MODEL_NAME, name_en=MODEL_NAME_EN,
        comment=f"{MODEL_NAME}: udpgen の手続き的サンプルキャラクター\r\n{LICENSE}",
        comment_en=f"{MODEL_NAME_EN}: the procedural sample character of udpgen\r\n{LICENSE}",
        positions=positions, normals=np.vstack(nor).astype(np.float32), uvs=np.vstack(uv).astype(np.float32),
        additional_uvs=np.zeros((n, 0, 4), np.float32), weight_types=types, bone_indices=bone_ids,
        bone_weights=weights, sdef=np.zeros((n, 3, 3), np.float32), edge_scale=np.ones(n, np.float32),
        faces=np.vstack(fac).astype(np.int32), textures=tex_names, materials=tuple(materials), bones=bones,
        morphs=morphs, display_frames=frames)
    return model, textures


# ---------------------------------------------------------------------------------------------------
# Motion
# ---------------------------------------------------------------------------------------------------
def _quat(axis, deg: float) -> np.ndarray:
    """(x, y, z, w) rotation by ``deg`` degrees about the unit ``axis`` (numeric right-hand rule on MMD's
    coordinates, as MMD and Gene's limits use: -X bends a knee backward)."""
    h = math.radians(deg) / 2
    return np.array([*(math.sin(h) * np.asarray(axis, np.float64)), math.cos(h)])


def vmd_interpolation(curves=((20, 20, 107, 107),) * 4) -> np.ndarray:
    """The 64 interpolation bytes of a bone key, laid out as MMD writes them.

    ``curves`` gives (x1, y1, x2, y2) in 0..127 for X, Y, Z and rotation; the default is MMD's linear curve.
    Row 0 (bytes 0-15) is x1 of X, Y, Z, R, then y1 x4, x2 x4, y2 x4, so curve k sits at bytes
    16k + {0, 4, 8, 12} of row k; rows 1-3 are row 0 shifted left by 1-3 bytes, zero filled; MMD stores
    0 in bytes 2 and 3 of row 0 (physics toggles). Matches Gene's motions byte for byte for linear keys.
    """
    c = np.asarray(curves, np.uint8)                        # (4 curves, 4 params)
    row = c.T.reshape(16)                                   # params major: x1 X Y Z R, y1 ..., x2 ..., y2 ...
    out = np.zeros(64, np.uint8)
    for k in range(4):
        out[16 * k:16 * k + 16 - k] = row[k:]
    out[2:4] = 0
    return out


def build_motion() -> Motion:
    """Frames 0-84 (2.8 s at 30 fps): the right arm rises and the forearm waves in her frontal plane while
    she steps her left foot 2 units forward and back (左足ＩＫ, with センター following halfway); a blink
    and an open mouth. Linear interpolation throughout; all keys in MMD's frame (rotations about +Z with
    negative angles raise her right arm, see :func:`_quat`)."""
    Rz = lambda deg: _quat((0, 0, 1), deg)                  # noqa: E731
    ident, zero = np.array([0, 0, 0, 1.0]), np.zeros(3)
    arm_up, elbow_up = Rz(-57), Rz(-70)                     # upper arm to 20 deg above horizontal, forearm vertical
    tracks = {
        "右腕": [(0, zero, ident), (12, zero, arm_up), (66, zero, arm_up), (84, zero, ident)],
        "右ひじ": [(0, zero, ident), (12, zero, elbow_up)] + [(20 + 8 * i, zero, Rz((-50, -90)[i % 2])) for i in range(6)]
                 + [(66, zero, elbow_up), (84, zero, ident)],
        "左足ＩＫ": [(0, zero, ident), (18, (0, 1.0, -1.0), ident), (30, (0, 0, -2.0), ident), (60, (0, 0, -2.0), ident),
                   (72, (0, 1.0, -1.0), ident), (84, zero, ident)],
        "センター": [(0, zero, ident), (30, (0, -0.3, -1.0), ident), (60, (0, -0.3, -1.0), ident), (84, zero, ident)],
        "頭": [(0, zero, ident), (30, zero, Rz(6)), (66, zero, Rz(6)), (84, zero, ident)],
    }
    names, idx, frame, position, rotation = [], [], [], [], []
    for j, (name, keys) in enumerate(tracks.items()):
        names.append(name.encode("cp932"))
        for f, p, q in keys:
            idx.append(j), frame.append(f), position.append(p), rotation.append(q)
    bones = BoneKeys(tuple(names), np.array(idx, np.int32), np.array(frame, np.uint32),
                     np.array(position, np.float32), np.array(rotation, np.float32),
                     np.tile(vmd_interpolation(), (len(frame), 1)))
    mkeys = [("まばたき", 40, 0.0), ("まばたき", 43, 1.0), ("まばたき", 46, 0.0),
             ("あ", 10, 0.0), ("あ", 18, 0.5), ("あ", 66, 0.5), ("あ", 76, 0.0)]
    mnames = tuple(dict.fromkeys(k[0].encode("cp932") for k in mkeys))
    morphs = MorphKeys(mnames, np.array([mnames.index(k[0].encode("cp932")) for k in mkeys], np.int32),
                       np.array([k[1] for k in mkeys], np.uint32), np.array([k[2] for k in mkeys], np.float32))
    ik = (IKKey(0, True, tuple((n.encode("cp932"), True) for n in ("左足ＩＫ", "左つま先ＩＫ", "右足ＩＫ", "右つま先ＩＫ"))),)
    return Motion(model_name=MODEL_NAME.encode("cp932"), version=2, bones=bones, morphs=morphs, ik=ik)


# ---------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------
def png_bytes(rgba: np.ndarray) -> bytes:
    """A minimal deterministic PNG of ``rgba`` (H, W, 4) uint8: 8-bit RGBA, filter 0 on every row, one IDAT
    chunk, no ancillary chunks (so no timestamp or gamma)."""
    h, w = rgba.shape[:2]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), np.ascontiguousarray(rgba, np.uint8).reshape(h, 4 * w)], 1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + chunk(b"IEND", b""))


def write_sample(out_dir: str | os.PathLike) -> list[Path]:
    """Write sample.pmx, tex/*.png and wave.vmd under ``out_dir``; return the paths written, in that order."""
    out = Path(out_dir)
    model, textures = build_model()
    written = [out / "sample.pmx"]
    (out / "tex").mkdir(parents=True, exist_ok=True)
    write_pmx(model, written[0])
    for rel, rgba in textures.items():
        path = out / rel
        write_bytes_atomic(path, png_bytes(rgba))
        written.append(path)
    written.append(out / "wave.vmd")
    write_vmd(build_motion(), written[-1])
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m udpgen.sample.character", description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="assets/sample", help="output folder (default: assets/sample)")
    args = ap.parse_args(argv)
    for p in write_sample(args.out):
        print(f"{p}  {p.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
