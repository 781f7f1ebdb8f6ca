"""Posing MMD models with MMD's semantics: bones (FK, grants, IK), morphs, skinning, canonical landmarks.

``Rig(model).pose(values)`` is the whole path from animation values to a posed mesh; everything is in
MMD's native frame until :mod:`udpgen.rig.canonical` converts landmarks to the canonical frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from udpgen.mmd.model import Model
from udpgen.rig import quat as Q
from udpgen.rig.morph import MaterialValues, Morpher
from udpgen.rig.motion import FramePose, MotionSampler, pose_values
from udpgen.rig.skeleton import BonePose, Skeleton
from udpgen.rig.skin import Skinner


@dataclass
class PosedMesh:
    """A posed model in MMD's frame: positions and unit normals (N, 3) float32 (skin.Skinner), uvs (N, 2), the bones,
    and the per-material values after material morphs (``materials.visible`` hides a material)."""
    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    bones: BonePose
    materials: MaterialValues


class Rig:
    """Everything needed to pose one model; build once per model, then call :meth:`pose` per frame."""

    def __init__(self, model: Model):
        self.model = model
        self.skeleton = Skeleton(model)
        self.morpher = Morpher(model)
        self.skinner = Skinner(model)

    def rest_values(self) -> FramePose:
        """Animation values of the rest pose (no rotation, no offset, IK on, no morph)."""
        n = self.skeleton.n
        return FramePose(np.zeros((n, 3)), np.tile(Q.IDENTITY, (n, 1)), np.ones(n, bool),
                         np.zeros(len(self.model.morphs)))

    def pose_bones(self, values: FramePose | None = None, bone_t=None, bone_r=None, physics=None) -> BonePose:
        """Bones only: ``values`` plus optional bone-morph offsets (translation added, rotation pre-multiplied).
        ``physics``: the hook run between before- and after-physics bones (``Physics.settle``), or None."""
        v = values or self.rest_values()
        t, r = v.translation, v.rotation
        if bone_t is not None:
            t = t + bone_t
            r = Q.mul(bone_r, Q.normalize(r))
        return self.skeleton.pose(t, r, v.ik_enabled, physics=physics)

    def pose(self, values: FramePose | None = None, physics=None) -> PosedMesh:
        """Pose the whole model: morphs, bones (with the ``physics`` hook, if any), skinning."""
        v = values or self.rest_values()
        pos, uvs, _, bone_t, bone_r, mats = self.morpher.apply(v.morph_weights)
        bones = self.pose_bones(v, bone_t, bone_r, physics=physics)
        positions, normals = self.skinner.skin(bones.skinning(), pos, self.model.normals)
        return PosedMesh(positions, normals, uvs, bones, mats)


__all__ = ["BonePose", "FramePose", "MotionSampler", "PosedMesh", "Rig", "Skeleton", "pose_values"]
