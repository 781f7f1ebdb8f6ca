"""Garments a family character can wear over the sample's body, beyond its top and skirt: sleeves of several
lengths, trousers (long or short) and an open coat (a body over the top, tails to the knees, long sleeves).

Each garment is a set of tubes (:func:`udpgen.sample.mesh.tube`) around the body parts it covers, a little
wider than them, skinned with the same bone chains as the part beneath (so it moves with the arm or leg and
never cuts through it), mapped by the character's shape and appended under a material of its own
(:func:`udpgen.sample.parts.append_mesh`). Built in the sample's unshaped frame: MMD units, +Y up, the
character faces -Z.
"""
from __future__ import annotations

import numpy as np

from udpgen.mmd.model import Model
from udpgen.sample.mesh import (CLOTH_SKIRT, CLOTH_SLEEVE, FOREARM, UPPER_ARM, Surface, _profile, arm_direction,
                                chain_weights, joint_positions, polyline_at, tube)
from udpgen.sample.parts import Mesh, append_mesh, part_material

__all__ = ["SLEEVES", "BOTTOMS", "SLEEVE_END", "sleeves", "trousers", "coat"]

SLEEVES = ("short", "elbow", "long")                 # "short" is the sample's own cap sleeve alone
BOTTOMS = ("skirt", "bare", "shorts", "trousers")     # what is worn below the waist
# where a sleeve ends, as arclength along the arm from the shoulder joint (the sample's cap sleeve: 1.1)
SLEEVE_END = {"elbow": UPPER_ARM + 0.15, "long": UPPER_ARM + FOREARM - 0.15}
# the arm's skin profile (arclength, depth, thickness) of udpgen.sample.mesh.body_surfaces, up to the wrist
_ARM = [(-.35, .42, .42), (0, .42, .43), (1.5, .37, .38), (3.0, .31, .31), (4.2, .32, .30), (5.6, .24, .21)]
_EASE = 0.1                                          # how far cloth stands off the skin


def _mesh(surf: Surface, shape) -> Mesh:
    """A rigged body surface mapped by the character's shape (body parts: head weight 0)."""
    zero = np.zeros(len(surf.positions))
    return Mesh(shape.points(surf.positions, zero), surf.normals, surf.uvs, surf.faces, surf.bones, surf.weights)


def _arm_joints(model: Model, lr: str) -> list[tuple[float, int, float]]:
    b = model.bone_index
    return [(0.0, b(lr + "腕"), .3), (0.55 * UPPER_ARM, b(lr + "腕捩"), .45), (UPPER_ARM, b(lr + "ひじ"), .35),
            (UPPER_ARM + 0.5 * FOREARM, b(lr + "手捩"), .45), (UPPER_ARM + FOREARM, b(lr + "手首"), .3)]


def _sleeve_surfaces(model: Model, length: str, uv_rect, ease: float = _EASE) -> list[Surface]:
    """A sleeve per arm from inside the sample's cap sleeve (s = 0.9) to SLEEVE_END[length], open at the
    cuff, skinned like the arm."""
    J, out = joint_positions(), []
    for side, lr in ((1.0, "左"), (-1.0, "右")):
        d = arm_direction(side)
        s = np.linspace(0.9, SLEEVE_END[length], 12)
        r = _profile(s, _ARM) + ease
        r[-1] += 0.06                                  # a cuff that flares a little
        surf = tube(f"sleeve_{length}_{lr}", "cloth", J[lr + "腕"] + s[:, None] * d, r, np.array([0, 0, 1.0]),
                    16, uv_rect, axial=s, caps=(False, False))
        out.append(surf.rig(*chain_weights(surf.axial, model.bone_index(lr + "肩"), _arm_joints(model, lr))))
    return out


def sleeves(model: Model, shape, length: str, texture: str = "tex/cloth.png") -> Model:
    """``model`` with sleeves of ``length`` ('elbow' or 'long'; 'short' adds nothing) in the top's colours
    (the sleeve region of the cloth atlas: body colour, trimmed cuff), under a material '袖'."""
    if length == "short":
        return model
    mesh = Mesh.concat([_mesh(s, shape) for s in _sleeve_surfaces(model, length, CLOTH_SLEEVE)])
    return append_mesh(model, mesh, part_material("袖", "sleeves", model.textures.index(texture)))


