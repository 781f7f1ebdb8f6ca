"""Quaternion and rigid-transform helpers on numpy arrays (float64), batched over leading axes.

Quaternions are (..., 4) arrays (x, y, z, w) acting on column vectors: ``mul(a, b)`` applies ``b`` first.
The maths is frame-agnostic algebra, so it runs directly in MMD's left-handed coordinates.
"""
from __future__ import annotations

import math

import numpy as np

IDENTITY = np.array([0.0, 0.0, 0.0, 1.0])


def normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions; zero-length inputs become the identity (MMD treats them as 'no rotation')."""
    q = np.asarray(q, np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    out = np.where(n > 1e-12, q / np.where(n > 1e-12, n, 1.0), IDENTITY)
    return out


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (rotation b, then a); broadcasts."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ax, ay, az, aw = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bx, by, bz, bw = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    out = np.empty(np.broadcast_shapes(a.shape, b.shape))
    out[..., 0] = aw * bx + ax * bw + ay * bz - az * by
    out[..., 1] = aw * by - ax * bz + ay * bw + az * bx
    out[..., 2] = aw * bz + ax * by - ay * bx + az * bw
    out[..., 3] = aw * bw - ax * bx - ay * by - az * bz
    return out


def conj(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion."""
    return np.asarray(q, np.float64) * np.array([-1.0, -1.0, -1.0, 1.0])


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4): v + 2w (u x v) + 2 u x (u x v)."""
    q = np.asarray(q, np.float64)
    v = np.asarray(v, np.float64)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    vx, vy, vz = v[..., 0], v[..., 1], v[..., 2]
    tx, ty, tz = 2 * (y * vz - z * vy), 2 * (z * vx - x * vz), 2 * (x * vy - y * vx)
    out = np.empty(np.broadcast_shapes(q.shape[:-1], v.shape[:-1]) + (3,))
    out[..., 0] = vx + w * tx + y * tz - z * ty
    out[..., 1] = vy + w * ty + z * tx - x * tz
    out[..., 2] = vz + w * tz + x * ty - y * tx
    return out


def to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions -> (..., 3, 3) rotation matrices (column-vector convention)."""
    q = np.asarray(q, np.float64)
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = np.empty(q.shape[:-1] + (3, 3))
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    m[..., 0, 0] = 1 - 2 * (yy + zz)
    m[..., 0, 1] = 2 * (xy - wz)
    m[..., 0, 2] = 2 * (xz + wy)
    m[..., 1, 0] = 2 * (xy + wz)
    m[..., 1, 1] = 1 - 2 * (xx + zz)
    m[..., 1, 2] = 2 * (yz - wx)
    m[..., 2, 0] = 2 * (xz - wy)
    m[..., 2, 1] = 2 * (yz + wx)
    m[..., 2, 2] = 1 - 2 * (xx + yy)
    return m


