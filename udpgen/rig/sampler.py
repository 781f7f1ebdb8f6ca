"""Random natural full-body poses for humanoid MMD skeletons (seeded, reproducible).

``PoseSampler(model).sample(rng)`` returns a :class:`~udpgen.rig.motion.FramePose` (animation values relative
to the rest pose, MMD's frame) built from anatomical joint angles, so the same settings suit A- and T-pose
models. Standard bone names are matched exactly; optional bones that a model lacks are skipped.

Sign conventions, found by posing Gene_light.pmx and the sample character (tests/test_sampler.py keeps
them checked). MMD frame: left-handed, +Y up, the model faces -Z, her left at +X. A rotation by +angle
about unit axis k moves a vector v towards k x v, so the axis that turns direction u towards w is u x w:

* thigh flexion (knee forward, -Z): +X;  knee flexion (ankle back, +Z): -X, as MMD's knee IK limits say;
* ankle dorsiflexion (toes up): +X;  left foot toe-out: -Y (right: +Y);
* torso / head bending forward (nodding down): -X;  side bend to her left: -Z;
* left elbow flexion (wrist to the front): about rest-forearm x front, i.e. +Y for a T-pose arm; right: -Y;
* left shoulder raise: +Z; left leg abduction: +Z (right: -Z for both);
* fingers curl about (finger direction x palm normal); palm normal = hand x (小指１ - 人指１) on the left,
  its negative on the right (mirror images): Gene's A-pose palms face down and in, (-+0.49, -0.87, 0).

Upper arms are placed by a target direction in the torso frame (elevation from hanging down, plane angle
from sideways to forwards), reached by the shortest arc from the bone's own rest direction, then twisted
about the arm axis; elbows, wrists and fingers turn about hinge axes built from the rest geometry. Arm
candidates whose elbow, forearm or hand would enter a rough torso cylinder or head ball are redrawn.

Legs: the feet are planned first (on the floor, y = 0, around the body: standing, crouching, sitting on an
unseen chair, or one foot lifted), the centre is lowered and shifted over the weight-bearing foot, and each
leg is solved analytically (kneecap over the toes, knee flexion 1..150 degrees and inside the model's knee
IK limit). The leg and toe IK bones are then moved exactly where that solution puts ankle and toes, so with
legs="ik" (the default) MMD's IK, left on, changes nothing; bare CCD from the targets alone would leave the
knee's swivel to chance. legs="fk" switches the leg IK bones off and lets a lifted leg take free anatomical
angles (kicks, knee raises, a leg behind).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from udpgen.errors import ModelError
from udpgen.settings import check_settings, fail, setting
from udpgen.mmd.model import Model
from udpgen.rig import quat as Q
from udpgen.rig.motion import FramePose
from udpgen.rig.skeleton import Skeleton

CORE_BONES = ("センター", "上半身", "左腕", "右腕", "左足", "右足")
_X, _Y, _Z = np.eye(3)
_UP, _FRONT = _Y, -_Z
_SIDES = (("左", 1.0), ("右", -1.0))
_FINGERS = (("親指０", "親指１", "親指２"), ("人指１", "人指２", "人指３"), ("中指１", "中指２", "中指３"),
            ("薬指１", "薬指２", "薬指３"), ("小指１", "小指２", "小指３"))
_CURL = ((15.0, 30.0, 45.0), (70.0, 95.0, 65.0))     # degrees at full grip: thumb joints, other fingers


@dataclass(frozen=True)
class SamplerSettings:
    """What :class:`PoseSampler` draws. Angles in degrees; probabilities per pose.

    amplitude: 0 = the rest pose, 1 = the full natural ranges (every angle and offset is scaled about rest).
    symmetric_prob: both sides take the same anatomical values (a mirror-symmetric pose).
    crouch_prob / sit_prob / lift_foot_prob: stance of the legs (else standing); sit = on an unseen chair.
    legs: "ik" (feet planted on the floor, leg IK bones on and consistent) or "fk" (free leg angles, IK off).
    look_deg: largest head turn left/right; eye_deg: largest eye turn.
    grip: largest finger curl, 0 (open hands) .. 1 (fists). tries: candidates per arm against torso hits.
    """
    amplitude: float = setting(1.0, low=0, high=1)
    symmetric_prob: float = setting(0.15, low=0, high=1)
    crouch_prob: float = setting(0.15, low=0, high=1)
    sit_prob: float = setting(0.1, low=0, high=1)
    lift_foot_prob: float = setting(0.15, low=0, high=1)
    legs: str = setting("ik", choices=("ik", "fk"))
    look_deg: float = setting(60.0, low=0, high=90)
    eye_deg: float = setting(15.0, low=0, high=45)
    grip: float = setting(1.0, low=0, high=1)
    tries: int = setting(8, kind=int, low=1, high=64)

    def __post_init__(self):
        check_settings(self)
        total = self.crouch_prob + self.sit_prob + self.lift_foot_prob
        if total > 1 + 1e-9:
            fail(self, "crouch_prob + sit_prob + lift_foot_prob", total, "at most 1")


# Hamilton product, vector rotation and cross product as einsums over constant tensors: one numpy call each
# instead of a dozen (sampling is dominated by per-call overhead on these tiny arrays).
_E4 = np.eye(4)
_QMUL = np.stack([Q.mul(_E4[i], _E4) for i in range(4)])                  # (a b)_j = a_i b_k M_ikj
_R1 = Q.to_matrix(_E4)
_QROT = Q.to_matrix((_E4[:, None] + _E4[None]) / math.sqrt(2)) - 0.5 * (_R1[:, None] + _R1[None])
_QROT[range(4), range(4)] = _R1                                           # R(q)_jc = q_a q_b T_abjc
_EPS = np.zeros((3, 3, 3))
_EPS[[0, 1, 2], [1, 2, 0], [2, 0, 1]], _EPS[[0, 2, 1], [2, 1, 0], [1, 0, 2]] = 1.0, -1.0


def _qmul(a, b) -> np.ndarray:
    """Q.mul (a after b), broadcasting."""
    return np.einsum("...i,...k,ikj->...j", a, b, _QMUL)


def _rot(q, v) -> np.ndarray:
    """Q.rotate for unit q, broadcasting."""
    q = np.asarray(q, np.float64)
    return np.einsum("...ab,abjc,...c->...j", q[..., :, None] * q[..., None, :], _QROT, v)


def _cross(a, b) -> np.ndarray:
    return np.einsum("...i,...j,ijk->...k", a, b, _EPS)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _arc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest-arc rotation(s) taking unit a to unit b (never asked for opposite vectors here)."""
    a, b = np.broadcast_arrays(a, b)
    return Q.normalize(np.concatenate([_cross(a, b), 1.0 + np.sum(a * b, -1, keepdims=True)], -1))


