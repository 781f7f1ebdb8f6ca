"""The canonical A-pose and the landmarks it defines (DESIGN 3.3): what a UDP pixel means.

Every character is brought to one A-pose: the upper arm (腕 -> ひじ) is rotated in the frontal plane so it
droops ``CANONICAL_ARM_DROOP_DEG`` below horizontal, through the full posing path (grants and IK followers
move with it). A vertex's landmark is its position in that pose, expressed in the canonical frame and
mapped into [0, 1]^3:

* frame: right-handed, +Y up, the character facing +Z (MMD's left-handed frame with z negated);
* origin: the centre bone's (センター) x and z, and the floor (MMD's ground plane, y = 0);
* unit: the skeleton height, the rest height of the neck bone (首; 頭 if there is no neck), a skeleton
  length rather than the mesh's bounding box, which hair, hats and weapons make unstable;
* map: one fixed affine map, ``(p - LANDMARK_LOW) / LANDMARK_SPAN``, clipped to [0, 1]. It keeps the
  three axes at the same scale and holds x, z in [-0.8, 0.8] and y in [-0.1, 1.5] skeleton heights.

The same vertex keeps its landmark in every pose, and two uniformly scaled copies of a character get the
same landmarks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from udpgen.errors import ModelError
from udpgen.rig import quat as Q

CANONICAL_ARM_DROOP_DEG = 35.0
LANDMARK_LOW = np.array([-0.8, -0.1, -0.8])
LANDMARK_SPAN = 1.6
ARMS = (("左腕", "左ひじ", -1.0), ("右腕", "右ひじ", 1.0))   # (upper arm, elbow, sign of the lowering turn about +Z)
CENTRE = "センター"
HEIGHT_BONES = ("首", "頭")


def check_character(model, skeleton=None) -> dict[str, int]:
    """What makes a model a usable character: a mesh (vertices and faces) and the bones canonicalisation
    needs. Returns :func:`required_bones`; ModelError (naming the file) otherwise."""
    from udpgen.rig.skeleton import Skeleton

    where = model.path or model.name or "model"
    if model.vertex_count == 0 or model.face_count == 0:
        raise ModelError(f"{where}: the model has no vertices or no faces (a skeleton or controller, not a character)")
    try:
        return required_bones(skeleton or Skeleton(model))
    except ModelError as e:
        raise ModelError(f"{where}: {e} (not a humanoid character)") from None


def required_bones(skeleton) -> dict[str, int]:
    """Indices of the bones canonicalisation needs; ModelError naming every missing one."""
    missing = missing_bones(skeleton)
    if missing:
        raise ModelError(f"cannot canonicalise: the model has no {', '.join(missing)} bone"
                         f"{'s' if len(missing) > 1 else ''} (standard MMD names are required)")
    found = {n: skeleton.index(n) for n in _REQUIRED}
    found["height"] = next(skeleton.index(n) for n in HEIGHT_BONES if skeleton.index(n) >= 0)
    return found


_REQUIRED = (CENTRE,) + tuple(n for arm in ARMS for n in arm[:2])


def missing_bones(skeleton) -> list[str]:
    """Names of the bones canonicalisation needs that ``skeleton`` lacks ([] for a humanoid rig), in a fixed
    order; the height bone is listed as '首 (or 頭)'. The one humanoid check (:func:`required_bones`,
    ``udpgen doctor``)."""
    missing = [n for n in _REQUIRED if skeleton.index(n) < 0]
    if all(skeleton.index(n) < 0 for n in HEIGHT_BONES):
        missing.append("首 (or 頭)")
    return missing


def arm_droop_deg(positions: np.ndarray, skeleton) -> tuple[float, float]:
    """Droop of the left and right upper arm below horizontal, in degrees, in the frontal (x, y) plane,
    from posed bone heads ``positions`` (n, 3) in MMD's frame."""
    out = []
    for upper, elbow, _ in ARMS:
        d = positions[skeleton.index(elbow)] - positions[skeleton.index(upper)]
        out.append(math.degrees(math.atan2(-d[1], abs(d[0]))))
    return out[0], out[1]


def apose_values(rig, droop_deg: float = CANONICAL_ARM_DROOP_DEG):
    """Animation values that pose ``rig``'s model in the canonical A-pose (arms at ``droop_deg``)."""
    sk = rig.skeleton
    bones = required_bones(sk)
    values = rig.rest_values()
    rest = rig.pose_bones(values).positions
    for (upper, _, sign), droop in zip(ARMS, arm_droop_deg(rest, sk)):
        turn = math.radians(droop_deg - droop)
        values.rotation[bones[upper]] = Q.from_axis_angle(np.array([0.0, 0.0, 1.0]), sign * turn)
    return values


@dataclass(frozen=True)
class Canonical:
    """A character in the canonical A-pose.

    values: the animation values of the pose (FramePose); positions (N, 3) float64: the posed vertices in
    MMD's frame; landmarks (N, 3) float32 in [0, 1]; origin (3,) in MMD's frame and height (MMD units):
    the frame's origin and unit; droop_rest_deg: the arms' droop (left, right) in the model's rest pose.
    """
    values: object
    positions: np.ndarray
    landmarks: np.ndarray
    origin: np.ndarray
    height: float
    droop_rest_deg: tuple[float, float]

    def to_frame(self, points_mmd: np.ndarray) -> np.ndarray:
        """MMD-frame points (..., 3) -> canonical frame (right-handed, facing +Z, skeleton heights)."""
        return to_canonical_frame(points_mmd, self.origin, self.height)


def to_canonical_frame(points_mmd: np.ndarray, origin: np.ndarray, height: float) -> np.ndarray:
    p = (np.asarray(points_mmd, np.float64) - origin) / height
    return p * np.array([1.0, 1.0, -1.0])


def landmark_map(points_canonical: np.ndarray) -> np.ndarray:
    """Canonical-frame points -> landmarks in [0, 1]^3 (float32), by the fixed affine map, clipped."""
    return np.clip((points_canonical - LANDMARK_LOW) / LANDMARK_SPAN, 0.0, 1.0).astype(np.float32)


def canonicalize(rig, droop_deg: float = CANONICAL_ARM_DROOP_DEG) -> Canonical:
    """Pose ``rig``'s model in the canonical A-pose and compute its per-vertex landmarks."""
    bones = required_bones(rig.skeleton)
    rest = rig.pose_bones().positions
    values = apose_values(rig, droop_deg)
    posed = rig.pose(values)
    centre = rest[bones[CENTRE]]
    origin = np.array([centre[0], 0.0, centre[2]])
    height = float(rig.skeleton.rest[bones["height"]][1])
    if not height > 0:
        raise ModelError(f"cannot canonicalise: the neck bone is at height {height:.4g} (must be above the floor y=0)")
    landmarks = landmark_map(to_canonical_frame(posed.positions, origin, height))
    return Canonical(values=values, positions=posed.positions, landmarks=landmarks, origin=origin, height=height,
                     droop_rest_deg=arm_droop_deg(rest, rig.skeleton))
