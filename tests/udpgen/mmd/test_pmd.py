"""PMD reader: synthetic files packed with struct (every section and extension), then the real Gene.pmd."""
from __future__ import annotations

import math
import struct
import time

import numpy as np
import pytest

from udpgen.errors import FormatError
from udpgen.mmd.model import BoneFlag, MaterialFlag, MorphKind, WeightType
from udpgen.mmd.pmd import parse_pmd, read_pmd

from pmd_builder import build, full_spec, spec


# ------------------------------------------------------------------------------------------------
# Synthetic files
# ------------------------------------------------------------------------------------------------

def test_minimal_file_without_extensions():
    m = parse_pmd(build(spec()), "mini.pmd", strict=True)
    assert (m.format, m.version, m.encoding, m.path) == ("pmd", 1.0, "cp932", "mini.pmd")
    assert (m.name, m.comment, m.name_en) == ("テスト", "コメント", "")
    assert m.vertex_count == 4 and m.face_count == 2 and m.faces.tolist() == [[0, 1, 2], [1, 3, 2]]
    # weight 100 -> bone0 only, 0 -> bone1 only, equal bones -> BDEF1, else BDEF2 (w/100, 1 - w/100)
    assert m.weight_types.tolist() == [WeightType.BDEF1] * 3 + [WeightType.BDEF2]
    assert m.bone_indices.tolist() == [[0, -1, -1, -1], [1, -1, -1, -1], [1, -1, -1, -1], [0, 1, -1, -1]]
    np.testing.assert_allclose(m.bone_weights[:, :2], [[1, 0], [1, 0], [1, 0], [0.3, 0.7]], atol=1e-6)
    assert m.edge_scale.tolist() == [1, 0, 1, 1]              # PMD edge flag 1 = no edge
    assert m.additional_uvs.shape == (4, 0, 4) and m.sdef.shape == (4, 3, 3)
    mat = m.materials[0]
    assert mat.name == "材質1" and mat.face_count == 2 and mat.texture_index == -1 and mat.sphere_mode == 0
    assert mat.flags == MaterialFlag.EDGE | MaterialFlag.GROUND_SHADOW | MaterialFlag.CAST_SHADOW | \
        MaterialFlag.RECEIVE_SHADOW
    assert (mat.toon_shared, mat.toon_index) == (True, -1)
    assert m.toon_textures == tuple(f"toon{i:02d}.bmp" for i in range(1, 11))
    assert m.rigid_bodies == () and m.joints == () and m.morphs == () and m.textures == ()
    b = m.bones
    assert b[0].flags & BoneFlag.TRANSLATABLE and not b[1].flags & BoneFlag.TRANSLATABLE
    assert b[0].tail_index == 1 and b[0].flags & BoneFlag.TAIL_IS_BONE
    assert b[2].tail_index == -1 and not b[2].flags & (BoneFlag.TAIL_IS_BONE | BoneFlag.VISIBLE)  # tail 0 = none
    assert [(f.name, f.special, f.elements) for f in m.display_frames] == [
        ("Root", True, ((False, 0),)), ("表情", True, ()), ("センター", False, ((False, 0),))]


def test_english_flag_zero_then_toons_only():
    m = parse_pmd(build(spec(english=False, toons=["x.bmp"] * 10)), strict=True)
    assert m.name_en == "" and m.toon_textures == ("x.bmp",) * 10 and m.rigid_bodies == ()


def test_full_file_english_toons_and_physics():
    m = parse_pmd(build(full_spec()), strict=True)
    assert (m.name_en, m.comment_en) == ("Test", "comment")
    assert [b.name_en for b in m.bones[:10]] == [f"bone{i}" for i in range(10)]
    assert [(x.name, x.name_en) for x in m.morphs] == [("あ", "a"), ("まばたき", "blink")]   # base excluded
    assert [(f.name, f.name_en) for f in m.display_frames[2:]] == [("体", "Body"), ("足", "Legs")]
    assert m.display_frames[1].elements == ((True, 1), (True, 0))      # skin list index - 1
    assert m.display_frames[3].elements == ((False, 1), (False, 2))
    # toon byte 2 -> "toon03.bmp" (shared #2); byte 4 -> custom "mytoon.bmp" (a model texture)
    m0, m1 = m.materials
    assert (m0.toon_shared, m0.toon_index) == (True, 2)
    assert not m1.toon_shared and m.textures[m1.toon_index] == "mytoon.bmp"
    assert m1.flags == MaterialFlag.DOUBLE_SIDED                         # alpha 0.98: no self shadow, no edge
    # rigid positions become model space: bone position added, bone 0 (centre) when none
    r0, r1 = m.rigid_bodies
    assert r0.bone == 5 and r0.position.tolist() == [0, 10, 0]
    assert r1.bone == -1 and r1.position.tolist() == [0, 8, 1]
    assert (r0.shape, r0.group, r0.no_collision_mask, r0.mode, r0.mass) == (1, 1, 0xFFFE, 1, 1.0)
    j = m.joints[0]
    assert (j.rigid_a, j.rigid_b, j.position.tolist(), j.spring_angular.tolist()) == (0, 1, [0, 1, 2], [21, 22, 23])


