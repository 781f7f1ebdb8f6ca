"""The procedural sample character (udpgen.sample.character): determinism, round trips through the project's own
PMX/VMD readers, MMD conventions (skeleton, IK, weights, winding) and proportions."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from udpgen.sample import character as sample
from udpgen.mmd.model import BoneFlag, MorphKind, WeightType, vmd_name_bytes
from udpgen.mmd.pmx import read_pmx
from udpgen.mmd.vmd import read_vmd
from udpgen.sample.mesh import ARM_DROOP_DEG, HEAD_AXES, HEAD_CENTER, body_surfaces

FILES = ["sample.pmx", "tex/skin.png", "tex/face.png", "tex/cloth.png", "tex/hair.png", "wave.vmd"]


@pytest.fixture(scope="module")
def built():
    return sample.build_model()


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sample")
    sample.write_sample(d)
    return d


@pytest.fixture(scope="module")
def model(out_dir):
    return read_pmx(out_dir / "sample.pmx")


def _bone(model, name):
    i = model.bone_index(name)
    assert i >= 0, f"missing bone {name}"
    return model.bones[i]


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def test_rerun_is_byte_identical(out_dir, tmp_path):
    written = sample.write_sample(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == FILES
    for rel in FILES:
        assert (tmp_path / rel).read_bytes() == (out_dir / rel).read_bytes(), rel


def test_small(out_dir):
    total = sum((out_dir / rel).stat().st_size for rel in FILES)
    assert total < 1_000_000


def test_committed_assets_are_current(sample_dir, built):
    """assets/sample must be what the generator makes now (PNGs compared by pixels)."""
    if not (sample_dir / "sample.pmx").is_file():
        pytest.skip("assets/sample not generated")
    from udpgen.mmd.vmd import vmd_bytes
    m, textures = built
    assert read_pmx(sample_dir / "sample.pmx").vertex_count == m.vertex_count
    assert (sample_dir / "wave.vmd").read_bytes() == vmd_bytes(sample.build_motion())
    for rel, rgba in textures.items():
        img = cv2.imread(str(sample_dir / rel), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA), rgba), rel


def test_cli(tmp_path, capsys):
    assert sample.main(["--out", str(tmp_path / "x")]) == 0
    assert all((tmp_path / "x" / rel).is_file() for rel in FILES)
    assert "sample.pmx" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# PMX round trip and contents
# ------------------------------------------------------------------------------------------------
def test_pmx_reads_back_the_same(built, model):
    m, _ = built
    assert (model.name, model.name_en) == ("見本ちゃん", "Sample-chan")
    assert "CC0: made procedurally by udpgen.sample.character" in model.comment
    for attr in ("positions", "normals", "uvs", "faces", "weight_types", "edge_scale"):
        assert np.array_equal(getattr(model, attr), getattr(m, attr)), attr
    used = m.bone_indices >= 0
    assert np.array_equal(model.bone_indices[used], m.bone_indices[used])
    assert np.allclose(model.bone_weights, m.bone_weights, atol=1e-6)
    assert [b.name for b in model.bones] == [b.name for b in m.bones]
    assert [(x.name, x.face_count) for x in model.materials] == [(x.name, x.face_count) for x in m.materials]
    assert [(x.name, x.kind) for x in model.morphs] == [(x.name, x.kind) for x in m.morphs]
    assert model.textures == m.textures and len(model.display_frames) == len(m.display_frames)
    assert 2000 <= model.vertex_count <= 6000


def test_weight_types(model):
    wt, bi, bw = model.weight_types, model.bone_indices, model.bone_weights
    for t in (WeightType.BDEF1, WeightType.BDEF2, WeightType.BDEF4):
        assert (wt == t).any(), t.name
    assert set(np.unique(wt)) <= {WeightType.BDEF1, WeightType.BDEF2, WeightType.BDEF4}
    nb = len(model.bones)
    for t, k in ((WeightType.BDEF1, 1), (WeightType.BDEF2, 2), (WeightType.BDEF4, 4)):
        sel = wt == t
        assert ((bi[sel, :k] >= 0) & (bi[sel, :k] < nb)).all(), t.name
        assert np.allclose(bw[sel].sum(1), 1, atol=1e-5), t.name
    # blends sit at joints: elbow and knee vertices mix the limb bones
    b2 = bi[wt == WeightType.BDEF2, :2]
    for a, b in (("左腕捩", "左ひじ"), ("右足", "右ひざ"), ("下半身", "左足"), ("左肩", "左腕")):
        pair = {model.bone_index(a), model.bone_index(b)}
        assert any(set(row) == pair for row in b2.tolist()), (a, b)


STANDARD = ["全ての親", "センター", "グルーブ", "腰", "上半身", "上半身2", "首", "頭", "両目", "下半身"] + [
    lr + k for lr in "左右" for k in ("目", "肩", "腕", "腕捩", "ひじ", "手捩", "手首", "足", "ひざ", "足首",
                                     "つま先", "足ＩＫ", "つま先ＩＫ")]


def test_skeleton_standard_names_and_hierarchy(model):
    names = [b.name for b in model.bones]
    assert set(STANDARD) <= set(names) and len(set(names)) == len(names)
    for i, b in enumerate(model.bones):
        assert b.parent < i, f"{b.name}: parent after child"
        if b.flags & BoneFlag.TAIL_IS_BONE:
            assert -1 <= b.tail_index < len(names)
    parent = lambda n: model.bones[_bone(model, n).parent].name          # noqa: E731
    chain = {"センター": "全ての親", "グルーブ": "センター", "腰": "グルーブ", "上半身": "腰", "下半身": "腰",
             "上半身2": "上半身", "首": "上半身2", "頭": "首", "両目": "頭", "左肩": "上半身2", "左腕": "左肩",
             "左手首": "左手捩", "左足": "下半身", "左ひざ": "左足", "左足首": "左ひざ", "左つま先": "左足首",
             "右足ＩＫ": "全ての親", "右つま先ＩＫ": "右足ＩＫ"}
    for child, par in chain.items():
        assert parent(child) == par, child
    assert "ＩＫ" in "".join(names) and "IK" not in "".join(names)      # full-width, as real models


@pytest.mark.parametrize("lr", ["左", "右"])
def test_leg_ik(model, lr):
    leg = _bone(model, lr + "足ＩＫ")
    assert leg.flags & BoneFlag.IK and leg.flags & BoneFlag.TRANSLATABLE and leg.layer == 0
    ik = leg.ik
    assert model.bones[ik.target].name == lr + "足首" and ik.loop_count == 40
    assert ik.limit_angle == pytest.approx(2.0)
    assert np.allclose(leg.position, model.bones[ik.target].position)
    knee, thigh = ik.links
    assert [model.bones[knee.bone].name, model.bones[thigh.bone].name] == [lr + "ひざ", lr + "足"]
    # MMD's knee limits: X only, negative = the lower leg swings back (+Z)
    assert knee.lower.tolist() == pytest.approx([-math.pi, 0, 0])
    assert knee.upper.tolist() == pytest.approx([math.radians(-0.5), 0, 0])
    assert thigh.lower is None and thigh.upper is None
    toe = _bone(model, lr + "つま先ＩＫ")
    assert model.bones[toe.ik.target].name == lr + "つま先" and toe.ik.loop_count == 3
    assert [model.bones[l.bone].name for l in toe.ik.links] == [lr + "足首"]


def test_append_and_twist_bones(model):
    eyes = model.bone_index("両目")
    for lr in "左右":
        eye = _bone(model, lr + "目")
        assert eye.append_rotate and eye.append_parent == eyes and eye.append_ratio == 1.0
        twist = _bone(model, lr + "腕捩")
        assert twist.flags & BoneFlag.FIXED_AXIS
        arm = _bone(model, lr + "腕").position
        d = _bone(model, lr + "ひじ").position - arm
        assert np.allclose(twist.fixed_axis, d / np.linalg.norm(d), atol=1e-5)


@pytest.mark.parametrize("lr,sign", [("左", 1), ("右", -1)])
def test_arm_droop(model, lr, sign):
    a, e, w = (_bone(model, lr + n).position.astype(float) for n in ("腕", "ひじ", "手首"))
    d = e - a
    assert sign * d[0] > 0                                    # her left arm on +X
    assert math.degrees(math.atan2(-d[1], abs(d[0]))) == pytest.approx(ARM_DROOP_DEG, abs=0.01)
    assert np.allclose(np.cross(d, w - e), 0, atol=1e-4)     # straight arm at rest


# ------------------------------------------------------------------------------------------------
# Mesh
# ------------------------------------------------------------------------------------------------
def test_mesh_is_renderable(model):
    p, f, n = model.positions.astype(float), model.faces, model.normals.astype(float)
    assert f.min() >= 0 and f.max() < model.vertex_count
    tri = p[f]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (np.linalg.norm(cross, axis=1) > 1e-5).all()                  # no degenerate triangles
    assert np.allclose(np.linalg.norm(n, axis=1), 1, atol=1e-5)
    # MMD winding: (b - a) x (c - a) along the vertex normals (as in Gene_light.pmx)
    assert ((cross * n[f].sum(1)).sum(1) > 0).all()
    assert (model.uvs >= 0).all() and (model.uvs <= 1).all()
    assert (model.edge_scale == 1).all()


def test_normals_point_outward(model):
    bone_index = {b.name: i for i, b in enumerate(model.bones)}
    for s in body_surfaces(bone_index):
        dots = ((s.positions - s.anchors) * s.normals).sum(1)
        assert (dots > 0).all(), s.name


def test_proportions_and_facing(model):
    p = model.positions
    height = p[:, 1].max()
    assert 19.0 <= height <= 20.0 and abs(p[:, 1].min()) < 0.05            # feet on the floor
    head = height - (HEAD_CENTER[1] - HEAD_AXES[1])                        # chin to the top of the hair
    assert 5.5 <= height / head <= 6.0
    first = 0
    for m in model.materials:
        if m.name_en in ("eyes", "mouth"):
            v = np.unique(model.faces[first:first + m.face_count])
            assert (p[v, 2] < -0.8).all(), m.name_en                       # face toward -Z
        first += m.face_count
    assert _bone(model, "左目").position[0] > 0 and _bone(model, "左足").position[0] > 0


def test_materials_and_textures(model, built):
    _, textures = built
    assert len(model.materials) >= 3
    assert any(m.double_sided for m in model.materials) and any(m.draws_edge for m in model.materials)
    for i, rel in enumerate(model.textures):
        path = model.resolve_texture(i)
        assert path is not None, rel
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        assert np.array_equal(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA), textures[rel])
    for m in model.materials:
        assert 0 <= m.texture_index < len(model.textures) and m.toon_shared and m.face_count > 0


def test_morphs_and_display_frames(model):
    kinds = {m.name: m.kind for m in model.morphs}
    assert kinds["まばたき"] == kinds["あ"] == MorphKind.VERTEX
    assert MorphKind.BONE in kinds.values() and MorphKind.GROUP in kinds.values()
    blink = next(m for m in model.morphs if m.name == "まばたき")
    assert (blink.offsets["offset"][:, 1] < 0).mean() > 0.5                 # the eyes close downward
    for m in model.morphs:
        limit = len(model.morphs) if m.kind == MorphKind.GROUP else len(model.bones) if m.kind == MorphKind.BONE \
            else model.vertex_count
        assert ((m.offsets["index"] >= 0) & (m.offsets["index"] < limit)).all(), m.name
    frames = {d.name: d for d in model.display_frames}
    assert frames["Root"].special and frames["表情"].special
    assert len(frames["表情"].elements) == len(model.morphs)


# ------------------------------------------------------------------------------------------------
# Motion
# ------------------------------------------------------------------------------------------------
def test_motion_reads_back_and_matches_model(out_dir, model):
    mo = read_vmd(out_dir / "wave.vmd")
    assert mo.model_name == "見本ちゃん".encode("cp932")
    first, last = mo.frame_range
    assert first == 0 and 60 <= last <= 120
    bone_names = {vmd_name_bytes(b.name) for b in model.bones}
    assert set(mo.bones.names) <= bone_names
    assert {vmd_name_bytes(n) for n in ("右腕", "右ひじ", "左足ＩＫ", "センター")} <= set(mo.bones.names)
    assert set(mo.morphs.names) <= {vmd_name_bytes(m.name) for m in model.morphs}
    assert np.allclose(np.linalg.norm(mo.bones.rotation, axis=1), 1, atol=1e-6)
    # MMD's linear curve in MMD's own byte layout (as in Gene's motions)
    linear = [20, 20, 0, 0] + [20] * 4 + [107] * 8 + [20] * 7 + [107] * 8 + [0] + [20] * 6 + [107] * 8 + [0] * 2 \
        + [20] * 5 + [107] * 8 + [0] * 3
    assert (mo.bones.interpolation == np.array(linear, np.uint8)).all()
    ik_names = {n for n, _ in mo.ik[0].ik_enabled}
    assert ik_names == {n.encode("cp932") for n in ("左足ＩＫ", "右足ＩＫ", "左つま先ＩＫ", "右つま先ＩＫ")}


def test_wave_raises_the_right_forearm(model):
    """Forward kinematics of the wave key: the right forearm ends up pointing up (+Y)."""
    mo = sample.build_motion()
    name_of = lambda k: mo.bones.names[mo.bones.name_index[k]]           # noqa: E731

    def rot(name, frame):
        k = next(k for k in range(len(mo.bones)) if name_of(k) == name.encode("cp932") and mo.bones.frame[k] == frame)
        x, y, z, w = mo.bones.rotation[k].astype(float)
        return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    fore = _bone(model, "右手首").position - _bone(model, "右ひじ").position
    up = rot("右腕", 12) @ rot("右ひじ", 12) @ fore
    assert up[1] / np.linalg.norm(up) > 0.99


@pytest.mark.shared
def test_conventions_match_gene(gene_dir, model):
    """Knee limit signs, IK parameters and face winding as in a real model."""
    gene = read_pmx(gene_dir / "Gene_light.pmx")
    g_ik = gene.bones[gene.bone_index("左足ＩＫ")].ik
    knee = g_ik.links[0]
    assert knee.lower[0] < 0 and knee.lower[0] < knee.upper[0] and gene.bones[knee.bone].name == "左ひざ"
    assert model.bones[model.bone_index("左足ＩＫ")].ik.loop_count == g_ik.loop_count
    assert g_ik.limit_angle == pytest.approx(2.0, abs=0.01)
    p, f, n = gene.positions.astype(float), gene.faces, gene.normals.astype(float)
    cross = np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])
    assert ((cross * n[f].sum(1)).sum(1) > 0).mean() > 0.99
    assert gene.bones[gene.bone_index("左腕")].position[0] > 0                 # her left at +X
