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
import scipy.sparse

from udpgen.mmd.model import Model, WeightType
from udpgen.rig import quat as Q


def blend_weights(model: Model) -> tuple[np.ndarray, np.ndarray]:
    """The bone slots and weights each vertex blends, as MMD reads them: (N, 4) int64 bone indices (unused
    or negative slots -> bone 0 with weight 0) and (N, 4) float64 weights: BDEF1 (1, 0, 0, 0); BDEF2 and
    SDEF (w, 1 - w, 0, 0) as stored; BDEF4/QDEF normalised to sum 1 (all zero: bone 0 alone). Non-finite
    weights count as 0. Shared by the numpy skinning and the GPU's vertex data, so both blend alike."""
    wt = np.asarray(model.weight_types)
    idx = np.asarray(model.bone_indices, np.int64)
    w = np.nan_to_num(np.asarray(model.bone_weights, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    slots = np.select([wt == WeightType.BDEF1, (wt == WeightType.BDEF2) | (wt == WeightType.SDEF)], [1, 2], 4)
    w = np.where((np.arange(4)[None, :] < slots[:, None]) & (idx >= 0), w, 0.0)
    idx = np.maximum(idx, 0)
    w[wt == WeightType.BDEF1, 0] = 1.0
    quad = (wt == WeightType.BDEF4) | (wt == WeightType.QDEF)
    total = w.sum(1)
    w[quad & (total > 0)] /= total[quad & (total > 0), None]
    w[quad & ~(total > 0), 0] = 1.0
    return idx, w


# The top three rows of the identity, flattened: skinning works on S_b - I so that the rest pose (S_b = I for
# every bone) gives back the rest mesh bit for bit, whatever the weights' float32 rounding.
_IDENTITY_ROWS = np.eye(3, 4, dtype=np.float32).reshape(12)


class Skinner:
    """Precomputed per-model skinning; :meth:`skin` maps rest positions to posed positions.

    Linear blending is one sparse product: the (N, n_bones) weight matrix times the bones' flattened
    (n_bones, 12) matrices gives every vertex's blended 3 x 4 matrix at once (scipy's CSR kernel, about 5x
    faster than gathering and blending per weight slot in numpy). SDEF vertices are skinned apart."""

    def __init__(self, model: Model):
        n, bones = model.vertex_count, len(model.bones)
        idx, w = blend_weights(model)
        wt = model.weight_types
        linear = np.flatnonzero(wt != WeightType.SDEF)
        rows, cols, vals = np.repeat(linear, 4), idx[linear].ravel(), w[linear].ravel()
        keep = vals != 0
        self.weights = scipy.sparse.csr_matrix((vals[keep].astype(np.float32), (rows[keep], cols[keep])),
                                               shape=(n, bones), dtype=np.float32)
        self.sdef = np.flatnonzero(wt == WeightType.SDEF)
        self.sdef_bones, self.sdef_w = idx[self.sdef, :2], w[self.sdef, :2]
        c, r0, r1 = (model.sdef[self.sdef, k].astype(np.float64) for k in range(3))
        rw = r0 * self.sdef_w[:, :1] + r1 * self.sdef_w[:, 1:]
        self.sdef_c = c
        self.sdef_cr0 = (c + (c + r0 - rw)) * 0.5
        self.sdef_cr1 = (c + (c + r1 - rw)) * 0.5

    def skin(self, skinning: np.ndarray, positions: np.ndarray, normals: np.ndarray | None = None):
        """skinning (n_bones, 4, 4) bone matrices; positions, normals (N, 3) rest values (after vertex
        morphs). Returns posed (positions (N, 3), unit normals (N, 3) or None when ``normals`` is None),
        float32 (the precision of the file and the GPU), each a transposed view of (3, N) storage."""
        delta = np.ascontiguousarray(skinning[:, :3, :], np.float32).reshape(-1, 12) - _IDENTITY_ROWS
        # (12, N): row 4r + c is entry (r, c) of every vertex's blended S - I; contiguous rows make the
        # arithmetic below plain vector operations
        m = np.ascontiguousarray((self.weights @ delta).T)
        out_p = _apply(m, positions, translate=True).T
        out_n = None if normals is None else _apply(m, normals, translate=False).T
        if self.sdef.size:
            self._skin_sdef(skinning, positions, normals, out_p, out_n)
        if out_n is not None:
            rows = out_n.T                      # the (3, N) storage
            length = np.sqrt(rows[0] * rows[0] + rows[1] * rows[1] + rows[2] * rows[2])
            rows /= np.where(length > 1e-12, length, 1.0)
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
        if out_n is not None:
            out_n[rows] = np.einsum("vij,vj->vi", R, normals[rows])


def _apply(m: np.ndarray, v: np.ndarray, translate: bool) -> np.ndarray:
    """(N, 3) rest vectors ``v`` -> (3, N) float32 rows of ``v + (S - I) v``, with ``m`` the (12, N) blended
    S - I (see Skinner.skin); points take the translation column, directions do not."""
    v = np.ascontiguousarray(np.asarray(v, np.float32).T)
    out = np.empty_like(v)
    for r in range(3):
        out[r] = v[r] + m[4 * r] * v[0] + m[4 * r + 1] * v[1] + m[4 * r + 2] * v[2]
        if translate:
            out[r] += m[4 * r + 3]
    return out


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
