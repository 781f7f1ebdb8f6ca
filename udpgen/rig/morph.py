"""Morphs: expand group morphs, then apply vertex, UV, bone and material morphs (MMD semantics).

Weights are per model morph (m,) float. Group (and PMX 2.1 flip) morphs pass ``weight * child_weight`` on
to their children, recursively, so a group of groups works; a cycle is cut where it closes. Impulse morphs
drive physics and are ignored here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from udpgen.mmd.model import Model, MorphKind
from udpgen.rig import quat as Q

_UV_KINDS = {MorphKind.UV: -1, MorphKind.UV1: 0, MorphKind.UV2: 1, MorphKind.UV3: 2, MorphKind.UV4: 3}


def expand_weights(model: Model, weights: np.ndarray) -> np.ndarray:
    """Effective weight of every non-group morph: (m,) -> (m,), group contributions added in."""
    weights = np.asarray(weights, np.float64)
    out = np.zeros(len(model.morphs))

    def visit(i: int, w: float, stack: tuple[int, ...]) -> None:
        m = model.morphs[i]
        if m.kind in (MorphKind.GROUP, MorphKind.FLIP):
            for child, cw in zip(m.offsets["index"], m.offsets["weight"]):
                if 0 <= child < len(model.morphs) and child not in stack:
                    visit(int(child), w * float(cw), stack + (int(child),))
        else:
            out[i] += w

    for i in np.flatnonzero(weights):
        visit(int(i), float(weights[i]), (int(i),))
    return out


@dataclass(frozen=True)
class MaterialValues:
    """Per-material values after material morphs (M materials): diffuse (M, 4), specular (M, 3),
    specular_power (M,), ambient (M, 3), edge_color (M, 4), edge_size (M,), and texture/sphere/toon
    tint factors (M, 4) (multiply, 1 = unchanged). ``visible`` (M,) is False where diffuse alpha is 0
    (MMD hides such materials, and morphs use this to switch parts off)."""
    diffuse: np.ndarray
    specular: np.ndarray
    specular_power: np.ndarray
    ambient: np.ndarray
    edge_color: np.ndarray
    edge_size: np.ndarray
    texture_tint: np.ndarray
    sphere_tint: np.ndarray
    toon_tint: np.ndarray

    @property
    def visible(self) -> np.ndarray:
        return self.diffuse[:, 3] > 0


_MAT_FIELDS = ("diffuse", "specular", "specular_power", "ambient", "edge_color", "edge_size", "texture",
               "sphere", "toon")


class Morpher:
    """Applies a model's morphs; build once per model."""

    def __init__(self, model: Model):
        self.model = model
        self.kinds = np.array([int(m.kind) for m in model.morphs], np.int64)

    def apply(self, weights: np.ndarray | None):
        """(positions (N, 3), uvs (N, 2), additional_uvs (N, A, 4), bone_translation (n, 3),
        bone_rotation (n, 4), MaterialValues) after the morph ``weights`` (m,) (None = all zero)."""
        model = self.model
        pos = model.positions.astype(np.float64)
        uvs = model.uvs.astype(np.float64)
        extra = model.additional_uvs.astype(np.float64)
        n = len(model.bones)
        bone_t = np.zeros((n, 3))
        bone_r = np.tile(Q.IDENTITY, (n, 1))
        mats = self._base_materials()
        if weights is None or not np.any(weights):
            return pos, uvs, extra, bone_t, bone_r, MaterialValues(**mats)
        w = expand_weights(model, weights)
        for i in np.flatnonzero(w):
            m, wi = model.morphs[i], w[i]
            off = m.offsets
            if m.kind == MorphKind.VERTEX:
                np.add.at(pos, off["index"], wi * off["offset"])
            elif m.kind in _UV_KINDS:
                slot = _UV_KINDS[MorphKind(m.kind)]
                if slot < 0:
                    np.add.at(uvs, off["index"], wi * off["offset"][:, :2])
                elif slot < extra.shape[1]:
                    np.add.at(extra[:, slot], off["index"], wi * off["offset"])
            elif m.kind == MorphKind.BONE:
                idx = off["index"]
                bone_t[idx] += wi * off["translation"]
                q = Q.slerp(Q.IDENTITY, Q.normalize(off["rotation"]), wi)
                bone_r[idx] = Q.mul(q, bone_r[idx])
            elif m.kind == MorphKind.MATERIAL:
                self._material(mats, off, wi)
        return pos, uvs, extra, bone_t, bone_r, MaterialValues(**mats)

    def _base_materials(self) -> dict:
        ms = self.model.materials
        k = len(ms)
        return dict(
            diffuse=np.array([m.diffuse for m in ms], np.float64).reshape(k, 4),
            specular=np.array([m.specular for m in ms], np.float64).reshape(k, 3),
            specular_power=np.array([m.specular_power for m in ms], np.float64),
            ambient=np.array([m.ambient for m in ms], np.float64).reshape(k, 3),
            edge_color=np.array([m.edge_color for m in ms], np.float64).reshape(k, 4),
            edge_size=np.array([m.edge_size for m in ms], np.float64),
            texture_tint=np.ones((k, 4)), sphere_tint=np.ones((k, 4)), toon_tint=np.ones((k, 4)))

    @staticmethod
    def _material(mats: dict, off: np.ndarray, w: float) -> None:
        """Multiply (operation 0) scales towards the offset value by w; add (1) adds w times it."""
        k = len(mats["diffuse"])
        for rec in off:
            targets = np.arange(k) if rec["index"] < 0 else np.array([rec["index"]])
            for name in _MAT_FIELDS:
                key = name + "_tint" if name in ("texture", "sphere", "toon") else name
                value = np.asarray(rec[name], np.float64)
                if rec["operation"] == 0:
                    mats[key][targets] *= 1.0 + w * (value - 1.0)
                else:
                    mats[key][targets] += w * value
