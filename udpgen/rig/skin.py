"""Linear-blend, SDEF and QDEF skinning on numpy arrays: the reference the GPU skinning is tested against.

Positions are in MMD's frame; the skinning matrix of bone b is ``S_b = W_b T(-p_b)`` (see skeleton.py).
BDEF1/2/4 blend the matrices by weight. SDEF (spherical deform) rotates about the vertex's centre C by the
slerp of the two bones' rotations and blends the two bones' images of the corrected centres R0', R1'
(the formula saba and babylon-mmd use); it equals linear blending when both bones rotate alike. QDEF is
skinned as BDEF4 (dual-quaternion blending is left out: models use it rarely and the difference is a
volume-preserving correction at joints).
"""
from __future__ import annotations

import numpy as np

from udpgen.mmd.model import Model, WeightType
from udpgen.rig import quat as Q


class Skinner:
    """Precomputed per-model skinning groups; :meth:`skin` maps rest positions to posed positions."""

    def __init__(self, model: Model):
        wt = model.weight_types
        idx = np.maximum(model.bone_indices, 0).astype(np.int64)     # -1 slots carry weight 0
        w = model.bone_weights.astype(np.float64)
        self.single = np.flatnonzero(wt == WeightType.BDEF1)
        self.single_bone = idx[self.single, 0]
        self.pair = np.flatnonzero(wt == WeightType.BDEF2)
        self.pair_bones, self.pair_w = idx[self.pair, :2], w[self.pair, :2].astype(np.float32)
        self.quad = np.flatnonzero((wt == WeightType.BDEF4) | (wt == WeightType.QDEF))
        self.quad_bones = idx[self.quad]
        qw = w[self.quad]
        s = qw.sum(1, keepdims=True)
        self.quad_w = np.where(s > 0, qw / np.where(s > 0, s, 1), qw).astype(np.float32)   # MMD normalises BDEF4
        self.sdef = np.flatnonzero(wt == WeightType.SDEF)
        self.sdef_bones, self.sdef_w = idx[self.sdef, :2], w[self.sdef, :2]
        c, r0, r1 = (model.sdef[self.sdef, k].astype(np.float64) for k in range(3))
        rw = r0 * self.sdef_w[:, :1] + r1 * self.sdef_w[:, 1:]
        self.sdef_c = c
        self.sdef_cr0 = (c + (c + r0 - rw)) * 0.5
        self.sdef_cr1 = (c + (c + r1 - rw)) * 0.5

    def skin(self, skinning: np.ndarray, positions: np.ndarray, normals: np.ndarray):
        """skinning (n, 4, 4) bone matrices; positions, normals (N, 3) rest values (after vertex morphs).
        Returns posed (positions (N, 3), unit normals (N, 3)) float32, the precision of the file and the GPU
        (float32 halves the memory traffic of the gathers, which dominate)."""
        positions = np.asarray(positions, np.float32)
        normals = np.asarray(normals, np.float32)
        out_p = np.empty_like(positions)
        out_n = np.empty_like(normals)
        # Each bone's top 3 rows flattened to 12 numbers: blending and applying them as plain column
        # arithmetic is about twice as fast as batched (v, 3, 4) matrix products.
        flat = np.ascontiguousarray(skinning[:, :3, :], np.float32).reshape(-1, 12)
        for rows, bones, weights in ((self.single, self.single_bone[:, None], None),
                                     (self.pair, self.pair_bones, self.pair_w),
                                     (self.quad, self.quad_bones, self.quad_w)):
            if rows.size == 0:
                continue
            # F0 + sum_k w_k (F_k - F0) equals sum_k w_k F_k for weights summing to one, and is exactly F0
            # when all bones agree (the rest pose comes back bit for bit)
            first = flat[bones[:, 0]]
            m = first.copy()
            for k in range(1, bones.shape[1]):
                m += weights[:, k:k + 1] * (flat[bones[:, k]] - first)
            p, nrm = positions[rows], normals[rows]
            out_p[rows] = m[:, 0:9:4] * p[:, :1] + m[:, 1:10:4] * p[:, 1:2] + m[:, 2:11:4] * p[:, 2:3] + m[:, 3:12:4]
            out_n[rows] = m[:, 0:9:4] * nrm[:, :1] + m[:, 1:10:4] * nrm[:, 1:2] + m[:, 2:11:4] * nrm[:, 2:3]
        if self.sdef.size:
            self._skin_sdef(skinning, positions, normals, out_p, out_n)
        norm = np.sqrt(np.einsum("ij,ij->i", out_n, out_n))[:, None]
        out_n /= np.where(norm > 1e-12, norm, 1.0)
        return out_p, out_n

    def _skin_sdef(self, skinning, positions, normals, out_p, out_n) -> None:
        b0, b1 = self.sdef_bones[:, 0], self.sdef_bones[:, 1]
        w0, w1 = self.sdef_w[:, :1], self.sdef_w[:, 1:]
        q = Q.from_matrix(skinning[:, :3, :3])
        R = Q.to_matrix(Q.slerp(q[b0], q[b1], w1[:, 0]))                   # (v, 3, 3)
        m0, m1 = skinning[b0], skinning[b1]
        image0 = np.einsum("vij,vj->vi", m0[:, :3, :3], self.sdef_cr0) + m0[:, :3, 3]
        image1 = np.einsum("vij,vj->vi", m1[:, :3, :3], self.sdef_cr1) + m1[:, :3, 3]
        rows = self.sdef
        out_p[rows] = np.einsum("vij,vj->vi", R, positions[rows] - self.sdef_c) + w0 * image0 + w1 * image1
        out_n[rows] = np.einsum("vij,vj->vi", R, normals[rows])


def skin_reference_loop(model: Model, skinning: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The straightforward per-vertex loop (BDEF weights only, SDEF/QDEF as blends): bench/ baseline."""
    out = np.empty((len(positions), 3))
    for v in range(len(positions)):
        m = np.zeros((3, 4))
        for k in range(4):
            b = model.bone_indices[v, k]
            if b >= 0 and model.bone_weights[v, k] != 0:
                m += model.bone_weights[v, k] * skinning[b, :3, :]
        out[v] = m[:, :3] @ positions[v] + m[:, 3]
    return out
