"""Rest-pose correction: drive a model whose rest pose differs (a T-pose) with motions made for A-posed models.

VMD rotations are relative to each model's rest pose, so a wave made for a model whose arms droop 35
degrees lifts a T-posed model's arms 35 degrees too high. The fix is the classic retarget with rest
offsets: if C_b is the world rotation taking the target model's rest bone b onto the source's rest
orientation (identity for bones whose rest poses agree), the target's local rotation is

    r'_b = C_parent(b)^-1  r_b  C_b,        t'_b = C_parent(b)^-1 t_b,

which makes every bone's world orientation (applied to the target's rest pose) equal the source's.
Here C is a rotation about the frontal axis on each upper arm's subtree, measured from the arm droop.
"""
from __future__ import annotations

import math

import numpy as np

from udpgen.rig import quat as Q
from udpgen.rig.canonical import ARMS, CANONICAL_ARM_DROOP_DEG, arm_droop_deg, required_bones
from udpgen.rig.motion import FramePose

MOTION_ARM_DROOP_DEG = CANONICAL_ARM_DROOP_DEG    # what a typical MMD motion assumes (a standard A-pose)


def rest_correction(rig, source_droop_deg: float = MOTION_ARM_DROOP_DEG,
                    threshold_deg: float = 0.0) -> np.ndarray | None:
    """Per-bone world correction quaternions (n, 4) for motions authored on a model whose arms droop
    ``source_droop_deg``; None when neither arm differs by more than ``threshold_deg``."""
    sk = rig.skeleton
    bones = required_bones(sk)
    droops = arm_droop_deg(rig.pose_bones().positions, sk)
    if all(abs(source_droop_deg - d) <= threshold_deg for d in droops):
        return None
    correction = np.tile(Q.IDENTITY, (sk.n, 1))
    for (upper, _, sign), droop in zip(ARMS, droops):
        turn = math.radians(source_droop_deg - droop)
        correction[sk.subtree(bones[upper])] = Q.from_axis_angle(np.array([0.0, 0.0, 1.0]), sign * turn)
    return correction


def retarget(values: FramePose, correction: np.ndarray | None, parent: np.ndarray) -> FramePose:
    """Apply a rest correction (from :func:`rest_correction`) to animation values; ``parent`` (n,) indices."""
    if correction is None:
        return values
    c_parent = np.where((parent >= 0)[:, None], correction[np.maximum(parent, 0)], Q.IDENTITY)
    inv_parent = Q.conj(c_parent)
    rotation = Q.mul(Q.mul(inv_parent, Q.normalize(values.rotation)), correction)
    translation = Q.rotate(inv_parent, values.translation)
    return FramePose(translation, rotation, values.ik_enabled, values.morph_weights)
