"""MMD physics: which of a model's rigid bodies and joints can be simulated.

This is the input-checking half of issue #17 (the simulation stage between the before-physics and
after-physics bones is not written yet). :func:`usable_physics` keeps the bodies and joints a physics world
can be built from and drops the rest, warning once per file with a count, so one bad body never stops a
model from rendering.

Rules, in the model's own frame and units (MMD units, left-handed; sizes are half-extents / radii):

* a body is dropped when its bone index is neither -1 (no bone) nor a bone of the model, its shape or mode
  is not 0/1/2, any number is NaN or infinite, a size its shape uses is <= 0 (sphere: radius ``size[0]``;
  box: all three half-extents; capsule: radius ``size[0]`` and height ``size[1]``), or it is physics-driven
  (mode 1 or 2) with a mass <= 0 (Bullet would make a zero-mass body static; mode-0 bodies follow their
  bone and their mass is never used);
* a joint is dropped when either body index is not a kept body, both ends are the same body, or any number
  is NaN or infinite.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from udpgen.errors import InputWarning

from udpgen.mmd.model import Joint, Model, RigidBody

# Which size components each shape reads (0 sphere, 1 box, 2 capsule).
_SHAPE_SIZES = {0: (0,), 1: (0, 1, 2), 2: (0, 1)}

_BODY_VECTORS = ("size", "position", "rotation")
_BODY_SCALARS = ("mass", "linear_damping", "angular_damping", "restitution", "friction")
_JOINT_VECTORS = ("position", "rotation", "linear_lower", "linear_upper", "angular_lower", "angular_upper",
                  "spring_linear", "spring_angular")


@dataclass(frozen=True)
class UsablePhysics:
    """The simulable part of a model's physics.

    bodies: indices into ``model.rigid_bodies`` of the kept bodies, ascending (int32, shape (B,)).
    joints: indices into ``model.joints`` of the kept joints, ascending (int32, shape (J,)).
    dropped_bodies / dropped_joints: how many were dropped, with the first reason for each, in file order.
    """
    bodies: np.ndarray
    joints: np.ndarray
    dropped_bodies: tuple[str, ...] = ()
    dropped_joints: tuple[str, ...] = ()

    def summary(self, model: Model) -> dict:
        """Counts for reports (``udpgen doctor``): bodies by mode, joints, and what was dropped.

        ``{"rigid_bodies": int, "joints": int, "kept_bodies": int, "kept_joints": int,
        "bodies_by_mode": [mode 0, mode 1, mode 2] of the kept bodies, "dropped": [reasons...]}``.
        """
        modes = [0, 0, 0]
        for i in self.bodies:
            modes[model.rigid_bodies[i].mode] += 1
        return {"rigid_bodies": len(model.rigid_bodies), "joints": len(model.joints),
                "kept_bodies": int(len(self.bodies)), "kept_joints": int(len(self.joints)),
                "bodies_by_mode": modes, "dropped": list(self.dropped_bodies + self.dropped_joints)}


def _finite(obj, vectors, scalars=()) -> bool:
    values = [np.asarray(getattr(obj, f), np.float64).ravel() for f in vectors]
    values.append(np.array([float(getattr(obj, f)) for f in scalars], np.float64))
    return bool(np.isfinite(np.concatenate(values)).all())


def body_problem(body: RigidBody, n_bones: int) -> str | None:
    """Why ``body`` cannot be simulated (a short phrase), or None when it can."""
    if not (body.bone == -1 or 0 <= body.bone < n_bones):
        return f"bone {body.bone} does not exist ({n_bones} bones)"
    if body.shape not in _SHAPE_SIZES:
        return f"shape {body.shape} is not 0, 1 or 2"
    if body.mode not in (0, 1, 2):
        return f"mode {body.mode} is not 0, 1 or 2"
    if not _finite(body, _BODY_VECTORS, _BODY_SCALARS):
        return "a parameter is NaN or infinite"
    size = np.asarray(body.size, np.float64)
    if (size[list(_SHAPE_SIZES[body.shape])] <= 0).any():
        return f"size {size.tolist()} is not positive for shape {body.shape}"
    if body.mode != 0 and float(body.mass) <= 0:
        return f"mass {float(body.mass)} is not positive for a physics-driven body"
    return None


def joint_problem(joint: Joint, kept_bodies: set[int]) -> str | None:
    """Why ``joint`` cannot be simulated given the kept body indices, or None when it can."""
    for end in (joint.rigid_a, joint.rigid_b):
        if end not in kept_bodies:
            return f"rigid body {end} does not exist or was dropped"
    if joint.rigid_a == joint.rigid_b:
        return f"both ends are rigid body {joint.rigid_a}"
    if not _finite(joint, _JOINT_VECTORS):
        return "a parameter is NaN or infinite"
    return None


def _split(items, label: str, problem) -> tuple[list[int], list[str]]:
    """Indices of the ``items`` whose ``problem(item)`` is None, and a line per dropped one."""
    kept, drops = [], []
    for i, item in enumerate(items):
        why = problem(item)
        if why is None:
            kept.append(i)
        else:
            drops.append(f"{label} {i} {item.name!r}: {why}")
    return kept, drops


def usable_physics(model: Model, warn: bool = True) -> UsablePhysics:
    """The bodies and joints of ``model`` that can be simulated; the rest dropped with one warning.

    The warning (an ``InputWarning``) names the file and the counts and the first offending body and joint;
    it is issued once per call, so callers check a model once (per character) and reuse the result.
    """
    bodies, body_drops = _split(model.rigid_bodies, "rigid body", lambda b: body_problem(b, len(model.bones)))
    kept = set(bodies)
    joints, joint_drops = _split(model.joints, "joint", lambda j: joint_problem(j, kept))
    if warn and (body_drops or joint_drops):
        first = "; ".join(d[0] for d in (body_drops, joint_drops) if d)
        warnings.warn(f"{model.path or '<model>'}: physics: dropped {len(body_drops)} of "
                      f"{len(model.rigid_bodies)} rigid bodies and {len(joint_drops)} of {len(model.joints)} "
                      f"joints, the rest are simulated (first: {first})", InputWarning, stacklevel=2)
    return UsablePhysics(np.array(bodies, np.int32), np.array(joints, np.int32), tuple(body_drops),
                         tuple(joint_drops))