def test_base_relative_morphs_become_mesh_vertex_morphs():
    m = parse_pmd(build(full_spec()), strict=True)
    a, blink = m.morphs
    assert a.kind == MorphKind.VERTEX and a.panel == 3 and blink.panel == 2
    assert a.offsets["index"].tolist() == [7, 5]                 # base list [5, 2, 7] indexed by [2, 0]
    assert a.offsets["offset"].tolist() == [[0, 1, 0], [0, 2, 0]]
    assert blink.offsets["index"].tolist() == [2]


def test_a_second_base_morph_is_read_as_a_hidden_morph_with_one_warning():
    """A real accessory's skin list holds a second type-0 skin; MikuMikuDance loads it."""
    d = full_spec()
    d["morphs"].append(("base2", 0, [(1, (0, 0, 1))]))
    d["english"]["morphs"].append("base2")
    with pytest.warns(UserWarning, match="1 extra base morph") as rec:
        m = parse_pmd(build(d), "acc.pmd")
    assert len(rec) == 1 and "acc.pmd" in str(rec[0].message)
    extra = m.morphs[-1]
    assert (extra.name, extra.panel, extra.kind) == ("base2", 0, MorphKind.VERTEX)
    assert extra.offsets["index"].tolist() == [2]                 # base list [5, 2, 7] indexed by [1]


@pytest.mark.parametrize("tex, texture, sphere, mode", [
    ("a.bmp*b.sph", "a.bmp", "b.sph", 1), ("a.bmp*b.SPA", "a.bmp", "b.SPA", 2), ("e.sph", None, "e.sph", 1),
    ("f.spa", None, "f.spa", 2), ("g.png", "g.png", None, 0), ("", None, None, 0), ("*s.sph", None, "s.sph", 1)])
def test_sphere_in_texture_name(tex, texture, sphere, mode):
    m = parse_pmd(build(spec(materials=[dict(alpha=1.0, toon=255, edge=0, count=6, tex=tex)])), strict=True)
    mat = m.materials[0]
    name = (lambda i: m.textures[i] if i >= 0 else None)
    assert (name(mat.texture_index), name(mat.sphere_index), mat.sphere_mode) == (texture, sphere, mode)


def test_textures_are_deduplicated():
    mats = [dict(alpha=1.0, toon=255, edge=0, count=3, tex=t) for t in ("a.bmp*s.sph", "a.bmp")]
    m = parse_pmd(build(spec(materials=mats)), strict=True)
    assert m.textures == ("a.bmp", "s.sph") and [x.texture_index for x in m.materials] == [0, 0]


def test_bone_types_ik_and_knee_limits():
    m = parse_pmd(build(full_spec()), strict=True)
    b = {x.name: x for x in m.bones}
    ik = b["左足ＩＫ"].ik
    assert ik.target == 3 and ik.loop_count == 40 and ik.limit_angle == pytest.approx(2.0)     # 4 x 0.5
    knee, thigh = ik.links
    assert knee.bone == 2 and thigh.bone == 1 and thigh.lower is None
    np.testing.assert_allclose(knee.lower, [-math.pi, 0, 0])
    np.testing.assert_allclose(knee.upper, [math.radians(-0.5), 0, 0], atol=1e-7)
    assert b["左足ＩＫ"].flags & (BoneFlag.IK | BoneFlag.TRANSLATABLE) and b["左足ＩＫ"].layer == 1
    assert not b["左足首"].flags & BoneFlag.VISIBLE                          # type 6, IK target
    eye_l, eye_r = b["左目"], b["右目"]
    assert (eye_l.append_parent, eye_l.append_ratio, eye_l.layer) == (5, 1.0, 2)      # type 5
    assert (eye_r.append_parent, eye_r.append_ratio, eye_r.tail_index) == (5, -1.0, -1)  # type 9, signed %
    assert eye_r.append_rotate and not eye_r.flags & BoneFlag.VISIBLE
    twist = b["腕捩"]
    assert twist.flags & BoneFlag.FIXED_AXIS and twist.fixed_axis.tolist() == pytest.approx([0.6, -0.8, 0])
    extra = m.bones[10]                       # second IK entry on the same bone -> hidden copy "name+"
    assert len(m.bones) == 11 and extra.name == "左足ＩＫ+" and extra.parent == 4
    assert extra.ik.target == 9 and extra.ik.limit_angle == pytest.approx(1.0) and not extra.flags & BoneFlag.VISIBLE


