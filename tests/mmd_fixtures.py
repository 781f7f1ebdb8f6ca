"""Small synthetic MMD models built in code, covering every PMX feature the reader handles."""
from __future__ import annotations

import numpy as np

from udpgen.mmd.model import (IK, MORPH_DTYPES, Bone, BoneFlag, DisplayFrame, IKLink, Joint, Material, Model,
                              Morph, MorphKind, RigidBody)

F = np.float32


def morph(kind: MorphKind, n: int, upper: int, rng: np.random.Generator, name: str = "") -> Morph:
    off = np.zeros(n, MORPH_DTYPES[kind])
    off["index"] = rng.integers(0, upper, n)
    for f in MORPH_DTYPES[kind].names[1:]:
        off[f] = rng.random(off[f].shape) if off[f].dtype.kind == "f" else rng.integers(0, 2, off[f].shape)
    return Morph(name=name or f"{kind.name.lower()}モーフ", name_en=kind.name, panel=int(kind) % 5, kind=kind,
                 offsets=off)


def make_model(n_vertices: int = 300, n_bones: int = 12, additional_uvs: int = 2, version: float = 2.1,
               encoding: str = "utf-16-le", seed: int = 0) -> Model:
    """A model exercising every weight type, bone flag, morph kind and section.

    Bone 0 is a root; bones are chained; bone 5 is an IK bone with a limited link; bone 6 appends rotation
    and translation from bone 2 with ratio -0.5 (local); bone 7 has a fixed axis, bone 8 local axes, bone 9
    an external parent. Vertices cycle through BDEF1, BDEF2, BDEF4, SDEF (and QDEF in PMX 2.1).
    """
    rng = np.random.default_rng(seed)
    n = n_vertices
    types = np.arange(n) % (5 if version >= 2.1 else 4)
    k = np.array([1, 2, 4, 2, 4])[types]
    bi = np.full((n, 4), -1, np.int32)
    bw = np.zeros((n, 4), F)
    for i in range(n):
        bi[i, :k[i]] = rng.choice(n_bones, k[i], replace=False)
        if types[i] == 0:
            bw[i, 0] = 1
        elif k[i] == 2:
            w = F(rng.random())
            bw[i, :2] = (w, F(1) - w)
        else:
            bw[i] = rng.dirichlet(np.ones(4)).astype(F)
    sdef = np.zeros((n, 3, 3), F)
    sdef[types == 3] = rng.random(((types == 3).sum(), 3, 3)).astype(F)
    faces = np.stack([rng.choice(n, 3, replace=False) for _ in range(2 * n)]).astype(np.int32)   # no degenerates
    faces[-1] = [n - 1, n - 2, n - 3]       # the largest index appears (unsigned widths)
    textures = ("tex\\Body.PNG", "sph/light.sph", "toon\\my toon.bmp")
    materials = (
        Material(name="体", name_en="body", diffuse=np.array([1, .8, .7, 1], F), flags=0x1F, texture_index=0,
                 sphere_index=1, sphere_mode=1, toon_shared=True, toon_index=3, memo="メモ", face_count=n),
        Material(name="髪", name_en="hair", diffuse=np.array([.2, .2, .5, .9], F), flags=0x01, texture_index=-1,
                 sphere_index=-1, sphere_mode=0, toon_shared=False, toon_index=2, face_count=n - n // 4),
        Material(name="目", flags=0x10, edge_size=0.5, face_count=n // 4),
    )
    bones = []
    for b in range(n_bones):
        kw = dict(name=f"ボーン{b}", name_en=f"bone{b}", position=rng.random(3).astype(F), parent=b - 1,
                  layer=0, flags=int(BoneFlag.ROTATABLE | BoneFlag.VISIBLE | BoneFlag.OPERABLE))
        if b % 2:
            kw["flags"] |= BoneFlag.TAIL_IS_BONE
            kw["tail_index"] = (b + 1) % n_bones
        else:
            kw["tail_offset"] = rng.random(3).astype(F)
        if b == 5:
            kw["flags"] |= BoneFlag.IK | BoneFlag.TRANSLATABLE
            kw["parent"] = 0
            kw["ik"] = IK(target=4, loop_count=40, limit_angle=2.0, links=(
                IKLink(3, np.array([-3.1, 0, 0], F), np.array([-0.01, 0, 0], F)), IKLink(2)))
        if b == 6:
            kw["flags"] |= BoneFlag.APPEND_ROTATE | BoneFlag.APPEND_TRANSLATE | BoneFlag.LOCAL_APPEND
            kw.update(append_parent=2, append_ratio=-0.5, layer=1)
        if b == 7:
            kw["flags"] |= BoneFlag.FIXED_AXIS
            kw["fixed_axis"] = np.array([1, 0, 0], F)
        if b == 8:
            kw["flags"] |= BoneFlag.LOCAL_AXIS | BoneFlag.AFTER_PHYSICS
            kw.update(local_x=np.array([1, 0, 0], F), local_z=np.array([0, 0, 1], F))
        if b == 9:
            kw["flags"] |= BoneFlag.EXTERNAL_PARENT
            kw["external_key"] = 7
        bones.append(Bone(**kw))
    kinds = [MorphKind.VERTEX, MorphKind.UV, MorphKind.UV1, MorphKind.BONE, MorphKind.MATERIAL, MorphKind.GROUP]
    if version >= 2.1:
        kinds += [MorphKind.FLIP, MorphKind.IMPULSE]
    uppers = {MorphKind.BONE: n_bones, MorphKind.MATERIAL: 3, MorphKind.GROUP: 1, MorphKind.FLIP: 1,
              MorphKind.IMPULSE: 2}
    morphs = tuple(morph(kd, 5, uppers.get(kd, n), rng) for kd in kinds)
    frames = (DisplayFrame("Root", "Root", True, ((False, 0),)),
              DisplayFrame("表情", "Exp", True, ((True, 0), (True, 1))),
              DisplayFrame("体", "Body", False, ((False, 1), (False, 2))))
    rigid = (RigidBody(name="剛体0", bone=1, group=2, no_collision_mask=0xFFF0, shape=2, size=np.ones(3, F), mass=1),
             RigidBody(name="剛体1", bone=-1, mode=1))
    joints = (Joint(name="J0", rigid_a=0, rigid_b=1, spring_linear=np.ones(3, F)),)
    return Model(format="pmx", version=version, encoding=encoding, name="テスト", name_en="test", comment="コメント\r\n",
                 comment_en="comment", positions=rng.random((n, 3)).astype(F), normals=rng.random((n, 3)).astype(F),
                 uvs=rng.random((n, 2)).astype(F), additional_uvs=rng.random((n, additional_uvs, 4)).astype(F),
                 weight_types=types.astype(np.uint8), bone_indices=bi, bone_weights=bw, sdef=sdef,
                 edge_scale=rng.random(n).astype(F), faces=faces, textures=textures, materials=materials,
                 bones=tuple(bones), morphs=morphs, display_frames=frames, rigid_bodies=rigid, joints=joints)


def assert_same(a, b, where: str = "model") -> None:
    """Recursive equality of dataclasses, tuples and arrays (exact), naming the first difference."""
    import dataclasses

    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            if f.name == "path":
                continue
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert a is not None and b is not None, f"{where}: {a!r} vs {b!r}"
        assert np.asarray(a).shape == np.asarray(b).shape, f"{where}: shape {np.shape(a)} != {np.shape(b)}"
        assert np.array_equal(a, b), f"{where}: arrays differ"
    elif isinstance(a, float) or isinstance(b, float):
        assert np.float32(a) == np.float32(b), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def skeleton_only(model: Model) -> Model:
    """``model`` with its bones (and display frames) but no vertices, faces, materials or morphs: a
    skeleton file such as controller and camera-rig models are."""
    import dataclasses

    frames = tuple(dataclasses.replace(f, elements=tuple(e for e in f.elements if not e[0]))
                   for f in model.display_frames)
    return dataclasses.replace(model, positions=np.zeros((0, 3), F), normals=np.zeros((0, 3), F),
                               uvs=np.zeros((0, 2), F),
                               additional_uvs=np.zeros((0,) + model.additional_uvs.shape[1:], F),
                               weight_types=np.zeros(0, np.uint8), bone_indices=np.zeros((0, 4), np.int32),
                               bone_weights=np.zeros((0, 4), F), sdef=np.zeros((0, 3, 3), F),
                               edge_scale=np.zeros(0, F), faces=np.zeros((0, 3), np.int32), textures=(),
                               materials=(), morphs=(), display_frames=frames, rigid_bodies=(), joints=())
