"""The random pose sampler (udpgen.rig.sampler) on Gene_light.pmx and the sample character.

First the sign conventions, found by experiment on the real rigs (pose one bone, see where its child
goes); then properties of sampled poses, measured on the posed skeleton: knees and elbows bend the
anatomical way only, feet stay on the floor, MMD's IK agrees with the sampler, hands rarely enter the
torso, poses are reproducible, varied and well formed.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from udpgen.errors import ModelError
from udpgen.mmd import load
from udpgen.rig import Rig
from udpgen.rig import quat as Q
from udpgen.rig.sampler import PoseSampler, SamplerSettings

FRONT = np.array([0.0, 0.0, -1.0])


@pytest.fixture(scope="module", params=["gene", "sample"])
def rig(request):
    if request.param == "gene":
        d = request.getfixturevalue("gene_dir")
        return Rig(load(d / "Gene_light.pmx"))
    return Rig(load(request.getfixturevalue("sample_dir") / "sample.pmx"))


def idx(rig, name):
    i = rig.skeleton.index(name)
    assert i >= 0, name
    return i


def turned(rig, name, axis, deg):
    """Bone heads (n, 3) with only ``name`` turned by ``deg`` about model ``axis`` (leg IK off)."""
    r = np.tile(Q.IDENTITY, (rig.skeleton.n, 1))
    r[idx(rig, name)] = Q.from_axis_angle(np.asarray(axis, float) / np.linalg.norm(axis), np.radians(deg))
    return rig.skeleton.pose(None, r, np.zeros(rig.skeleton.n, bool)).positions


def moved(rig, name, axis, deg, child):
    rest = rig.skeleton.rest[idx(rig, child)]
    return turned(rig, name, axis, deg)[idx(rig, child)] - rest


# ---- sign conventions in MMD's frame (left-handed, +Y up, facing -Z, her left at +X) -------------------
@pytest.mark.parametrize("side", ["左", "右"])
def test_leg_signs(rig, side):
    assert moved(rig, side + "ひざ", [1, 0, 0], -60, side + "足首")[2] > 2.0       # knee flexion: -X, ankle back
    assert moved(rig, side + "足", [1, 0, 0], 60, side + "ひざ")[2] < -2.0         # thigh flexion: +X, knee forward
    s = 1 if side == "左" else -1
    assert s * moved(rig, side + "足", [0, 0, s], 30, side + "ひざ")[0] > 1.0     # abduction: +Z left, -Z right
    toe = rig.skeleton.chains[idx(rig, side + "つま先ＩＫ")].target
    name = rig.skeleton.names[toe]
    assert moved(rig, side + "足首", [1, 0, 0], 20, name)[1] > 0.2               # dorsiflexion: +X, toes up
    assert s * moved(rig, side + "足首", [0, -s, 0], 30, name)[0] > 0.3          # toe-out: -Y left, +Y right


def test_spine_and_head_signs(rig):
    d = moved(rig, "上半身", [-1, 0, 0], 30, "首")                      # forward bend: -X
    assert d[2] < -1.0
    d = moved(rig, "上半身", [0, 0, -1], 30, "首")                      # side bend to her left: -Z
    assert d[0] > 1.0
    eyes = "左目"
    d = moved(rig, "頭", [-1, 0, 0], 30, eyes)                          # nod down: -X, eyes go down/forward
    assert d[1] < -0.2 and d[2] < -0.1


@pytest.mark.parametrize("side", ["左", "右"])
def test_arm_signs(rig, side):
    s = 1 if side == "左" else -1
    assert moved(rig, side + "ひじ", [0, s, 0], 60, side + "手首")[2] < -1.5      # elbow: +Y left / -Y right
    assert moved(rig, side + "肩", [0, 0, s], 20, side + "腕")[1] > 0.2          # shoulder raise: +Z left
    # the sampler's elbow hinge (rest forearm x front) is that axis, tilted with the A-pose droop
    sk = rig.skeleton
    fore = sk.rest[idx(rig, side + "手首")] - sk.rest[idx(rig, side + "ひじ")]
    axis = np.cross(fore, FRONT)
    assert np.dot(axis, [0, s, 0]) > 0.7 * np.linalg.norm(axis)
    assert moved(rig, side + "ひじ", axis, 90, side + "手首")[2] < -2.0


def test_fingers_curl_towards_the_palm(gene_dir):
    rig = Rig(load(gene_dir / "Gene_light.pmx"))
    sk = rig.skeleton
    for side, s in (("左", 1), ("右", -1)):
        wrist, tip = idx(rig, side + "手首"), idx(rig, side + "人指先")
        hand = sk.rest[idx(rig, side + "中指１")] - sk.rest[wrist]
        palm = s * np.cross(hand, sk.rest[idx(rig, side + "小指１")] - sk.rest[idx(rig, side + "人指１")])
        palm /= np.linalg.norm(palm)
        assert palm[1] < -0.8 and s * palm[0] < -0.3                    # A-pose palms face down and in
        for v in PoseSampler(rig, SamplerSettings(grip=1.0)).sample_many(9, 6):
            W = sk.pose(v.translation, v.rotation, v.ik_enabled).world
            local = np.linalg.inv(W[wrist]) @ np.r_[W[tip][:3, 3], 1]      # tip in the wrist's frame
            assert np.dot(local[:3] - (sk.rest[tip] - sk.rest[wrist]), palm) >= -1e-9


# ---- sampled poses ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def posed(rig):
    """40 default poses and their evaluated bones."""
    values = PoseSampler(rig).sample_many(11, 40)
    return values, [rig.skeleton.pose(v.translation, v.rotation, v.ik_enabled) for v in values]


def leg_ids(rig, side):
    sk = rig.skeleton
    return (idx(rig, side + "足"), idx(rig, side + "ひざ"), idx(rig, side + "足首"),
            sk.chains[idx(rig, side + "つま先ＩＫ")].target)


def signed_angle(u, v, axis):
    """Degrees from u to v about unit ``axis`` (positive: u turns towards axis x u)."""
    return np.degrees(np.arctan2(np.dot(axis, np.cross(u, v)), np.dot(u, v)))


def test_well_formed(rig, posed):
    n, m = rig.skeleton.n, len(rig.model.morphs)
    for v in posed[0]:
        assert v.translation.shape == (n, 3) and v.rotation.shape == (n, 4) and v.ik_enabled.shape == (n,)
        assert v.morph_weights.shape == (m,) and not v.morph_weights.any()
        assert np.isfinite(v.translation).all() and np.isfinite(v.rotation).all()
        assert np.allclose(np.linalg.norm(v.rotation, axis=1), 1.0, atol=1e-9)
    assert all(np.isfinite(b.world).all() for b in posed[1])


def test_knees_bend_backwards_only(rig, posed):
    for bones in posed[1]:
        P, W = bones.positions, bones.world
        lower = W[idx(rig, "下半身"), :3, :3]
        for side in "左右":
            hip, knee, ankle, _ = leg_ids(rig, side)
            hinge = W[hip, :3, :3] @ [1.0, 0, 0]                   # the knee turns about its parent's X
            flex = -signed_angle(P[knee] - P[hip], P[ankle] - P[knee], hinge)
            assert -0.5 < flex < 152
            assert np.dot(hinge, lower @ [1.0, 0, 0]) > 0.5        # kneecap within 60 degrees of the hips' front


def test_elbows_never_hyperextend(rig, posed):
    sk = rig.skeleton
    for bones in posed[1]:
        P, W = bones.positions, bones.world
        for side in "左右":
            el, wr = idx(rig, side + "ひじ"), idx(rig, side + "手首")
            fore = sk.rest[wr] - sk.rest[el]
            R = W[sk.parent[el], :3, :3]
            hinge = np.cross(fore, FRONT - np.dot(FRONT, fore) * fore / np.dot(fore, fore))
            flex = signed_angle(R @ fore, P[wr] - P[el], R @ hinge / np.linalg.norm(hinge))
            assert -1.0 < flex < 146


def test_leg_ik_agrees_with_the_sampler(rig, posed):
    """The IK bones sit exactly where the sampled leg rotations put ankle and toes: MMD's solver, left on,
    changes nothing (posing with the leg IK switched off gives the same skeleton)."""
    sk = rig.skeleton
    iks = [idx(rig, s + n) for s in "左右" for n in ("足ＩＫ", "つま先ＩＫ")]
    for v, bones in list(zip(*posed))[:15]:
        assert v.ik_enabled[iks].all()
        off = v.ik_enabled.copy()
        off[iks] = False
        assert np.allclose(sk.pose(v.translation, v.rotation, off).world, bones.world, atol=1e-6)


def floor_points(rig, bones, side):
    """Lowest sole points: the toe and the point below the ankle (heel)."""
    _, _, ankle, toe = leg_ids(rig, side)
    heel = bones.world[ankle] @ [0, -rig.skeleton.rest[ankle, 1], 0, 1]           # world maps head-relative points
    return bones.positions[toe, 1], heel[1]


def test_planted_feet_stay_on_the_floor(rig):
    for legs in ("ik", "fk"):
        sampler = PoseSampler(rig, SamplerSettings(legs=legs, lift_foot_prob=0.0, crouch_prob=0.3, sit_prob=0.2))
        for v in sampler.sample_many(3, 12):
            bones = rig.skeleton.pose(v.translation, v.rotation, v.ik_enabled)
            for side in "左右":
                assert np.allclose(floor_points(rig, bones, side), 0.0, atol=0.06)      # flat on the floor


@pytest.mark.parametrize("legs", ["ik", "fk"])
def test_lifted_foot(rig, legs):
    sampler = PoseSampler(rig, SamplerSettings(legs=legs, lift_foot_prob=1.0, crouch_prob=0, sit_prob=0,
                                               symmetric_prob=0))
    for v in sampler.sample_many(4, 10):
        bones = rig.skeleton.pose(v.translation, v.rotation, v.ik_enabled)
        low = sorted(min(floor_points(rig, bones, s)) for s in "左右")
        assert abs(low[0]) < 0.06 and low[1] > 0.3                  # one foot planted, one clearly up
        assert v.ik_enabled[idx(rig, "左足ＩＫ")] == (legs == "ik")


def test_hands_rarely_inside_the_torso(rig, posed):
    sk = rig.skeleton
    chest = idx(rig, "上半身2")
    rx = 0.8 * abs(sk.rest[idx(rig, "左腕"), 0])
    y0, y1 = sk.rest[idx(rig, "左足"), 1], sk.rest[idx(rig, "左腕"), 1]
    inside = 0
    for bones in posed[1]:
        W = bones.world[chest]
        for side in "左右":
            p = W[:3, :3].T @ (bones.positions[idx(rig, side + "手首")] - W[:3, 3]) + sk.rest[chest]
            inside += (p[0] / rx) ** 2 + ((p[2] - sk.rest[chest, 2]) / (0.5 * rx)) ** 2 < 1 and y0 < p[1] < y1
    assert inside <= 0.1 * 2 * len(posed[1])


def test_diverse(rig, posed):
    wrists = np.array([[b.positions[idx(rig, s + "手首")] for s in "左右"] for b in posed[1]])
    assert (wrists.std(0) > 1.0).all()                          # > 8 cm in every axis, both hands
    heads = np.array([b.world[idx(rig, "頭"), :3, :3] @ FRONT for b in posed[1]])
    assert (heads[:, [0, 1]].std(0) > 0.15).all()
    centre = np.array([v.translation[idx(rig, "センター")] for v in posed[0]])
    assert centre[:, 1].std() > 0.5                              # standing, crouching, sitting


def test_reproducible(rig):
    sampler = PoseSampler(rig)
    a, b = sampler.sample_many(5, 6), sampler.sample_many(5, 6)
    sampler.sample(np.random.default_rng(99))                   # call history does not matter
    c = sampler.sample_many(5, 3)
    for x, y in zip(a, b):
        for f in ("translation", "rotation", "ik_enabled"):
            assert np.array_equal(getattr(x, f), getattr(y, f))
    for x, y in zip(a, c):
        assert np.array_equal(x.rotation, y.rotation) and np.array_equal(x.translation, y.translation)
    d = sampler.sample_many(6, 6)
    assert all(not np.allclose(x.rotation, y.rotation) for x, y in zip(a, d))
    assert not np.allclose(a[0].rotation, a[1].rotation)
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    assert np.array_equal(sampler.sample(g1).rotation, sampler.sample(g2).rotation)


def test_symmetric_poses_are_mirrored(rig):
    sk = rig.skeleton
    v = PoseSampler(rig, SamplerSettings(symmetric_prob=1.0)).sample_many(2, 4)
    for pose in v:
        P = sk.pose(pose.translation, pose.rotation, pose.ik_enabled).positions
        for name in ("手首", "ひじ", "足首", "ひざ"):
            left, right = P[idx(rig, "左" + name)], P[idx(rig, "右" + name)]
            assert np.allclose(left * [-1, 1, 1], right, atol=0.08), name     # Gene is symmetric to ~0.03


def test_amplitude_zero_is_the_rest_pose(rig):
    v = PoseSampler(rig, SamplerSettings(amplitude=0.0)).sample(np.random.default_rng(1))
    P = rig.skeleton.pose(v.translation, v.rotation, v.ik_enabled).positions
    assert np.abs(P - rig.skeleton.rest).max() < 0.05


def test_settings_are_validated():
    for field, value in (("amplitude", 1.5), ("symmetric_prob", -0.1), ("legs", "both"), ("look_deg", 120),
                         ("tries", 0), ("grip", float("nan")), ("crouch_prob", "0.2")):
        with pytest.raises(ValueError, match=f"{field} = {value!r}".replace("(", r"\(").replace(")", r"\)")):
            SamplerSettings(**{field: value})
    with pytest.raises(ValueError, match="crouch_prob"):
        SamplerSettings(crouch_prob=0.5, sit_prob=0.4, lift_foot_prob=0.3)


def test_missing_core_bones(sample_dir):
    model = load(sample_dir / "sample.pmx")
    bones = tuple(dataclasses.replace(b, name="x" + b.name) if b.name in ("センター", "右足") else b
                  for b in model.bones)
    with pytest.raises(ModelError, match="センター, 右足"):
        PoseSampler(dataclasses.replace(model, bones=bones))


def test_optional_bones_are_skipped(sample_dir):
    model = load(sample_dir / "sample.pmx")             # no fingers; drop eyes, neck, shoulders, twists too
    gone = {"首", "左目", "右目", "両目", "左肩", "右肩", "左腕捩", "右腕捩", "左手捩", "右手捩", "上半身2"}
    bones = tuple(dataclasses.replace(b, name="x" + b.name) if b.name in gone else b for b in model.bones)
    rig = Rig(dataclasses.replace(model, bones=bones))
    for v in PoseSampler(rig).sample_many(1, 5):
        assert np.isfinite(rig.skeleton.pose(v.translation, v.rotation, v.ik_enabled).world).all()


def t_posed(model):
    """``model`` with the arms raised about the 腕 heads into a T-pose (bones, and twist axes, only)."""
    bones = list(model.bones)
    for side, sign in (("左", 1.0), ("右", -1.0)):
        arm = model.bone_index(side + "腕")
        down = bones[model.bone_index(side + "ひじ")].position - bones[arm].position
        R = Q.to_matrix(Q.from_axis_angle(np.array([0, 0, sign]), np.arctan2(-down[1], abs(down[0]))))
        for i in Rig(model).skeleton.subtree(arm):
            b = bones[i]
            axis = None if b.fixed_axis is None else (R @ b.fixed_axis).astype(np.float32)
            pos = (R @ (b.position - bones[arm].position) + bones[arm].position).astype(np.float32)
            bones[i] = dataclasses.replace(b, position=pos, fixed_axis=axis)
    return dataclasses.replace(model, bones=tuple(bones))


def test_a_and_t_pose_models_get_the_same_arm_directions(rig):
    """Upper arms are aimed in the torso frame, not relative to the rest droop: a T-posed copy of the
    model gets the same world upper-arm directions from the same seed."""
    t_rig = Rig(t_posed(rig.model))
    sk, tk = rig.skeleton, t_rig.skeleton
    assert abs(tk.rest[idx(t_rig, "左ひじ"), 1] - tk.rest[idx(t_rig, "左腕"), 1]) < 1e-4     # really a T-pose
    settings = SamplerSettings(tries=1)
    for a, b in zip(PoseSampler(rig, settings).sample_many(8, 6), PoseSampler(t_rig, settings).sample_many(8, 6)):
        pa = sk.pose(a.translation, a.rotation, a.ik_enabled).positions
        pb = tk.pose(b.translation, b.rotation, b.ik_enabled).positions
        for side in "左右":
            da, db = (p[idx(rig, side + "ひじ")] - p[idx(rig, side + "腕")] for p in (pa, pb))
            assert np.allclose(da / np.linalg.norm(da), db / np.linalg.norm(db), atol=1e-5)


def test_fast(rig):
    sampler = PoseSampler(rig)
    rngs = [np.random.default_rng(i) for i in range(30)]
    t = time.perf_counter()
    for g in rngs:
        sampler.sample(g)
    assert (time.perf_counter() - t) / len(rngs) < 5e-3          # ~0.6 ms here; loose for busy CI machines