def test_trailing_bytes_warn_or_raise():
    data = build(spec(english=False, toons=[""] * 10, rigids=[], tail=b"junk"))
    with pytest.warns(UserWarning, match="4 unexpected bytes"):
        parse_pmd(data)
    with pytest.raises(FormatError) as e:
        parse_pmd(data, strict=True)
    assert e.value.field == "end" and e.value.offset == len(data) - 4


def _mutate(**over):
    def f():
        d = full_spec()
        for k, v in over.items():
            v(d) if callable(v) else d.__setitem__(k, v)
        return d
    return f


@pytest.mark.parametrize("make, field", [
    (_mutate(faces=[(0, 1, 8), (3, 4, 5)]), "faces[0]"),
    (_mutate(vertices=[((0, 0, 0), 0, 10, 50, 0)] * 8), "vertices[0].bones"),
    (_mutate(vertices=[((0, 0, 0), 0, 1, 101, 0)] * 8), "vertices[0].weight"),
    (_mutate(x=lambda d: d["materials"][0].update(count=6)), "materials.face_vertex_count"),
    (_mutate(x=lambda d: d["materials"][0].update(count=2)), "materials[0].face_vertex_count"),
    (_mutate(x=lambda d: d["materials"][0].update(toon=10)), "materials[0].toon"),
    (_mutate(x=lambda d: d["bones"].__setitem__(1, ("左足", 40, 2, 4, 0, (0, 0, 0)))), "bones[1].parent"),
    (_mutate(x=lambda d: d["bones"].__setitem__(0, ("センター", 9, 0, 1, 0, (0, 0, 0)))), ".parent"),  # cycle
    (_mutate(x=lambda d: d["bones"].__setitem__(1, ("左足", 0, 2, 10, 0, (0, 0, 0)))), "bones[1].type"),
    (_mutate(x=lambda d: d["bones"].__setitem__(6, ("左目", 5, 0, 5, 99, (0, 0, 0)))), "bones[6].ik_parent"),
    (_mutate(iks=[(4, 30, 40, 0.5, [2, 1])]), "iks[0].target"),
    (_mutate(iks=[(4, 3, 40, 0.5, [2, 11])]), "iks[0].links[1]"),
    (_mutate(x=lambda d: d["morphs"][1][2].append((3, (0, 0, 0)))), "morphs[1].vertices[2].index"),
    (_mutate(x=lambda d: d["morphs"][0][2].append((8, (0, 0, 0)))), "morphs[0].vertices[3].index"),
    (_mutate(x=lambda d: d["morphs"].reverse()), "morphs[0].type"),
    (_mutate(morph_display=[0]), "morph_display[0]"),
    (_mutate(bone_display=[(0, 0)]), "bone_display[0]"),
    (_mutate(rigids=[("r", 20, (0, 0, 0))], joints=[]), "rigid_bodies[0].bone"),
    (_mutate(joints=[("j", 0, 2)]), "joints[0].rigid_b"),
])
def test_bad_references_name_the_field(make, field):
    with pytest.raises(FormatError) as e:
        parse_pmd(build(make()), "bad.pmd")
    assert field in e.value.field and e.value.path == "bad.pmd" and e.value.offset is not None


def test_bad_header_and_counts():
    data = build(spec())
    for bad, field in [(b"Pmx" + data[3:], "header.magic"), (data[:283] + b"\xff\xff\xff\x7f" + data[287:],
                                                             "vertices.count")]:
        with pytest.raises(FormatError) as e:
            parse_pmd(bad)
        assert e.value.field == field
    off = 283 + 4 + 38 * 4                      # face index count 7 is not a multiple of 3
    with pytest.raises(FormatError, match="multiple of 3"):
        parse_pmd(data[:off] + struct.pack("<I", 7) + data[off + 4:])


