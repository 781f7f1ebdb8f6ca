"""CCD inverse kinematics as MMD solves it (babylon-mmd's solver, itself derived from saba's, is the reference).

Per IK bone, in evaluation order: every link's IK rotation is reset; then for ``loop_count`` iterations each
link (effector side first) is turned so the effector (``target``) moves towards the IK bone's position. The
step of link k is capped at ``limit_angle * (k + 1)``. A link with Euler limits is decomposed in an order
chosen from its ranges (YXZ when X stays within +-90 degrees, else ZYX when Y does, else XZY), clamped, and
rebuilt; during the first half of the iterations a single-axis link (a knee) turns about that axis only and
angles past a limit are reflected back inside it, which is what lets knees bend the right way. Iteration
stops once the effector is within 1e-4 units.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from udpgen.mmd.model import Model
from udpgen.rig import quat as Q
from udpgen.rig.quat import mul1 as _qmul

# Link Euler orders and single-axis modes.
YXZ, ZYX, XZY = 0, 1, 2
FREE, FIXED, AXIS_X, AXIS_Y, AXIS_Z = 0, 1, 2, 3, 4
_EULER_CLAMP = math.radians(88.0)      # keep the middle angle away from gimbal lock, as MMD does
_UNIT = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


@dataclass(frozen=True)
class Link:
    """One chain joint. lower/upper (3,) radians or None; ``order`` and ``axis`` derived from them."""
    bone: int
    lower: np.ndarray | None
    upper: np.ndarray | None
    order: int
    axis: int
    bounds: tuple | None = None     # (lower, upper) as Python floats, for the solver's inner loop


@dataclass(frozen=True)
class Chain:
    """An IK bone's chain. ``path``: the bones from the outermost link down to the effector, parent first
    (what has to be recomputed after a link turns)."""
    bone: int
    target: int
    loop_count: int
    limit_angle: float
    links: tuple[Link, ...]
    path: np.ndarray


def _link(bone: int, lower, upper) -> Link:
    if lower is None:
        return Link(bone, None, None, XZY, FREE)
    lo = np.minimum(lower, upper).astype(np.float64)
    hi = np.maximum(lower, upper).astype(np.float64)
    half = math.pi / 2
    order = YXZ if (-half < lo[0] and hi[0] < half) else ZYX if (-half < lo[1] and hi[1] < half) else XZY
    zero = (lo == 0) & (hi == 0)
    axis = (FIXED if zero.all() else AXIS_X if zero[1] and zero[2] else AXIS_Y if zero[0] and zero[2]
            else AXIS_Z if zero[0] and zero[1] else FREE)
    return Link(bone, lo, hi, order, axis, (tuple(lo.tolist()), tuple(hi.tolist())))


def build_chains(model: Model, sk) -> dict[int, Chain]:
    """IK chains of ``model`` keyed by IK bone index; chains naming missing bones are dropped."""
    n = sk.n
    chains = {}
    for i, b in enumerate(model.bones):
        ik = b.ik
        if ik is None or not (0 <= ik.target < n):
            continue
        links = tuple(_link(l.bone, l.lower, l.upper) for l in ik.links if 0 <= l.bone < n and l.bone != ik.target)
        if not links:
            continue
        # bones from the outermost link's subtree that lie on the way to the effector
        ancestors, b2 = [], ik.target
        while b2 >= 0:
            ancestors.append(b2)
            b2 = int(sk.parent[b2])
        outer = [l.bone for l in links if l.bone in ancestors]
        top = max(outer, key=ancestors.index) if outer else ik.target
        path = np.array(ancestors[:ancestors.index(top) + 1][::-1], np.int64)
        chains[i] = Chain(i, ik.target, max(int(ik.loop_count), 0), float(ik.limit_angle), links, path)
    return chains


# --- scalar quaternion maths: the solver runs hundreds of tiny steps per pose, where Python floats beat
# numpy's per-call overhead by an order of magnitude. Quaternions are (x, y, z, w) tuples.

def _qrot(q, v):
    x, y, z, w = q
    vx, vy, vz = v
    tx, ty, tz = 2 * (y * vz - z * vy), 2 * (z * vx - x * vz), 2 * (x * vy - y * vx)
    return (vx + w * tx + y * tz - z * ty, vy + w * ty + z * tx - x * tz, vz + w * tz + x * ty - y * tx)


def _qconj(q):
    return (-q[0], -q[1], -q[2], q[3])


def _qaxis(axis, angle):
    s = math.sin(0.5 * angle)
    return (axis[0] * s, axis[1] * s, axis[2] * s, math.cos(0.5 * angle))


def _qmatrix(q):
    x, y, z, w = q
    return ((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
            (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
            (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)))


def _euler(R, order: int) -> list[float]:
    """Angles [x, y, z] of rotation matrix R (column vectors) composed as R = Ry Rx Rz (YXZ), Rz Ry Rx (ZYX)
    or Rx Rz Ry (XZY); the middle angle is kept within +-88 degrees."""
    if order == YXZ:
        x = _clamp_mid(math.asin(max(-1.0, min(1.0, -R[1][2]))))
        c = 1.0 / math.cos(x)
        return [x, math.atan2(R[0][2] * c, R[2][2] * c), math.atan2(R[1][0] * c, R[1][1] * c)]
    if order == ZYX:
        y = _clamp_mid(math.asin(max(-1.0, min(1.0, -R[2][0]))))
        c = 1.0 / math.cos(y)
        return [math.atan2(R[2][1] * c, R[2][2] * c), y, math.atan2(R[1][0] * c, R[0][0] * c)]
    z = _clamp_mid(math.asin(max(-1.0, min(1.0, -R[0][1]))))
    c = 1.0 / math.cos(z)
    return [math.atan2(R[2][1] * c, R[1][1] * c), math.atan2(R[0][2] * c, R[0][0] * c), z]


def _clamp_mid(a: float) -> float:
    return max(-_EULER_CLAMP, min(_EULER_CLAMP, a))


def _from_euler(e, order: int):
    qx = _qaxis((1.0, 0.0, 0.0), e[0])
    qy = _qaxis((0.0, 1.0, 0.0), e[1])
    qz = _qaxis((0.0, 0.0, 1.0), e[2])
    if order == YXZ:
        return _qmul(_qmul(qy, qx), qz)
    if order == ZYX:
        return _qmul(_qmul(qz, qy), qx)
    return _qmul(_qmul(qx, qz), qy)


def _limit(a: float, lo: float, hi: float, reflect: bool) -> float:
    """Clamp ``a`` to [lo, hi]; while ``reflect``, an overshoot is mirrored back inside when it fits."""
    if a < lo:
        m = 2 * lo - a
        return m if reflect and m <= hi else lo
    if a > hi:
        m = 2 * hi - a
        return m if reflect and m >= lo else hi
    return a


class _Path:
    """World rotation/position of the bones from the outermost link to the effector, as Python floats."""

    def __init__(self, state, chain: Chain):
        sk = state.sk
        self.bones = [int(b) for b in chain.path]
        self.at = {b: i for i, b in enumerate(self.bones)}
        p = int(sk.parent[self.bones[0]])
        if p >= 0:
            w = state.world_of(p)
            self.base_q = Q.from_matrix1(w[:3, :3].tolist())
            self.base_p = tuple(w[:3, 3].tolist())
        else:
            self.base_q, self.base_p = (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0)
        self.local_q = [tuple(state.local_q[b].tolist()) for b in self.bones]
        self.offset = [tuple((sk.offset[b] + state.grant_t[b]).tolist()) for b in self.bones]
        self.wq = [None] * len(self.bones)
        self.wp = [None] * len(self.bones)
        self.update(0)

    def parent_q(self, i: int):
        return self.wq[i - 1] if i > 0 else self.base_q

    def update(self, start: int) -> None:
        pq, pp = (self.wq[start - 1], self.wp[start - 1]) if start > 0 else (self.base_q, self.base_p)
        local_q, offset, wq, wp = self.local_q, self.offset, self.wq, self.wp
        last = len(self.bones) - 1
        for i in range(start, last + 1):
            # world position = parent position + parent rotation applied to the offset (inlined _qrot)
            x, y, z, w = pq
            vx, vy, vz = offset[i]
            tx, ty, tz = 2 * (y * vz - z * vy), 2 * (z * vx - x * vz), 2 * (x * vy - y * vx)
            pp = (pp[0] + vx + w * tx + y * tz - z * ty, pp[1] + vy + w * ty + z * tx - x * tz,
                  pp[2] + vz + w * tz + x * ty - y * tx)
            wp[i] = pp
            if i < last:            # the effector's own rotation is never read
                pq = wq[i] = _qmul(pq, local_q[i])


def solve(state, chain: Chain) -> None:
    """Solve ``chain`` in place on a skeleton evaluation ``state`` (see skeleton._State)."""
    for link in chain.links:            # IK starts from the animated pose: r = r_anim_append
        state.ik_q[link.bone] = Q.IDENTITY
        state.local_q[link.bone] = state.grant_q[link.bone]
        state.mark(link.bone)
    ik_pos = tuple(state.world_of(chain.bone)[:3, 3].tolist())
    path = _Path(state, chain)
    links = [(k, link, path.at[link.bone], tuple(state.grant_q[link.bone].tolist()))
             for k, link in enumerate(chain.links) if link.axis != FIXED and link.bone in path.at]
    ik_q = {link.bone: (0.0, 0.0, 0.0, 1.0) for _, link, _, _ in links}
    if _dist2(ik_pos, path.wp[-1]) >= 1e-8:
        half = chain.loop_count // 2
        for it in range(chain.loop_count):
            for k, link, i, grant in links:
                _solve_link(path, chain, k, link, i, grant, ik_q, ik_pos, it < half)
            if _dist2(ik_pos, path.wp[-1]) < 1e-8:
                break
    # Everything hanging off the chain follows it (only the effector path was kept current while solving).
    for _, link, i, _ in links:
        state.ik_q[link.bone] = ik_q[link.bone]
        state.local_q[link.bone] = path.local_q[i]       # = ik * grant, as set by the last step
        state.mark(link.bone)


def _dist2(a, b) -> float:
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 + (a[2] - b[2]) ** 2


def _unit(v):
    n = math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
    return (v[0] / n, v[1] / n, v[2] / n) if n > 1e-12 else None


def _solve_link(path: _Path, chain: Chain, k: int, link: Link, i: int, grant, ik_q: dict, ik_pos,
                use_axis: bool) -> None:
    (px, py, pz), (gx, gy, gz) = path.wp[i], path.wp[-1]
    tx, ty, tz = px - gx, py - gy, pz - gz
    ix, iy, iz = px - ik_pos[0], py - ik_pos[1], pz - ik_pos[2]
    nt = math.sqrt(tx * tx + ty * ty + tz * tz)
    ni = math.sqrt(ix * ix + iy * iy + iz * iz)
    if nt < 1e-12 or ni < 1e-12:
        return
    tx, ty, tz, ix, iy, iz = tx / nt, ty / nt, tz / nt, ix / ni, iy / ni, iz / ni
    ax, ay, az = ty * iz - tz * iy, tz * ix - tx * iz, tx * iy - ty * ix       # turns to_target onto to_ik
    if ax * ax + ay * ay + az * az < 1e-8:
        return
    pq = path.parent_q(i)
    if link.lower is not None and use_axis and link.axis in (AXIS_X, AXIS_Y, AXIS_Z):
        # a hinge: turn about the parent's own axis, in whichever direction the free step would
        j = link.axis - AXIS_X
        e = [0.0, 0.0, 0.0]
        e[j] = 1.0
        wx, wy, wz = _qrot(pq, e)
        e[j] = 1.0 if ax * wx + ay * wy + az * wz >= 0 else -1.0
        axis = e
    else:
        axis = _unit(_qrot(_qconj(pq), (ax, ay, az)))
    angle = min(chain.limit_angle * (k + 1), math.acos(max(-1.0, min(1.0, tx * ix + ty * iy + tz * iz))))
    ik = _qmul(_qaxis(axis, angle), ik_q[link.bone])
    if link.lower is not None:
        e = _euler(_qmatrix(_qmul(ik, grant)), link.order)
        lo, hi = link.bounds
        if link.axis == FREE:
            e = [_limit(e[0], lo[0], hi[0], use_axis), _limit(e[1], lo[1], hi[1], use_axis),
                 _limit(e[2], lo[2], hi[2], use_axis)]
            limited = _from_euler(e, link.order)
        else:
            # a hinge: the other two angles clamp to 0, so the Euler rebuild is the one axis's turn
            j = link.axis - AXIS_X
            limited = _qaxis(_UNIT[j], _limit(e[j], lo[j], hi[j], use_axis))
        ik = _qmul(limited, _qconj(grant))
    ik_q[link.bone] = ik
    path.local_q[i] = _qmul(ik, grant)
    path.update(i)
