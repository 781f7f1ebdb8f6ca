"""Posing: MMD semantics checked as properties on real models (Gene, the sample) and small built ones."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from udpgen.errors import ModelError
from udpgen.mmd import load
from udpgen.mmd.model import Bone, BoneFlag, Model, WeightType, vmd_name_bytes
from udpgen.rig import MotionSampler, Rig
from udpgen.rig import quat as Q
from udpgen.rig.canonical import CANONICAL_ARM_DROOP_DEG, arm_droop_deg, canonicalize
from udpgen.rig.ik import _euler
from udpgen.rig.motion import bezier_weight


@pytest.fixture(scope="module")
def sample(sample_dir):
    return load(sample_dir / "sample.pmx")


@pytest.fixture(scope="module")
def gene(gene_dir):
    return load(gene_dir / "Gene_light.pmx")


def _rot(axis, deg):
    return Q.from_axis_angle(np.asarray(axis, float) / np.linalg.norm(axis), math.radians(deg))


# --- identity, order, grants -------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["sample", "gene"])
def test_identity_pose_gives_rest_mesh(which, request):
    model = request.getfixturevalue(which)
    rig = Rig(model)
    values = rig.rest_values()
    values.ik_enabled[:] = False
    posed = rig.pose(values)
    # exact at the file's precision: the float64 result rounds back to the stored float32 values
    assert np.array_equal(posed.positions.astype(np.float32), model.positions)
    assert np.allclose(posed.bones.skinning(), np.eye(4), atol=1e-12)
    # with IK on, the chains only correct the file's tiny rest-pose gaps between IK bones and effectors
    assert np.abs(rig.pose().positions - model.positions).max() < 2e-3


def _permuted(model: Model, perm: np.ndarray) -> Model:
    """The same model with its bones stored in order ``perm`` (new index i holds old bone perm[i])."""
    new_of = np.empty_like(perm)
    new_of[perm] = np.arange(len(perm))
    remap = lambda i: int(new_of[i]) if i >= 0 else -1      # noqa: E731
    bones = []
    for old in perm:
        b = model.bones[old]
        ik = b.ik and dataclasses.replace(b.ik, target=remap(b.ik.target), links=tuple(
            dataclasses.replace(l, bone=remap(l.bone)) for l in b.ik.links))
        bones.append(dataclasses.replace(b, parent=remap(b.parent), tail_index=remap(b.tail_index),
                                         append_parent=remap(b.append_parent), ik=ik))
    idx = np.where(model.bone_indices >= 0, new_of[np.maximum(model.bone_indices, 0)], -1).astype(np.int32)
    return dataclasses.replace(model, bones=tuple(bones), bone_indices=idx, morphs=())


def test_parent_stored_after_child_poses_the_same(sample):
    # move the torso and the left arm behind all their descendants; IK and grant bones keep their
    # relative order (that order is part of MMD's semantics)
    n = len(sample.bones)
    names = [b.name for b in sample.bones]
    moved = [names.index("上半身"), names.index("左腕")]
    perm = np.array([i for i in range(n) if i not in moved] + moved)
    flipped = _permuted(sample, perm)
    assert any(b.parent > i for i, b in enumerate(flipped.bones))
    plain = dataclasses.replace(sample, morphs=())
    motion = load(sample.path.replace("sample.pmx", "wave.vmd"))
    # same layers, so IK runs in the same relative order; compare a frame mid-wave, mid-step
    a = Rig(plain).pose(MotionSampler(plain, motion).at(40))
    b = Rig(flipped).pose(MotionSampler(flipped, motion).at(40))
    # bones exactly (float64); vertices to float32 rounding (the blend sums a vertex's bones in index order)
    assert np.allclose(a.bones.world[perm], b.bones.world, atol=1e-9)
    assert np.allclose(a.positions, b.positions, atol=1e-5)


def _chain_model(ratio: float, local: bool = False) -> Model:
    """root -> a -> b (b grants ratio of a's rotation and translation) ; c is b's child."""
    f = int(BoneFlag.ROTATABLE | BoneFlag.TRANSLATABLE | BoneFlag.VISIBLE | BoneFlag.OPERABLE)
    g = f | BoneFlag.APPEND_ROTATE | BoneFlag.APPEND_TRANSLATE | (BoneFlag.LOCAL_APPEND if local else 0)
    P = lambda *v: np.array(v, np.float32)      # noqa: E731
    bones = (Bone("root", position=P(0, 0, 0), flags=f), Bone("a", position=P(0, 1, 0), parent=0, flags=f),
             Bone("b", position=P(0, 2, 0), parent=1, flags=g, append_parent=1, append_ratio=ratio, layer=1),
             Bone("c", position=P(0, 3, 0), parent=2, flags=f))
    return Model(bones=bones)


@pytest.mark.parametrize("ratio", [1.0, -1.0, -0.5, 0.5, 2.0])
def test_append_ratio(ratio):
    rig = Rig(_chain_model(ratio))
    v = rig.rest_values()
    q = _rot([1, 2, 3], 50)
    v.rotation[1] = q
    v.translation[1] = [0.3, 0, 0]
    bones = rig.pose_bones(v)
    # b's world rotation = a's rotation followed by ratio of it (slerp from identity, extrapolating)
    expected = Q.mul(q, Q.slerp(Q.IDENTITY, q, ratio))
    got = Q.from_matrix(bones.world[2, :3, :3])
    assert min(np.abs(got - expected).max(), np.abs(got + expected).max()) < 1e-9
    assert np.allclose(bones.world[2, :3, 3], bones.world[1, :3, :3] @ [0, 1, 0] + bones.world[1, :3, 3]
                       + bones.world[1, :3, :3] @ (ratio * np.array([0.3, 0, 0])))
    if ratio == -1.0:       # a grant of -1 cancels its source: b is back to the rest orientation
        assert np.allclose(bones.world[2, :3, :3], np.eye(3), atol=1e-9)


def test_chained_and_ik_driven_grants_gene_cloak(gene, gene_dir):
    """Gene's side cloak grants -0.5..0.2 of an IK-driven arm link (右腕xca): IK moves the followers."""
    rig = Rig(gene)
    sk = rig.skeleton
    fp = MotionSampler(gene, load(gene_dir / "motion" / "stand.vmd")).at(0)
    bones = rig.pose_bones(fp)
    src = sk.index("右腕xca")
    assert Q.to_axis_angle(bones.ik_rotation[src])[1] > 1e-3         # the arm IK turned the link
    src_rot = Q.mul(bones.ik_rotation[src], fp.rotation[src])
    for name, ratio in (("横クローク2_1", 0.2), ("横クローク5_1", -0.5)):
        b = sk.index(name)
        expected = Q.mul(Q.normalize(fp.rotation[b]), Q.slerp(Q.IDENTITY, src_rot, ratio))
        got = bones.local_rotation[b]
        assert min(np.abs(got - expected).max(), np.abs(got + expected).max()) < 1e-8


def test_stand_lowers_arms_and_cloak_follows(gene, gene_dir):
    rig = Rig(gene)
    rest = rig.pose()
    posed = rig.pose(MotionSampler(gene, load(gene_dir / "motion" / "stand.vmd")).at(0))
    droop_rest = arm_droop_deg(rest.bones.positions, rig.skeleton)
    droop = arm_droop_deg(posed.bones.positions, rig.skeleton)
    assert droop[0] > droop_rest[0] + 20 and droop[1] > droop_rest[1] + 20
    # Gene's cloak rides on a shadow arm (右腕xca) that IK keeps pointed at the real elbow, and the side
    # cloak bones grant fractions (-0.5..0.2) of it: the shadow arm's tip follows the elbow exactly and
    # the cloak's vertices move along with the arm
    sk = rig.skeleton
    elbow, tip = sk.index("右ひじ"), sk.index("右腕xcb")
    assert np.linalg.norm(posed.bones.positions[tip] - posed.bones.positions[elbow]) < 1e-3
    cloak = np.concatenate([sk.subtree(sk.index(n)) for n in ("横クローク2_1", "横クローク3_1", "横クローク4_1",
                                                              "横クローク5_1")])
    verts = np.flatnonzero((np.isin(gene.bone_indices, cloak) & (gene.bone_weights > 0)).any(1))
    assert verts.size > 100
    moved = np.median(posed.positions[verts] - rest.positions[verts], axis=0)
    arm = posed.bones.positions[elbow] - rest.bones.positions[elbow]
    assert np.linalg.norm(moved) > 0.2 and moved @ arm > 0.5 * np.linalg.norm(moved) * np.linalg.norm(arm)


# --- IK ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("offset", [(0, 2.0, -1.0), (0, 3.0, 1.0), (-0.3, 3.0, 1.0), (0.2, 4.0, -2.0)])
def test_leg_ik_reaches_and_knee_respects_limits(sample, offset):
    rig = Rig(sample)
    sk = rig.skeleton
    v = rig.rest_values()
    ik = sk.index("左足ＩＫ")
    v.translation[ik] = offset
    bones = rig.pose_bones(v)
    ankle = sk.index("左足首")
    assert np.linalg.norm(bones.positions[ankle] - bones.positions[ik]) < 1e-3
    knee = sk.index("左ひざ")
    link = next(l for l in sk.chains[ik].links if l.bone == knee)
    e = _euler(Q.to_matrix(bones.local_rotation[knee]).tolist(), link.order)
    assert np.all(np.array(e) >= link.lower - 1e-6) and np.all(np.array(e) <= link.upper + 1e-6)
    assert e[0] < -0.05                                          # the knee bends (backwards: negative X)
    assert bones.positions[knee][2] < bones.positions[ankle][2] + 1e-6 or offset[2] >= 0


@pytest.mark.parametrize("which", ["sample", "gene"])
def test_leg_ik_random_goals(which, request):
    """CCD with the file's loop counts converges linearly: goals off the leg's plane can stay a few mm away
    after 40 iterations (MMD behaves the same); all reachable goals end within 1 cm, most within 1 mm."""
    model = request.getfixturevalue(which)
    rig = Rig(model)
    sk = rig.skeleton
    ik, ankle, knee = sk.index("左足ＩＫ"), sk.index("左足首"), sk.index("左ひざ")
    link = next(l for l in sk.chains[ik].links if l.bone == knee)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(30):
        v = rig.rest_values()
        v.translation[ik] = rng.uniform([-1, 0, -2], [1, 4, 2])
        bones = rig.pose_bones(v)
        errors.append(np.linalg.norm(bones.positions[ankle] - bones.positions[ik]))
        e = np.array(_euler(Q.to_matrix(bones.local_rotation[knee]).tolist(), link.order))
        assert np.all(e >= link.lower - 1e-6) and np.all(e <= link.upper + 1e-6)
    errors = np.array(errors)
    assert errors.max() < 0.07 and np.median(errors) < 1e-3


@pytest.mark.parametrize("which", ["sample", "gene"])
def test_leg_ik_reaches_goals_away_from_full_extension(which, request):
    """Reachable goals (hip-to-goal distance inside the leg's annulus) with the knee bent at least a little
    (distance < 0.8 of the leg length) end within 1e-3 units; near full extension CCD closes the gap only
    linearly (babylon-mmd and MMD do the same), so there the file's 40 loops leave up to a few 1e-2."""
    rig = Rig(request.getfixturevalue(which))
    sk = rig.skeleton
    ik, ankle, knee, hip = sk.index("左足ＩＫ"), sk.index("左足首"), sk.index("左ひざ"), sk.index("左足")
    upper, lower = (np.linalg.norm(sk.rest[a] - sk.rest[b]) for a, b in ((knee, hip), (ankle, knee)))
    rng = np.random.default_rng(1)
    errors = []
    while len(errors) < 40:
        offset = rng.uniform([-3, 0, -3], [3, 6, 3])
        d = np.linalg.norm(sk.rest[ik] + offset - sk.rest[hip])
        if not abs(upper - lower) + 0.05 * (upper + lower) < d < 0.8 * (upper + lower):
            continue
        v = rig.rest_values()
        v.translation[ik] = offset
        bones = rig.pose_bones(v)
        errors.append(np.linalg.norm(bones.positions[ankle] - bones.positions[ik]))
    assert np.mean(np.array(errors) < 1e-3) >= 0.9 and max(errors) < 1e-2


def test_unreachable_goal_is_finite(sample):
    rig = Rig(sample)
    v = rig.rest_values()
    v.translation[rig.skeleton.index("左足ＩＫ")] = (0, -50, 80)
    bones = rig.pose_bones(v)
    assert np.isfinite(bones.world).all()


def test_ik_can_be_switched_off(sample):
    rig = Rig(sample)
    v = rig.rest_values()
    ik = rig.skeleton.index("左足ＩＫ")
    v.translation[ik] = (0, 2, 0)
    v.ik_enabled[ik] = False
    bones = rig.pose_bones(v)
    assert np.allclose(bones.positions[rig.skeleton.index("左足首")], rig.skeleton.rest[rig.skeleton.index("左足首")])


def test_single_quaternion_helpers_match_the_batched_ones():
    rng = np.random.default_rng(7)
    a, b = Q.normalize(rng.normal(size=(64, 4))), Q.normalize(rng.normal(size=(64, 4)))
    b[:8] = a[:8]                                     # identical pairs: slerp's small-angle branch
    mats = Q.to_matrix(a)
    axes = np.vstack([np.eye(3), np.ones((1, 3)) / math.sqrt(3.0)])
    mats[:4] = Q.to_matrix(Q.from_axis_angle(axes, np.full(4, np.pi)))    # half turns: w = 0
    for i, t in enumerate(np.linspace(-1.0, 2.0, 64)):         # extrapolating ratios included
        np.testing.assert_allclose(Q.mul1(tuple(a[i]), tuple(b[i])), Q.mul(a[i], b[i]), atol=1e-15)
        np.testing.assert_allclose(Q.slerp1(tuple(a[i]), tuple(b[i]), t), Q.slerp(a[i], b[i], t), atol=1e-12)
        np.testing.assert_allclose(Q.from_matrix1(mats[i].tolist()), Q.from_matrix(mats[i]), atol=1e-12)


# --- motion sampling --------------------------------------------------------------------------------

def test_bezier_linear_and_inverse():
    t = np.linspace(0, 1, 11)
    assert np.allclose(bezier_weight(np.array([20, 20, 107, 107]) / 127, t), t, atol=1e-6)
    ease = bezier_weight(np.array([0.5, 0.0, 0.5, 1.0]), t)
    assert ease[0] == 0 and ease[-1] == 1 and ease[2] < 0.2 and abs(ease[5] - 0.5) < 1e-6


def test_motion_clamps_and_interpolates(sample, sample_dir):
    motion = load(sample_dir / "wave.vmd")
    s = MotionSampler(sample, motion)
    first, last = s.frame_range
    a, b = s.at(first - 10), s.at(first)
    assert np.allclose(a.rotation, b.rotation) and np.allclose(a.translation, b.translation)
    c, d = s.at(last + 100), s.at(last)
    assert np.allclose(c.rotation, d.rotation)
    mid = s.at((first + last) / 2 + 0.5)
    assert np.allclose(np.linalg.norm(mid.rotation, axis=1), 1)


def test_unmatched_tracks_are_counted(sample_dir):
    model, wave = load(sample_dir / "sample.pmx"), load(sample_dir / "wave.vmd")
    assert MotionSampler(model, wave).unmatched_bones == ()
    # The same motion with one track renamed to a bone the model lacks (VMD names are cp932 bytes).
    ghost = "存在しない骨".encode("cp932")
    bones = dataclasses.replace(wave.bones, names=(ghost,) + wave.bones.names[1:])
    s = MotionSampler(model, dataclasses.replace(wave, bones=bones))
    assert s.unmatched_bones == (ghost,)
    still = MotionSampler(model, wave)
    moved = [i for i in range(len(model.bones)) if vmd_name_bytes(model.bones[i].name) in wave.bones.names[1:]]
    np.testing.assert_allclose(s.at(10).rotation[moved], still.at(10).rotation[moved])   # the others still play


# --- skinning ---------------------------------------------------------------------------------------

def test_sdef_equals_linear_blend_when_bones_rotate_alike():
    from udpgen.rig.skin import Skinner
    rng = np.random.default_rng(1)
    n = 50
    base = Model(bones=(Bone("a"), Bone("b", position=np.array([0, 1, 0], np.float32))),
                 positions=rng.random((n, 3)).astype(np.float32), normals=rng.random((n, 3)).astype(np.float32),
                 weight_types=np.full(n, WeightType.SDEF, np.uint8),
                 bone_indices=np.tile(np.array([0, 1, -1, -1], np.int32), (n, 1)),
                 bone_weights=np.column_stack([w := rng.random(n), 1 - w, np.zeros((n, 2))]).astype(np.float32),
                 sdef=rng.random((n, 3, 3)).astype(np.float32))
    S = np.tile(np.eye(4), (2, 1, 1))
    S[:, :3, :3] = Q.to_matrix(_rot([1, 1, 0], 40))
    S[0, :3, 3], S[1, :3, 3] = [0.1, 0.2, 0.3], [-0.5, 0.0, 0.4]
    sdef, _ = Skinner(base).skin(S, base.positions, base.normals)
    linear, _ = Skinner(dataclasses.replace(base, weight_types=np.full(n, WeightType.BDEF2, np.uint8))).skin(
        S, base.positions, base.normals)
    assert np.allclose(sdef, linear, atol=1e-9)


def test_skinning_matches_per_vertex_loop(sample, sample_dir):
    from udpgen.rig.skin import skin_reference_loop
    rig = Rig(sample)
    posed = rig.pose(MotionSampler(sample, load(sample_dir / "wave.vmd")).at(30))
    morphed = rig.morpher.apply(MotionSampler(sample, load(sample_dir / "wave.vmd")).at(30).morph_weights)[0]
    ref = skin_reference_loop(sample, posed.bones.skinning(), morphed)
    assert np.allclose(posed.positions, ref, atol=2e-5)          # float32 skinning vs a float64 loop


# --- canonical A-pose and landmarks -------------------------------------------------------------------

def test_gene_droop_and_canonical_angle(gene, sample):
    assert abs(canonicalize(Rig(gene)).droop_rest_deg[0] - 34.0) < 0.5
    for model in (gene, sample):
        rig = Rig(model)
        c = canonicalize(rig)
        droop = arm_droop_deg(rig.pose_bones(c.values).positions, rig.skeleton)
        assert np.allclose(droop, CANONICAL_ARM_DROOP_DEG, atol=1e-6)
        assert c.landmarks.dtype == np.float32 and c.landmarks.min() >= 0 and c.landmarks.max() <= 1
        # inside the box with a margin: the map clips nothing for ordinary characters
        assert 0 < c.landmarks.min() and c.landmarks.max() < 1


def test_canonical_frame_faces_plus_z(sample):
    rig = Rig(sample)
    c = canonicalize(rig)
    p = c.to_frame(c.positions)
    assert abs(p[:, 1].min()) < 0.01 and p[:, 1].max() > 1.0          # floor at 0, unit = neck height
    assert c.to_frame(rig.skeleton.rest[rig.skeleton.index("左腕")])[0] > 0     # the character's left is +X
    blink = next(m for m in sample.morphs if m.name == "まばたき").offsets["index"]     # the eyelids
    head = c.to_frame(rig.skeleton.rest[rig.skeleton.index("頭")])
    assert np.all(p[blink, 2] > head[2])                              # the face points to +Z


def test_scaled_copies_give_identical_landmarks(sample):
    k = 3.7
    scaled = dataclasses.replace(
        sample, positions=sample.positions * np.float32(k),
        bones=tuple(dataclasses.replace(b, position=b.position * np.float32(k), tail_offset=b.tail_offset * np.float32(k))
                    for b in sample.bones))
    a, b = canonicalize(Rig(sample)).landmarks, canonicalize(Rig(scaled)).landmarks
    assert np.abs(a - b).max() < 1e-5


def test_missing_bones_are_named():
    with pytest.raises(ModelError, match="センター.*左腕"):
        canonicalize(Rig(_chain_model(1.0)))


# --- rest-pose correction (T-posed models) ---------------------------------------------------------

def _t_posed(model: Model, rig: Rig) -> Model:
    """``model`` with both arms raised to horizontal in the rest pose (bones and the vertices they carry)."""
    sk = rig.skeleton
    bones = list(model.bones)
    pos = model.positions.astype(np.float64).copy()
    for upper, elbow, sign in (("左腕", "左ひじ", -1.0), ("右腕", "右ひじ", 1.0)):
        a, e = sk.index(upper), sk.index(elbow)
        d = sk.rest[e] - sk.rest[a]
        droop = math.atan2(-d[1], abs(d[0]))
        R = Q.to_matrix(Q.from_axis_angle(np.array([0, 0, 1.0]), -sign * droop))
        sub = sk.subtree(a)
        for i in sub:
            bones[i] = dataclasses.replace(bones[i], position=(R @ (sk.rest[i] - sk.rest[a]) + sk.rest[a]).astype(np.float32))
        carried = np.isin(model.bone_indices[:, 0], sub) & (model.bone_weights[:, 0] > 0.5)
        pos[carried] = (pos[carried] - sk.rest[a]) @ R.T + sk.rest[a]
    return dataclasses.replace(model, bones=tuple(bones), positions=pos.astype(np.float32))


def test_rest_correction_drives_a_t_posed_model_like_the_a_posed_one(sample, sample_dir):
    from udpgen.rig.retarget import rest_correction, retarget
    rig_a = Rig(sample)
    t_model = _t_posed(sample, rig_a)
    rig_t = Rig(t_model)
    assert np.allclose(arm_droop_deg(rig_t.pose_bones().positions, rig_t.skeleton), 0, atol=1e-4)
    assert rest_correction(rig_a, 37.0, threshold_deg=1.0) is None     # nothing to correct on the A model
    correction = rest_correction(rig_t, source_droop_deg=37.0)
    motion = load(sample_dir / "wave.vmd")
    for frame in (0, 25, 50):
        a = rig_a.pose_bones(MotionSampler(sample, motion).at(frame))
        values = retarget(MotionSampler(t_model, motion).at(frame), correction, rig_t.skeleton.parent)
        t = rig_t.pose_bones(values)
        assert np.allclose(a.positions, t.positions, atol=1e-4)
    # and the T model canonicalises to the same A-pose angle
    c = canonicalize(rig_t)
    assert np.allclose(arm_droop_deg(rig_t.pose_bones(c.values).positions, rig_t.skeleton), CANONICAL_ARM_DROOP_DEG)


def test_local_translation_grant_follows_the_source_head_not_its_rotation():
    """Local append of translation grants how far the source's head moved (babylon-mmd's
    AppendTransformSolver, saba): a source that only rotates leaves its follower in place."""
    f = int(BoneFlag.ROTATABLE | BoneFlag.TRANSLATABLE | BoneFlag.VISIBLE | BoneFlag.OPERABLE)
    g = f | BoneFlag.APPEND_TRANSLATE | BoneFlag.LOCAL_APPEND
    P = lambda *v: np.array(v, np.float32)      # noqa: E731
    bones = (Bone("root", position=P(0, 0, 0), flags=f), Bone("src", position=P(0, 2, 1), parent=0, flags=f),
             Bone("follower", position=P(1, 1, 0), parent=0, flags=g, append_parent=1, append_ratio=0.5, layer=1))
    rig = Rig(Model(bones=bones))
    v = rig.rest_values()
    v.rotation[1] = _rot([1, 2, 3], 70)
    moved = rig.pose_bones(v)
    assert np.allclose(moved.world[2], np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]]),
                       atol=1e-9)
    v.translation[1] = [0.4, 0, 0]
    moved = rig.pose_bones(v)
    assert np.allclose(moved.world[2, :3, 3], [1.2, 1, 0], atol=1e-9)       # half of the head's 0.4