def _ortho(v: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Unit part of v perpendicular to unit n."""
    return _unit(v - np.sum(v * n, -1, keepdims=True) * n)


class PoseSampler:
    """Draws natural random poses for one humanoid model. Build once (accepts a Model or a Rig); then
    :meth:`sample` costs well under a millisecond."""

    def __init__(self, model_or_rig, settings: SamplerSettings = SamplerSettings()):
        model: Model = getattr(model_or_rig, "model", model_or_rig)
        self.model, self.settings = model, settings
        self.skeleton = sk = getattr(model_or_rig, "skeleton", None) or Skeleton(model)
        missing = [n for n in CORE_BONES if sk.index(n) < 0]
        if missing:
            raise ModelError(f"{model.path or model.name or 'model'}: not a humanoid MMD skeleton, missing "
                             f"standard bones: {', '.join(missing)}")
        self.n, self.n_morphs, self.rest = sk.n, len(model.morphs), sk.rest
        rest, b = sk.rest, sk.index
        self.centre, self.lower = b("センター"), b("下半身")
        # body joints: (bone, which angle triple, share of it); eyes turn together
        self.body = [(i, g, w) for i, g, w in ((b("上半身"), 0, 0.6), (b("上半身2"), 0, 0.4),
                                               (self.lower, 1, 1.0), (b("首"), 2, 0.35), (b("頭"), 2, 0.65)) if i >= 0]
        if b("上半身2") < 0:
            self.body[0] = (self.body[0][0], 0, 1.0)
        self.eyes = [i for i in (b("左目"), b("右目")) if i >= 0] or [i for i in (b("両目"),) if i >= 0]
        self.arms = [self._arm(p, s) for p, s in _SIDES]
        self.arm_geo = {k: np.stack([a[k] for a in self.arms])[:, None] for k in self.arms[0] if k.startswith("g_")}
        self.legs = [self._leg(p, s) for p, s in _SIDES]
        self.leg_geo = {k: np.stack([g[k] for g in self.legs]) for k in ("t", "sv", "k0", "k1", "psi", "flex")}
        # legs hang from 下半身 (turned about its head); the centre is the only translated bone above it
        self.centre_moves_legs = b("左足") in set(sk.subtree(self.centre).tolist())
        self.hip_base = rest[self.lower] if self.lower >= 0 else np.zeros(3)
        span = abs(rest[b("左腕"), 0] - rest[b("右腕"), 0])
        # rough torso cylinder and head ball (upper-body rest frame) that elbows and hands should stay out
        # of: Gene: torso half width 0.96 x half depth 0.59, head centre 0.9 above 頭 with radius 1.2
        self.torso_r = np.array([0.36 * span, 0.22 * span])
        self.torso_c = rest[b("上半身2") if b("上半身2") >= 0 else b("上半身"), 2]
        self.torso_y = (rest[b("左足"), 1] - 0.1 * self.legs[0]["len"], rest[b("左腕"), 1])
        top = next(i for i in (b("頭"), b("首"), b("上半身")) if i >= 0)
        self.head_c, self.head_r = rest[top] + [0, 0.35 * span, 0], 0.45 * span

    # ---- geometry gathered once (rest pose, model frame) ----------------------------------------------
    def _arm(self, p: str, s: float) -> dict:
        sk, rest, b = self.skeleton, self.skeleton.rest, self.skeleton.index
        ids = {k: b(p + n) for k, n in (("sh", "肩"), ("arm", "腕"), ("tw", "腕捩"), ("el", "ひじ"), ("ftw", "手捩"),
                                        ("wr", "手首"))}
        if ids["el"] < 0 or ids["wr"] < 0:
            raise ModelError(f"{self.model.path or 'model'}: missing standard bones: {p}ひじ / {p}手首")

        def above(i, j):            # i is an ancestor of j
            return i >= 0 and j in set(sk.subtree(i).tolist())

        # a twist bone off the limb's chain (or without a fixed axis) cannot twist it: fold into its parent
        for k, below in (("tw", "el"), ("ftw", "wr")):
            if not (above(ids[k], ids[below]) and sk.has_fixed_axis[ids[k]]):
                ids[k] = -1
        if not above(ids["sh"], ids["arm"]):
            ids["sh"] = -1
        pos = {k: rest[i] for k, i in ids.items() if i >= 0}
        pos.setdefault("sh", pos["arm"])
        pos.setdefault("tw", pos["arm"])
        pos.setdefault("ftw", pos["el"])
        up, fore = _unit(pos["el"] - pos["arm"]), _unit(pos["wr"] - pos["el"])
        mid, idx, pinky = b(p + "中指１"), b(p + "人指１"), b(p + "小指１")
        hand = _unit(rest[mid] - pos["wr"]) if mid >= 0 else fore
        # palm normal from the finger spread; the cross product flips with the side (mirror images)
        palm = _ortho(s * _cross(hand, rest[pinky] - rest[idx]), hand) if idx >= 0 and pinky >= 0 \
            else _ortho(-_UP, hand)
        sh_lat = _unit(pos["arm"] - pos["sh"]) if ids["sh"] >= 0 else np.array([s, 0.0, 0.0])
        fixed = lambda k, ref: sk.fixed_axis[ids[k]] * np.sign(sk.fixed_axis[ids[k]] @ ref) if ids[k] >= 0 else ref
        # hinge axes (a +angle turns the first vector towards the second): twist, elbow (forearm -> front),
        # forearm twist, wrist flexion (hand -> palm), wrist deviation, shoulder raise (-> up) and forward
        axes = np.stack([fixed("tw", up), _unit(_cross(fore, _ortho(_FRONT, fore))), fixed("ftw", fore),
                         _unit(_cross(hand, palm)), palm, _unit(_cross(sh_lat, _UP)), _unit(_cross(sh_lat, _FRONT))])
        fingers = []                                 # (bone, curl axis, degrees at full grip)
        for k, names in enumerate(_FINGERS):
            for j, i in enumerate(b(p + n) for n in names):
                if i >= 0:
                    tip = rest[sk.children[i][0]] if sk.children[i] else rest[i] + hand
                    fingers.append((i, _unit(_cross(_unit(tip - rest[i]), palm)), _CURL[min(k, 1)][j]))
        seg = [pos["arm"] - pos["sh"], pos["tw"] - pos["arm"], pos["el"] - pos["tw"], pos["ftw"] - pos["el"],
               pos["wr"] - pos["ftw"], 0.3 * np.linalg.norm(pos["wr"] - pos["el"]) * hand]
        rest_dir = [math.degrees(math.acos(np.clip(-up @ _UP, -1, 1))),      # elevation, plane (degrees)
                    math.degrees(math.atan2(up @ _FRONT, s * up[0]))]
        bones, curl_axes, curl = (np.array([f[0] for f in fingers], np.int64),
                                  np.reshape([f[1] for f in fingers], (-1, 3)), np.array([f[2] for f in fingers]))
        return {"ids": ids, "s": s, "rest_dir": rest_dir, "fingers": (bones, curl_axes, curl),
                "g_up": up, "g_lat": np.array([s, 0.0, 0.0]), "g_axes": axes, "g_sign": np.array([s, 1, s, 1, s, 1, 1]),
                "g_sh": pos["sh"], "g_seg": np.stack(seg), "g_twf": float(ids["tw"] < 0),
                "g_ftwf": float(ids["ftw"] < 0)}

    def _leg(self, p: str, s: float) -> dict:
        sk, rest, b = self.skeleton, self.skeleton.rest, self.skeleton.index
        g = {"s": s, "hip": b(p + "足"), "knee": b(p + "ひざ"), "ankle": b(p + "足首"), "ik": b(p + "足ＩＫ"),
             "toe_ik": b(p + "つま先ＩＫ")}
        if g["knee"] < 0 or g["ankle"] < 0:
            raise ModelError(f"{self.model.path or 'model'}: missing standard bones: {p}ひざ / {p}足首")
        chain = sk.chains.get(g["toe_ik"])
        toe = chain.target if chain is not None else max(b(p + "つま先"), b(p + "足先"))
        g["toe"] = rest[toe] - rest[g["ankle"]] if toe >= 0 else np.array([0.0, -rest[g["ankle"], 1], -1.0])
        t, sv = rest[g["knee"]] - rest[g["hip"]], rest[g["ankle"]] - rest[g["knee"]]
        g.update(t=t, sv=sv, len=float(np.linalg.norm(t) + np.linalg.norm(sv)))
        # the knee turns about X: |t + Rx(-f) sv|^2 = k0 + k1 cos(f - psi), psi = the f of a straight leg
        g["k0"] = t @ t + sv @ sv + 2 * t[0] * sv[0]
        g["k1"] = 2 * math.hypot(t[1], t[2]) * math.hypot(sv[1], sv[2])
        g["psi"] = (math.atan2(sv[2], sv[1]) - math.atan2(t[2], t[1]) + math.pi) % (2 * math.pi) - math.pi
        lo = g["psi"] + math.radians(1.0)
        ik = sk.chains.get(g["ik"])
        for link in ik.links if ik is not None else ():
            if link.bone == g["knee"] and link.lower is not None:
                lo = max(lo, -float(link.upper[0]) + 1e-3)   # stay inside the model's knee IK limit
        g["flex"] = np.array([lo, g["psi"] + math.radians(150.0)])
        g["heel"] = np.array([0.0, -rest[g["ankle"], 1], 0.0])          # ankle -> floor below it at rest
        g["toe_t"] = g["toe"] - (rest[g["toe_ik"]] - rest[g["ik"]]) if min(g["ik"], g["toe_ik"]) >= 0 else None
        return g

    # ---- sampling ---------------------------------------------------------------------------------------
    def sample_many(self, seed: int, count: int) -> list[FramePose]:
        """``count`` poses; pose i depends only on (seed, i) (child i of ``SeedSequence(seed)``)."""
        return [self.sample(np.random.default_rng(c)) for c in np.random.SeedSequence(seed).spawn(count)]

    def sample(self, rng: np.random.Generator) -> FramePose:
        """One pose: translation (n, 3) MMD units and unit rotations (n, 4) (x, y, z, w), both relative to
        the rest pose in each bone's parent frame; ik_enabled (n,); morph weights (m,), all zero."""
        st, amp = self.settings, self.settings.amplitude
        t, r, ik = np.zeros((self.n, 3)), np.tile(Q.IDENTITY, (self.n, 1)), np.ones(self.n, bool)
        sym = rng.random() < st.symmetric_prob
        u = rng.random() - st.crouch_prob
        stance = ("crouch" if u < 0 else "sit" if u < st.sit_prob
                  else "lift" if u < st.sit_prob + st.lift_foot_prob and not sym else "stand")
        # (forward bend, side bend to her left, twist) of spine, pelvis and neck+head; crouching leans forward
        e = rng.uniform([-12, -12, -25, -8, -6, -15, -25, -15, -st.look_deg],
                        [25, 12, 25, 8, 6, 15, 35, 15, st.look_deg]).reshape(3, 3)
        e[0, 0] += rng.uniform(10, 35) if stance == "crouch" else 0.0
        if sym:
            e[:, 1:] = 0.0
        ang = np.array([e[g] * w for _, g, w in self.body] + [[0, 0, 0]]) * amp
        eye = amp * st.eye_deg * rng.uniform([-0.6, -1.0], [0.6, 1.0])
        ang[-1] = [eye[0], 0.0, eye[1]]
        rad = np.radians(ang)
        q = _qmul(_qmul(Q.from_axis_angle(_Y, rad[:, 2]), Q.from_axis_angle(-_Z, rad[:, 1])),
                  Q.from_axis_angle(-_X, rad[:, 0]))
        r[[i for i, _, _ in self.body]] = q[:-1]
        r[self.eyes] = q[-1]
        self._arms(rng, r, sym)
        self._legs(rng, t, r, ik, stance, sym)
        return FramePose(t, Q.normalize(r), ik, np.zeros(self.n_morphs))

    def _arms(self, rng, r: np.ndarray, sym: bool) -> None:
        """Both arms at once, ``tries`` candidates each; the first clear of torso and head wins.

        Parameters (degrees): elevation 10..170 from hanging (90 = horizontal), plane -40..120 (0 = sideways,
        90 = forwards, beyond = across the chest), humeral twist +-50, elbow flexion 0..145, forearm twist
        +-60, wrist flexion +-45, deviation +-20, shoulder raise -5..12 (+ more with the arm overhead),
        shoulder forward +-10; fingers curl by one grip 0..1 per hand."""
        amp, k, G = self.settings.amplitude, self.settings.tries, self.arm_geo
        p = rng.uniform(0, 1, (2, k, 9))
        p[..., 0] = 10 + 160 * rng.beta(1.4, 2.0, (2, k))            # mostly below the horizontal
        p[..., 1] = -40 + 160 * rng.beta(1.6, 1.6, (2, k))
        p[..., 3] = 145 * rng.beta(1.1, 1.6, (2, k))
        p[..., [2, 4, 5, 6, 7, 8]] = np.array([-50, -60, -45, -20, -5, -10]) + p[..., [2, 4, 5, 6, 7, 8]] * \
            np.array([100, 120, 90, 40, 17, 20])
        p[..., 7] += np.clip(p[..., 0] - 90, 0, None) / 6             # overhead arms lift the shoulder
        if sym:
            p[1] = p[0]
        p *= amp
        p[..., :2] += (1 - amp) * np.array([a["rest_dir"] for a in self.arms])[:, None]   # 0: rest direction
        al, be = np.radians(p[..., :1]), np.radians(p[..., 1:2])
        d = -np.cos(al) * _UP + np.sin(al) * (np.cos(be) * G["g_lat"] + np.sin(be) * _FRONT)
        swing = _arc(G["g_up"], d)                                    # (2, k, 4)
        ax = Q.from_axis_angle(G["g_axes"], np.radians(p[..., [2, 3, 4, 5, 6, 7, 8]] * G["g_sign"]))
        twf, ftwf = G["g_twf"][..., None], G["g_ftwf"][..., None]
        tw, el, ftw = ax[:, :, 0], ax[:, :, 1], ax[:, :, 2]
        q_arm = twf * _qmul(swing, tw) + (1 - twf) * swing           # no twist bone: twist the arm itself
        q_tw = twf * Q.IDENTITY + (1 - twf) * tw
        q_el = ftwf * _qmul(el, ftw) + (1 - ftwf) * el
        q_ftw = ftwf * Q.IDENTITY + (1 - ftwf) * ftw
        q_wr, q_sh = _qmul(ax[:, :, 3], ax[:, :, 4]), _qmul(ax[:, :, 5], ax[:, :, 6])
        roles = (("sh", q_sh), ("arm", q_arm), ("tw", q_tw), ("el", q_el), ("ftw", q_ftw), ("wr", q_wr))
        # elbow, mid-forearm, wrist and a point in the hand, in the upper body's rest frame
        R, seg = Q.to_matrix(np.stack([q for _, q in roles])), G["g_seg"]
        A, pos, pts = R[0], np.broadcast_to(G["g_sh"], (2, k, 3)), []
        for j in range(6):
            pos = pos + np.einsum("skij,sj->ski", A, seg[:, 0, j])
            if j in (2, 4, 5):
                pts.append(pos)
            if j < 5:
                A = A @ R[j + 1]
        P = np.stack(pts + [0.5 * (pts[0] + pts[1])], 2)               # (2, k, 4, 3)
        ell = (P[..., 0] / self.torso_r[0]) ** 2 + ((P[..., 2] - self.torso_c) / self.torso_r[1]) ** 2
        inside = (P[..., 1] > self.torso_y[0]) & (P[..., 1] < self.torso_y[1])
        head = 1.0 - np.sum((P - self.head_c) ** 2, -1) / self.head_r ** 2
        hit = np.maximum(np.where(inside, 1.0 - ell, -1.0), head).max(-1)    # (2, k): > 0 inside
        if sym:
            hit[:] = hit.max(0)
        grip = self.settings.grip * amp * rng.uniform(0, 1, 2) ** 0.7
        if sym:
            grip[1] = grip[0]
        for side, a in enumerate(self.arms):
            ok = np.flatnonzero(hit[side] <= 0)
            j = ok[0] if ok.size else int(np.argmin(hit[side]))
            for role, q in roles:
                if a["ids"][role] >= 0:
                    r[a["ids"][role]] = q[side, j]
            bones, axes, deg = a["fingers"]
            r[bones] = Q.from_axis_angle(axes, np.radians(grip[side] * deg))

    # ---- legs ------------------------------------------------------------------------------------------
    def _solve_legs(self, q_par, hips, ankles, caps, q_foot):
        """Analytic two-bone legs (both at once): local rotations of thighs, knees, ankles (2, 4) putting
        the ankles at world ``ankles`` (2, 3), kneecaps turned towards world ``caps`` (2, 3), feet at world
        rotations ``q_foot`` (2, 4). Knee flexion is clamped to 1..150 degrees (and the model's IK limit);
        returns also the ankles actually reached."""
        G = self.leg_geo
        w = _rot(Q.conj(q_par), ankles - hips)
        dist = np.linalg.norm(w, axis=-1)
        c = np.clip((dist ** 2 - G["k0"]) / G["k1"], -1, 1)
        flex = np.clip(G["psi"] + np.arccos(c), G["flex"][:, 0], G["flex"][:, 1])
        q_knee = Q.from_axis_angle(_X, -flex)
        v = G["t"] + _rot(q_knee, G["sv"])
        wu = w / np.maximum(dist, 1e-12)[:, None]
        q1 = _arc(_unit(v), wu)
        kc = _ortho(_rot(q1, _ortho(_FRONT, _unit(v))), wu)           # where the kneecap points now
        h = _ortho(_rot(Q.conj(q_par), caps), wu)
        turn = np.arctan2(np.sum(wu * _cross(kc, h), -1), np.sum(kc * h, -1))
        q_thigh = _qmul(Q.from_axis_angle(wu, turn), q1)
        q_shin = _qmul(_qmul(q_par, q_thigh), q_knee)
        return q_thigh, q_knee, _qmul(Q.conj(q_shin), q_foot), hips + _rot(q_par, _rot(q_thigh, v))

    def _legs(self, rng, t, r, ik, stance: str, sym: bool) -> None:
        """Plan the feet for ``stance`` (offsets from rest, MMD units, L = leg length), lower and shift the
        centre, solve both legs, move the IK bones onto the result. Standing feet: outward -0.04..0.2 L,
        forward/back +-0.22 L, toe-out -8..30 degrees; crouch: centre 0.15..0.45 L down, hips back; sit:
        centre 0.8..1 thigh down, feet 0.6..1.1 thigh forward; lift: one foot 0.08..0.4 L up. In "fk" mode
        the IK bones are switched off and a lifted leg takes free anatomical angles instead."""
        amp, L = self.settings.amplitude, self.legs[0]["len"]
        thigh = float(np.linalg.norm(self.legs[0]["t"]))
        lifted = int(rng.integers(2)) if stance == "lift" else -1
        s = np.array([1.0, -1.0])
        x = rng.uniform(-0.04, 0.2, 2) * L + (rng.uniform(0, 0.15, 2) * L if stance in ("crouch", "sit") else 0)
        z = -thigh * rng.uniform(0.6, 1.1, 2) if stance == "sit" else L * rng.uniform(-0.22, 0.22, 2)
        yaw, splay = rng.uniform(-8, 30, 2), rng.uniform(-5, 15, 2)
        if sym:
            x[1], z[1], yaw[1], splay[1] = x[0], z[0], yaw[0], splay[0]
        feet = np.stack([s * x, np.zeros(2), z], 1)
        if lifted >= 0:
            feet[lifted] += [0.0, L * rng.uniform(0.08, 0.4), -L * rng.uniform(0.0, 0.35)]
        feet *= amp
        drop = amp * {"stand": L * rng.uniform(0, 0.05), "lift": L * rng.uniform(0, 0.08),
                      "crouch": L * rng.uniform(0.15, 0.45), "sit": thigh * rng.uniform(0.8, 1.0)}[stance]
        if stance == "sit":
            centre = np.array([0.0, -drop, 0.0])
        else:
            # the pelvis goes over the weight-bearing foot, or somewhere between both
            wl = 0.5 if sym else rng.uniform(0.25, 0.75) if lifted < 0 else float(lifted == 1)
            centre = wl * feet[0] + (1 - wl) * feet[1]
            centre[1] = -drop
            if stance == "crouch":
                centre[2] += drop * rng.uniform(0.1, 0.35)            # hips back, torso forward: balanced
        q_par = r[self.lower] if self.lower >= 0 else Q.IDENTITY
        hips = self.hip_base + _rot(q_par, self.rest[[g["hip"] for g in self.legs]] - self.hip_base)
        ankles = self.rest[[g["ankle"] for g in self.legs]] + feet
        if self.centre_moves_legs:
            # lower the centre until each planted foot is within reach of a nearly straight leg
            for k, g in enumerate(self.legs):
                if k != lifted:
                    reach = (1 - 1e-9) * math.sqrt(g["k0"] + g["k1"] * math.cos(g["flex"][0] - g["psi"]))
                    d = hips[k] + centre - ankles[k]
                    flat = min(math.hypot(d[0], d[2]), 0.95 * reach)
                    centre[1] = min(centre[1], ankles[k, 1] + math.sqrt(reach ** 2 - flat ** 2) - hips[k, 1])
            t[self.centre] = centre
            hips = hips + centre
        q_yaw = Q.from_axis_angle(-s[:, None] * _Y, np.radians(amp * yaw))
        q_foot = q_yaw.copy()
        if lifted >= 0:
            q_foot[lifted] = _qmul(q_yaw[lifted], Q.from_axis_angle(_X, np.radians(-amp * rng.uniform(0, 30))))
        caps = _rot(Q.from_axis_angle(-s[:, None] * _Y, np.radians(amp * (yaw + splay))), _FRONT)
        sol = list(self._solve_legs(q_par, hips, ankles, caps, q_foot)) + [q_foot]
        if self.settings.legs == "fk":
            for g in self.legs:
                ik[[i for i in (g["ik"], g["toe_ik"]) if i >= 0]] = False
            if lifted >= 0:
                free = self._free_leg(rng, self.legs[lifted], q_par, hips[lifted])
                for part, value in zip(sol, free or ()):
                    part[lifted] = value
        for k, g in enumerate(self.legs):
            r[g["hip"]], r[g["knee"]], r[g["ankle"]] = sol[0][k], sol[1][k], sol[2][k]
            if g["ik"] >= 0:        # the IK bones' parents are never posed: world offsets = local ones
                t[g["ik"]], r[g["ik"]] = sol[3][k] - self.rest[g["ik"]], sol[4][k]
                if g["toe_t"] is not None:
                    t[g["toe_ik"]] = g["toe_t"]

    def _free_leg(self, rng, g, q_par, hip):
        """A raised leg from anatomical angles, degrees: flexion -30..110 (forward), abduction -10..45
        (outward), rotation +-30, knee 0..150, ankle -45..20 (toes up); the first of ``tries`` candidates
        whose knee, heel and toes clear the floor, or None."""
        amp, s, k = self.settings.amplitude, g["s"], self.settings.tries
        a = np.radians(amp * rng.uniform([-30, -10, -30, -45], [110, 45, 30, 20], (k, 4)))
        knee = np.clip(g["psi"] + np.radians(amp * 150 * rng.beta(1.3, 1.7, k)), *g["flex"])
        qt = _qmul(_qmul(Q.from_axis_angle(_X, a[:, 0]), Q.from_axis_angle(s * _Z, a[:, 1])),
                   Q.from_axis_angle(_unit(g["t"]), -s * a[:, 2]))
        qk, qa = Q.from_axis_angle(_X, -knee), Q.from_axis_angle(_X, a[:, 3])
        q_thigh = _qmul(q_par, qt)
        q_shin = _qmul(q_thigh, qk)
        knee_p = hip + _rot(q_thigh, g["t"])
        ankle = knee_p + _rot(q_shin, g["sv"])
        q_foot = _qmul(q_shin, qa)
        low = np.minimum(np.minimum(knee_p[:, 1], ankle[:, 1] + _rot(q_foot, g["heel"])[:, 1]),
                         ankle[:, 1] + _rot(q_foot, g["toe"])[:, 1])
        ok = np.flatnonzero(low > 0.05 * g["len"])
        return None if not ok.size else (qt[ok[0]], qk[ok[0]], qa[ok[0]], ankle[ok[0]], q_foot[ok[0]])