def trousers(model: Model, shape, long: bool, texture: str = "tex/cloth.png") -> Model:
    """``model`` with trousers: a tube round each leg from inside the hips to above the boots (``long``) or
    to mid-thigh (shorts), in the skirt's colours and pattern (the skirt region of the cloth atlas), skinned
    like the leg, under a material 'ズボン'."""
    J, b, parts = joint_positions(), model.bone_index, []
    for lr in ("左", "右"):
        pts = np.stack([J[lr + "足"], J[lr + "ひざ"], J[lr + "足首"]])
        L1, L2 = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        # the leg's skin profile of body_surfaces, eased
        prof = [(-.5, .7, .7), (0, .8, .78), (.5 * L1, .68, .66), (L1, .5, .48), (L1 + 1.2, .55, .53),
                (L1 + L2 - .6, .38, .38), (L1 + L2 + .25, .36, .36)]
        end = L1 + L2 - 0.85 if long else 0.55 * L1
        s = np.linspace(-0.4, end, 16 if long else 7)
        r = _profile(s, prof) + _EASE
        r[:3] += np.linspace(0.12, 0.0, 3)[:, None]      # full at the hips, where the two legs meet
        surf = tube(f"trousers_{lr}", "cloth", polyline_at(pts, s), r, np.array([0, 0, 1.0]), 16, CLOTH_SKIRT,
                    axial=s, caps=(False, False))
        joints = [(0.0, b(lr + "足"), .45), (L1, b(lr + "ひざ"), .45), (L1 + L2, b(lr + "足首"), .3)]
        parts.append(_mesh(surf.rig(*chain_weights(surf.axial, b("下半身"), joints)), shape))
    return append_mesh(model, Mesh.concat(parts), part_material("ズボン", "trousers", model.textures.index(texture)))


def _open_front(surf: Surface, half_width: float) -> Surface:
    """Drop the triangles whose centre lies in front (-Z) within ``half_width`` of the midline: a coat that
    is worn open."""
    c = surf.positions[surf.faces].mean(1)
    keep = ~((c[:, 2] < 0) & (np.abs(c[:, 0]) < half_width))
    surf.faces = surf.faces[keep]
    return surf


def coat(model: Model, shape, length: float, texture: str = "tex/coat.png") -> Model:
    """``model`` with an open coat under a material 'コート' (``texture``: its colour, trim in the bottom
    rows): a body over the top from the waist to the chest, tails from the waist down ``length`` (MMD units)
    skinned between the hips and both legs as the sample's skirt, and long sleeves."""
    b = model.bone_index
    Z = np.array([0, 0, 1.0])
    # body: the torso's rings (body_surfaces) eased, from the waist to below the collar
    table = [(9.7, 1.25, 0.9), (10.4, 1.55, 1.08), (11.0, 1.45, 1.0), (11.9, 1.18, 0.84), (12.8, 1.35, 0.95),
             (13.5, 1.5, 1.05), (14.2, 1.6, 1.0), (14.75, 1.55, 0.92)]
    y = np.linspace(10.2, 14.6, 10)
    r = _profile(y, [(t[0], t[2], t[1]) for t in table]) + 0.12
    body = tube("coat_body", "coat", np.stack([0 * y, y, 0 * y], 1), r, Z, 32, (0, 0.05, 1, 0.6), axial=y,
                caps=(False, False))
    body.rig(*chain_weights(body.positions[:, 1], b("下半身"), [(11.3, b("上半身"), .45), (12.9, b("上半身2"), .45)]))
    # tails: a flared cone from the waist, weighted like the sample's skirt (hips, both legs by side)
    y = np.linspace(10.6, 10.6 - length, 10)
    h = (10.6 - y) / max(length, 1e-6)
    r = np.stack([1.1 + h * 1.3, 1.6 + h * 1.5], 1)
    tails = tube("coat_tails", "coat", np.stack([0 * y, y, 0 * y + 0.05], 1), r, Z, 40, (0, 0.6, 1, 0.98),
                 caps=(False, False))
    p = tails.positions
    h = np.clip((10.6 - p[:, 1]) / max(length, 1e-6), 0, 1)
    left = 0.5 * (1 + np.tanh(p[:, 0] / 0.8))
    w_l, w_r = 0.6 * h * left, 0.6 * h * (1 - left)
    tails.rig(np.tile([b("下半身"), b("左足"), b("右足")], (len(p), 1)), np.stack([1 - w_l - w_r, w_l, w_r], 1))
    parts = [_open_front(body, 0.35), _open_front(tails, 0.6)]
    parts += _sleeve_surfaces(model, "long", (0, 0.05, 1, 0.98), ease=_EASE + 0.06)
    mesh = Mesh.concat([_mesh(s, shape) for s in parts])
    return append_mesh(model, mesh, part_material("コート", "coat", model.textures.index(texture)))