def from_matrix(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 4) unit quaternions with w >= 0.

    Each of the four standard formulas divides by one component; the one with the largest component is
    taken per matrix (Shepperd's method), which keeps the division well conditioned.
    """
    m = np.asarray(m, np.float64)
    r = m.reshape(-1, 3, 3)
    m00, m11, m22 = r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]
    four = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], 1)
    k = np.argmax(four, 1)
    rows = np.arange(len(k))
    s = 2.0 * np.sqrt(np.maximum(four[rows, k], 1e-300))       # 4 * the largest component
    d21, d02, d10 = r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]
    s01, s02, s12 = r[:, 0, 1] + r[:, 1, 0], r[:, 0, 2] + r[:, 2, 0], r[:, 1, 2] + r[:, 2, 1]
    ss = 0.25 * s * s
    # the four candidates (x, y, z, w) * s, one stack (the physics calls this every frame)
    cand = np.stack([d21, d02, d10, ss,        # w largest
                     ss, s01, s02, d21,        # x largest
                     s01, ss, s12, d02,        # y largest
                     s02, s12, ss, d10], 1).reshape(-1, 4, 4)   # z largest
    q = cand[rows, k] / s[:, None]
    q *= np.where(q[:, 3:4] < 0, -1.0, 1.0)
    return normalize(q).reshape(m.shape[:-2] + (4,))


def from_axis_angle(axis: np.ndarray, angle) -> np.ndarray:
    """Rotation by ``angle`` radians about unit ``axis`` (..., 3)."""
    axis = np.asarray(axis, np.float64)
    half = 0.5 * np.asarray(angle, np.float64)[..., None]
    return np.concatenate([axis * np.sin(half), np.cos(half)], axis=-1)


def to_axis_angle(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit quaternions -> (unit axis (..., 3), angle (...,) in [0, 2 pi)); identity gives axis (1, 0, 0)."""
    q = np.asarray(q, np.float64)
    s = np.linalg.norm(q[..., :3], axis=-1)
    angle = 2.0 * np.arctan2(s, q[..., 3])
    axis = np.where(s[..., None] > 1e-12, q[..., :3] / np.where(s > 1e-12, s, 1.0)[..., None], [1.0, 0.0, 0.0])
    return axis, angle


def slerp(a: np.ndarray, b: np.ndarray, t) -> np.ndarray:
    """Spherical interpolation from a to b along the shorter arc; t outside [0, 1] extrapolates
    (MMD append ratios of -1, -0.5 and 2 occur). Broadcasts over leading axes."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)[..., None]
    d = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(d < 0, -b, b)
    d = np.abs(d)
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    sin = np.sin(theta)
    small = sin < 1e-6
    safe = np.where(small, 1.0, sin)
    wa = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    wb = np.where(small, t, np.sin(t * theta) / safe)
    return normalize(wa * a + wb * b)


def compose(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions and (..., 3) translations -> (..., 4, 4) homogeneous matrices."""
    rotation = np.asarray(rotation, np.float64)
    m = np.zeros(rotation.shape[:-1] + (4, 4))
    m[..., :3, :3] = to_matrix(rotation)
    m[..., :3, 3] = translation
    m[..., 3, 3] = 1.0
    return m


def rigid_inverse(m: np.ndarray) -> np.ndarray:
    """Inverses of (..., 4, 4) rigid transforms (rotation and translation): transpose and back-rotate."""
    out = np.zeros_like(m)
    rt = np.swapaxes(m[..., :3, :3], -1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", rt, m[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


# --- single quaternions as tuples of Python floats: the grant step and the IK solver work one bone at a
# time, where plain floats beat numpy's per-call overhead by an order of magnitude. Same formulas as above.

def mul1(a: tuple, b: tuple) -> tuple:
    """Hamilton product a * b of two (x, y, z, w) tuples."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz)


def slerp1(a: tuple, b: tuple, t: float) -> tuple:
    """:func:`slerp` for one pair of (x, y, z, w) tuples."""
    d = a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3]
    if d < 0:
        b, d = (-b[0], -b[1], -b[2], -b[3]), -d
    theta = math.acos(min(d, 1.0))
    sin = math.sin(theta)
    if sin < 1e-6:
        wa, wb = 1.0 - t, t
    else:
        wa, wb = math.sin((1.0 - t) * theta) / sin, math.sin(t * theta) / sin
    q = (wa * a[0] + wb * b[0], wa * a[1] + wb * b[1], wa * a[2] + wb * b[2], wa * a[3] + wb * b[3])
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    return (q[0] / n, q[1] / n, q[2] / n, q[3] / n) if n > 1e-12 else (0.0, 0.0, 0.0, 1.0)


def from_matrix1(m) -> tuple:
    """:func:`from_matrix` for one rotation matrix given as three rows of Python floats."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = m
    four = (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22)
    k = four.index(max(four))
    s = 2.0 * math.sqrt(max(four[k], 1e-300))
    if k == 0:
        q = (m21 - m12, m02 - m20, m10 - m01, 0.25 * s * s)
    elif k == 1:
        q = (0.25 * s * s, m01 + m10, m02 + m20, m21 - m12)
    elif k == 2:
        q = (m01 + m10, 0.25 * s * s, m12 + m21, m02 - m20)
    else:
        q = (m02 + m20, m12 + m21, 0.25 * s * s, m10 - m01)
    n = math.sqrt(sum(c * c for c in q)) * (-1.0 if q[3] < 0 else 1.0)
    return (q[0] / n, q[1] / n, q[2] / n, q[3] / n)