def test_every_truncation_and_byte_flip_of_a_small_file_raises_only_format_error():
    data = build(full_spec())
    ends = set()
    for k in range(len(data)):
        try:
            parse_pmd(data[:k], strict=True)
            ends.add(k)
        except FormatError:
            pass
    # only the optional-extension boundaries are complete files
    english = 1 + 20 + 256 + 20 * 10 + 20 * 2 + 50 * 2
    physics = 4 + 83 * 2 + 4 + 124
    assert ends == {len(data) - physics - 1000 - english, len(data) - physics - 1000, len(data) - physics}
    for k in range(len(data)):
        flipped = bytearray(data)
        flipped[k] ^= 0xFF
        try:
            parse_pmd(bytes(flipped), strict=True)
        except FormatError:
            pass


# ------------------------------------------------------------------------------------------------
# The real Gene.pmd
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gene_pmd(gene_dir):
    path = gene_dir / "Gene.pmd"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def test_gene_counts_and_full_consumption(gene_pmd):
    m = read_pmd(gene_pmd, strict=True)          # strict: any byte after the joints would raise
    assert (m.vertex_count, m.face_count, len(m.materials), len(m.bones)) == (28646, 47106, 13, 224)
    assert sum(b.ik is not None for b in m.bones) == 6
    assert (len(m.morphs), len(m.rigid_bodies), len(m.joints)) == (177, 87, 92)   # + 1 base skin in the file
    assert len(m.display_frames) == 15 and len(m.display_frames[1].elements) == 110
    assert len(m.textures) == 10 and m.textures[0] == "tex/hair2.png"
    assert m.name == "ジェネ / Gene" and m.name_en == "CHMSgeneric.model.v"
    assert m.bones[1].name_en == "center" and m.toon_textures[0] == "toon01.bmp"
    assert sum(m.bone_weights[:, :2].sum(1) != 1) == 0
    with pytest.raises(FormatError, match="1 unexpected bytes"):
        parse_pmd(gene_pmd.read_bytes() + b"\0", strict=True)


def test_gene_conventions(gene_pmd):
    m = read_pmd(gene_pmd)
    b = {x.name: x for x in m.bones}
    for side in "左右":
        knee = next(l for l in b[f"{side}足ＩＫ"].ik.links if m.bones[l.bone].name == f"{side}ひざ")
        np.testing.assert_allclose(knee.lower, [-math.pi, 0, 0])
        np.testing.assert_allclose(knee.upper, [math.radians(-0.5), 0, 0], atol=1e-7)
        assert b[f"{side}足ＩＫ"].ik.limit_angle == pytest.approx(2.0071287)     # Gene_light.pmx stores this
    assert (b["左目"].append_parent, b["左目"].append_ratio) == (m.bone_index("両目"), pytest.approx(0.15))
    assert b["左腕捩"].fixed_axis is not None
    np.testing.assert_allclose(m.rigid_bodies[0].position, [0, 12.256164, -0.60143673], atol=1e-5)   # as the PMX


def test_gene_parses_fast(gene_pmd):
    data = gene_pmd.read_bytes()
    parse_pmd(data)
    t = time.perf_counter()
    parse_pmd(data)
    assert time.perf_counter() - t < 0.25        # ~15 ms on a quiet machine; slack for a shared CPU


def test_gene_truncations_and_flips_raise_only_format_error(gene_pmd):
    data = gene_pmd.read_bytes()
    m = parse_pmd(data)
    physics = 8 + 83 * len(m.rigid_bodies) + 124 * len(m.joints)
    english = 1 + 20 + 256 + 20 * len(m.bones) + 20 * len(m.morphs) + 50 * (len(m.display_frames) - 2)
    ends = {len(data) - physics, len(data) - physics - 1000, len(data) - physics - 1000 - english}
    cuts = set(np.linspace(0, len(data) - 1, 150).astype(int).tolist()) | ends | {e + 1 for e in ends}
    for k in sorted(cuts):
        try:
            short = parse_pmd(data[:k], strict=True)
        except FormatError:
            assert k not in ends
            continue
        assert k in ends and short.vertex_count == 28646 and short.rigid_bodies == ()
    rng = np.random.default_rng(0)
    for k in rng.integers(0, len(data), 60).tolist() + list(range(0, 300, 7)):
        flipped = bytearray(data)
        flipped[k] ^= 0xFF
        try:
            parse_pmd(bytes(flipped), strict=True)
        except FormatError:
            pass
