"""Mesh-building helpers for :mod:`udpgen.sample.character`: the sample character's proportions, joints and skinned
parametric surfaces, as pure numpy.

Frame: MMD native (left-handed, +Y up, the character faces -Z, her left side at +X), lengths in MMD units
(1 unit = 8 cm), angles in radians unless a name ends in ``_DEG``.

Every :class:`Surface` carries per-vertex *anchors*: the point on its medial axis (tubes) or its centre
(ellipsoids) that the outward normal points away from, so ``dot(normal, position - anchor) > 0`` checks
orientation. Faces use MMD's winding: the numeric cross product ``(b - a) x (c - a)`` points along the
outward vertex normals (true for 99.8 % of the faces of Gene_light.pmx), i.e. front faces look clockwise
in MMD's left-handed view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# ---------------------------------------------------------------------------------------------------
# Proportions. Feet on y = 0, hair top ~19.45 units (1.56 m), head 3.45 units (chin 16.0 to hair top),
# i.e. ~5.6 heads tall: anime proportions.
# ---------------------------------------------------------------------------------------------------
ARM_DROOP_DEG = 37.0          # rest A-pose: upper arm this far below horizontal (Gene_light: ~34)
HEAD_CENTER = np.array([0.0, 17.65, 0.0])
HEAD_AXES = np.array([1.42, 1.65, 1.48])          # semi-axes x, y, z: chin at y = 16.0, crown at 19.3
HAIR_AXES = HEAD_AXES + 0.13                       # the hair cap floats 0.13 units above the scalp
FACE_OFFSET = 1.012                                # eyes/mouth lie on the head ellipsoid scaled by this
EYE_X, EYE_Y, EYE_RADII = 0.52, 16.95, (0.33, 0.42)
MOUTH_Y, MOUTH_RADII = 16.38, (0.2, 0.06)
UPPER_ARM, FOREARM, HAND = 3.0, 2.7, 1.2           # segment lengths along the arm


def arm_direction(side: float = 1.0) -> np.ndarray:
    """(3,) unit rest direction of the upper arm; ``side`` +1 for her left (+X), -1 for her right."""
    r = math.radians(ARM_DROOP_DEG)
    return np.array([side * math.cos(r), -math.sin(r), 0.0])


def joint_positions() -> dict[str, np.ndarray]:
    """Rest-pose bone heads by MMD bone name: (3,) float64 MMD units. Right side = left mirrored in x."""
    J = {"全ての親": (0, 0, 0), "センター": (0, 8.4, 0), "グルーブ": (0, 8.6, 0), "腰": (0, 11.0, 0.05),
         "上半身": (0, 11.4, 0), "上半身2": (0, 13.0, 0), "首": (0, 15.3, 0), "頭": (0, 16.35, 0),
         "両目": (0, 20.1, -0.5), "下半身": (0, 11.4, 0)}
    d = arm_direction()
    arm = np.array([1.55, 14.75, 0.1])
    left = {"目": (EYE_X, EYE_Y, -0.8), "肩": (0.35, 14.95, 0.1), "腕": arm,
            "腕捩": arm + 0.5 * UPPER_ARM * d, "ひじ": arm + UPPER_ARM * d,
            "手捩": arm + (UPPER_ARM + 0.5 * FOREARM) * d, "手首": arm + (UPPER_ARM + FOREARM) * d,
            "手先": arm + (UPPER_ARM + FOREARM + HAND) * d,
            # the knee sits slightly forward so a straight-ish leg still has a bend direction for IK
            "足": (0.85, 10.3, 0.0), "ひざ": (0.85, 5.7, -0.12), "足首": (0.85, 1.1, 0.18),
            "つま先": (0.85, 0.0, -1.3)}
    out = {k: np.asarray(v, np.float64) for k, v in J.items()}
    for k, v in left.items():
        v = np.asarray(v, np.float64)
        out["左" + k] = v
        out["右" + k] = v * np.array([-1.0, 1.0, 1.0])
    return out


# ---------------------------------------------------------------------------------------------------
# Surfaces
# ---------------------------------------------------------------------------------------------------
@dataclass
class Surface:
    """One mesh piece. n vertices, m triangles; bones/weights are filled by the rigging step.

    positions, normals (unit), anchors: (n, 3) float64; uvs (n, 2) (v down, as PMX stores them);
    faces (m, 3) int64 local indices; axial (n,) arclength along the tube's centreline (0 elsewhere);
    local (n, 2) disc coordinates in [-1, 1] for face patches (zeros elsewhere);
    bones (n, 4) int64 bone indices (-1 unused), weights (n, 4) float64 summing to 1.
    """
    name: str
    material: str
    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    faces: np.ndarray
    anchors: np.ndarray
    axial: np.ndarray
    local: np.ndarray = field(default=None)
    bones: np.ndarray = field(default=None)
    weights: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.local is None:
            self.local = np.zeros((len(self.positions), 2))

    def rig(self, bones, weights) -> "Surface":
        """Set skinning: ``bones`` (n, k) int and ``weights`` (n, k) with k <= 4, padded to 4."""
        b = np.full((len(self.positions), 4), -1, np.int64)
        w = np.zeros((len(self.positions), 4))
        bones, weights = np.atleast_2d(bones), np.atleast_2d(weights)
        b[:, :bones.shape[1]] = bones
        w[:, :weights.shape[1]] = weights
        self.bones, self.weights = b, w
        return self


def unit(v: np.ndarray) -> np.ndarray:
    """Normalise the last axis of ``v`` (..., 3)."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def orient_faces(positions: np.ndarray, faces: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Return ``faces`` (m, 3) with each triangle wound so (b - a) x (c - a) agrees with its vertex normals."""
    p = positions[faces]
    n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    flip = (n * normals[faces].sum(1)).sum(1) < 0
    out = faces.copy()
    out[flip] = out[flip][:, [0, 2, 1]]
    return out


def grid_faces(rows: int, cols: int, start: int = 0) -> np.ndarray:
    """Two triangles per quad of a rows x cols vertex grid (row-major, no wrap): (2 (rows-1)(cols-1), 3)."""
    i, j = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = (i * cols + j).ravel() + start
    b, c, d = a + 1, a + cols + 1, a + cols
    return np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])


def fan_faces(pole: int, ring: np.ndarray) -> np.ndarray:
    """Triangles (len(ring) - 1, 3) joining vertex ``pole`` to consecutive ring vertices."""
    return np.stack([np.full(len(ring) - 1, pole), ring[:-1], ring[1:]], 1)


def polyline_at(points: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Points (k, 3) at arclengths ``s`` (k,) along the polyline ``points`` (p, 3), extrapolating linearly
    past both ends (limb tubes start inside the torso, before their first joint)."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    knots = np.concatenate([[0.0], np.cumsum(seg)])
    i = np.clip(np.searchsorted(knots, s, side="right") - 1, 0, len(seg) - 1)
    t = (s - knots[i]) / seg[i]
    return points[i] + t[:, None] * (points[i + 1] - points[i])


def tube(name: str, material: str, centres: np.ndarray, radii: np.ndarray, side: np.ndarray,
         n_around: int, uv_rect: tuple[float, float, float, float], axial: np.ndarray | None = None,
         caps: tuple[bool, bool] = (True, True), ripple: tuple[float, int] = (0.0, 0)) -> Surface:
    """A generalised cylinder: elliptic rings around a centreline, optionally closed with domed caps.

    centres (K, 3) ring centres; radii (K, 2) semi-axes along e1 (the ``side`` hint (3,) made
    perpendicular to the tangent) and e2 = tangent x e1; ``ripple`` (amplitude, count) scales ring k's radius
    by 1 + amplitude * k/(K-1) * cos(count * phi) (skirt pleats). uv_rect (u0, v0, u1, v1): u runs around
    from phi = 0 (the e1 side), v along the centreline. ``axial`` (K,) arclength per ring (default: cumulative).
    Rings get n_around + 1 vertices (the seam is duplicated for the UVs). Normals are the numeric surface
    normals (cross product of the grid tangents), so varying radii tilt them correctly.
    """
    K, M = len(centres), n_around
    tang = unit(np.gradient(centres, axis=0))
    e1 = unit(side - (tang @ side)[:, None] * tang)
    e2 = np.cross(tang, e1)
    phi = 2 * np.pi * np.arange(M) / M
    amp, count = ripple
    scale = 1 + amp * np.linspace(0, 1, K)[:, None] * np.cos(count * phi)[None, :]          # (K, M)
    r1, r2 = radii[:, :1] * scale, radii[:, 1:] * scale
    P = (centres[:, None] + (r1 * np.cos(phi))[..., None] * e1[:, None]
         + (r2 * np.sin(phi))[..., None] * e2[:, None])                                     # (K, M, 3)
    d_phi = np.roll(P, -1, axis=1) - np.roll(P, 1, axis=1)
    d_k = np.gradient(P, axis=0)
    N = unit(np.cross(d_k, d_phi))
    N *= np.sign(((P - centres[:, None]) * N).sum(-1, keepdims=True))        # outward, away from the axis
    P, N = np.concatenate([P, P[:, :1]], 1), np.concatenate([N, N[:, :1]], 1)   # duplicate the seam
    u0, v0, u1, v1 = uv_rect
    uu, vv = np.meshgrid(np.linspace(u0, u1, M + 1), np.linspace(v0, v1, K))
    if axial is None:
        axial = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centres, axis=0), axis=1))])
    pos, nor = [P.reshape(-1, 3)], [N.reshape(-1, 3)]
    uv, anc = [np.stack([uu, vv], -1).reshape(-1, 2)], [np.repeat(centres, M + 1, axis=0)]
    ax = [np.repeat(axial, M + 1)]
    faces, n = [grid_faces(K, M + 1)], K * (M + 1)
    for end, k, sign in ((0, 0, -1.0), (1, K - 1, 1.0)):
        if not caps[end]:
            continue
        depth = 0.35 * radii[k].mean()                # a low dome, not a flat lid: no hard outline edge
        pos.append(centres[k] + sign * depth * tang[k])
        nor.append(sign * tang[k])
        uv.append([0.5 * (u0 + u1), (v0, v1)[end]])
        anc.append(centres[k])
        ax.append([axial[k] + sign * depth])
        faces.append(fan_faces(n, k * (M + 1) + np.arange(M + 1)))
        n += 1
    pos, nor = np.vstack(pos), np.vstack(nor)
    return Surface(name, material, pos, nor, np.vstack(uv), orient_faces(pos, np.vstack(faces), nor),
                   np.vstack(anc), np.concatenate(ax))


def ellipsoid_point(centre: np.ndarray, axes: np.ndarray, theta: np.ndarray, phi: np.ndarray):
    """Points and unit normals (..., 3) at polar angle theta (0 = top) and azimuth phi (0 = front, -Z;
    pi/2 = her left, +X) on the ellipsoid ``centre`` (3,) with semi-axes ``axes`` (3,)."""
    q = np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), -np.sin(theta) * np.cos(phi)], -1)
    return centre + axes * q, unit(q / axes)


def ellipsoid(name: str, material: str, centre: np.ndarray, axes: np.ndarray, theta: np.ndarray,
              bottom_pole: bool, uv_v: tuple[float, float] = (0.0, 1.0)) -> Surface:
    """An ellipsoid (cap) with a vertex at the crown: rings at polar angles ``theta`` (K, M) (row k, column
    j at azimuth 2 pi j / M; per-column angles shape the hair's fringe), plus a bottom pole if asked.
    u = azimuth / 2 pi, v = ring / (K - 1) mapped into ``uv_v``."""
    K, M = theta.shape
    phi = 2 * np.pi * np.arange(M + 1) / M
    th = np.concatenate([theta, theta[:, :1]], 1)
    P, N = ellipsoid_point(centre, axes, th, phi[None, :])
    uu, vv = np.meshgrid(phi / (2 * np.pi), np.linspace(*uv_v, K + 1)[1:])
    pos = [np.array([centre + [0, axes[1], 0]]), P.reshape(-1, 3)]
    nor = [np.array([[0.0, 1.0, 0.0]]), N.reshape(-1, 3)]
    uv = [np.array([[0.5, uv_v[0]]]), np.stack([uu, vv], -1).reshape(-1, 2)]
    faces = [fan_faces(0, 1 + np.arange(M + 1)), grid_faces(K, M + 1, start=1)]
    if bottom_pole:
        last = 1 + (K - 1) * (M + 1) + np.arange(M + 1)
        pos.append([centre - [0, axes[1], 0]])
        nor.append([[0.0, -1.0, 0.0]])
        uv.append([[0.5, uv_v[1]]])
        faces.append(fan_faces(1 + K * (M + 1), last))
    pos, nor = np.vstack(pos), np.vstack(nor)
    return Surface(name, material, pos, nor, np.vstack(uv), orient_faces(pos, np.vstack(faces), nor),
                   np.tile(centre, (len(pos), 1)), np.zeros(len(pos)))


def face_point(x: np.ndarray, y: np.ndarray, scale: float = FACE_OFFSET):
    """Point and unit normal (..., 3) on the front (-Z) half of the head ellipsoid scaled by ``scale``, at
    model-space x, y (arrays of equal shape). Used for the eyes and mouth and their morph targets."""
    a = HEAD_AXES * scale
    rx, ry = (x - HEAD_CENTER[0]) / a[0], (y - HEAD_CENTER[1]) / a[1]
    rz = -np.sqrt(np.clip(1 - rx ** 2 - ry ** 2, 0.0, None))
    q = np.stack([rx, ry, rz], -1)
    return HEAD_CENTER + a * q, unit(q / a)


def disc(n_rings: int, n_around: int) -> tuple[np.ndarray, np.ndarray]:
    """A unit disc: local points (1 + n_rings n_around, 2) (centre first, rings outward) and faces."""
    r = np.arange(1, n_rings + 1) / n_rings
    a = 2 * np.pi * np.arange(n_around) / n_around
    pts = np.vstack([[0.0, 0.0], (r[:, None, None] * np.stack([np.cos(a), np.sin(a)], -1)).reshape(-1, 2)])
    ring = lambda k: 1 + k * n_around + np.r_[np.arange(n_around), 0]     # noqa: E731 (closed loop)
    faces = [fan_faces(0, ring(0))]
    for k in range(n_rings - 1):
        i, o = ring(k), ring(k + 1)
        faces += [np.stack([i[:-1], o[:-1], o[1:]], 1), np.stack([i[:-1], o[1:], i[1:]], 1)]
    return pts, np.vstack(faces)


def face_patch(name: str, material: str, centre_xy: tuple[float, float], radii: tuple[float, float],
               uv_rect: tuple[float, float, float, float], n_rings: int = 3, n_around: int = 20) -> Surface:
    """An elliptic decal (eye, mouth) lying on the face: local disc coords (n, 2) map to model x, y via
    ``centre_xy`` + ``radii`` * local and are projected onto the scaled head ellipsoid; uv_rect
    (u0, v0, u1, v1) is the texture box the disc's bounding square maps to (local +y = up = smaller v)."""
    loc, faces = disc(n_rings, n_around)
    x, y = centre_xy[0] + radii[0] * loc[:, 0], centre_xy[1] + radii[1] * loc[:, 1]
    pos, nor = face_point(x, y)
    u0, v0, u1, v1 = uv_rect
    uv = np.stack([u0 + (u1 - u0) * (loc[:, 0] + 1) / 2, v0 + (v1 - v0) * (1 - loc[:, 1]) / 2], 1)
    return Surface(name, material, pos, nor, uv, orient_faces(pos, faces, nor),
                   np.tile(HEAD_CENTER, (len(pos), 1)), np.zeros(len(pos)), local=loc)


# ---------------------------------------------------------------------------------------------------
# Skinning helpers
# ---------------------------------------------------------------------------------------------------
def smoothstep(x: np.ndarray) -> np.ndarray:
    """3x^2 - 2x^3 on x clipped to [0, 1]: a C1 blend with flat ends."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def chain_weights(s: np.ndarray, first: int, joints: list[tuple[float, int, float]]):
    """Two-bone weights along a chain. ``s`` (n,) is each vertex's coordinate along the chain (arclength,
    or height); ``first`` the bone before the first joint; ``joints`` [(s_joint, bone_after, half_width)]
    in increasing s with non-overlapping blend zones. Returns bones (n, 2) int, weights (n, 2): one bone
    (weight 1, the other -1/0) away from joints, a smoothstep blend within half_width of one."""
    b = np.stack([np.full(len(s), first), np.full(len(s), -1)], 1)
    w = np.stack([np.ones(len(s)), np.zeros(len(s))], 1)
    prev = first
    for sj, bone, hw in joints:
        b[s >= sj + hw, 0] = bone
        zone = np.abs(s - sj) < hw
        t = smoothstep((s[zone] - (sj - hw)) / (2 * hw))
        b[zone] = (prev, bone)
        w[zone] = np.stack([1 - t, t], 1)
        prev = bone
    return b, w


def chaikin(points: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Corner-cutting smoothing of a polyline (p, 3), keeping both end points (a quadratic B-spline)."""
    for _ in range(iterations):
        a, b = points[:-1], points[1:]
        mid = np.stack([0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b], 1).reshape(-1, 3)
        points = np.vstack([points[:1], mid[1:-1], points[-1:]])
    return points


def _profile(s: np.ndarray, table: list[tuple[float, float, float]]) -> np.ndarray:
    """Radii (k, 2) at ``s`` interpolated from rows (s, r1, r2) of ``table``."""
    t = np.asarray(table, np.float64)
    return np.stack([np.interp(s, t[:, 0], t[:, 1]), np.interp(s, t[:, 0], t[:, 2])], 1)


# Texture atlas regions (u0, v0, u1, v1); inset by ~1 texel so bilinear filtering never bleeds across.
CLOTH_SHIRT, CLOTH_SLEEVE = (0.0, 0.008, 1.0, 0.39), (0.0, 0.41, 1.0, 0.49)
CLOTH_SKIRT, CLOTH_SHOES = (0.0, 0.51, 1.0, 0.74), (0.0, 0.76, 1.0, 0.99)
FACE_EYE, FACE_MOUTH = (0.01, 0.02, 0.49, 0.98), (0.51, 0.02, 0.99, 0.98)


def body_surfaces(bone: dict[str, int]) -> list[Surface]:
    """All rigged surfaces of the sample character; ``bone`` maps MMD bone names to indices."""
    J = joint_positions()
    Z, X = np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])
    out: list[Surface] = []

    # Head (skin) and the face decals. phi = 0 is the face (-Z).
    theta = np.tile(np.linspace(0, np.pi, 16)[1:-1, None], (1, 32))
    out.append(ellipsoid("head", "skin", HEAD_CENTER, HEAD_AXES, theta, True).rig(bone["頭"], 1.0))
    for side, lr in ((1, "左"), (-1, "右")):
        eye = face_patch(f"eye_{'LR'[side < 0]}", "eye", (side * EYE_X, EYE_Y), EYE_RADII, FACE_EYE)
        out.append(eye.rig(bone[lr + "目"], 1.0))       # the eyes follow the (append) eye bones
    out.append(face_patch("mouth", "mouth", (0.0, MOUTH_Y), MOUTH_RADII, FACE_MOUTH, 2, 16).rig(bone["頭"], 1.0))

    # Neck: blends into the chest below and the head above.
    y = np.linspace(14.9, 16.6, 6)
    neck = tube("neck", "skin", np.stack([0 * y, y, 0 * y], 1), _profile(y, [(14.9, .42, .42), (16.6, .36, .36)]),
                Z, 12, (0, 0, 1, 1), axial=y)
    out.append(neck.rig(*chain_weights(neck.axial, bone["上半身2"], [(15.3, bone["首"], .2), (16.3, bone["頭"], .2)])))

    # Torso (shirt): elliptic rings by height; u = 0 at the back so the ribbon at u = 0.5 is on her front.
    table = [(9.7, 1.25, 0.9), (10.4, 1.55, 1.08), (11.0, 1.45, 1.0), (11.9, 1.18, 0.84), (12.8, 1.35, 0.95),
             (13.5, 1.5, 1.05), (14.2, 1.6, 1.0), (14.75, 1.55, 0.92), (15.1, 1.15, 0.75), (15.3, 0.6, 0.5)]
    y = np.concatenate([np.linspace(9.7, 14.75, 13), [15.0, 15.15, 15.3]])
    r = _profile(y, [(t[0], t[2], t[1]) for t in table])          # e1 = Z (depth), e2 = x (width)
    torso = tube("torso", "clothes", np.stack([0 * y, y, 0 * y], 1), r, Z, 32,
                 (CLOTH_SHIRT[0], CLOTH_SHIRT[3], CLOTH_SHIRT[2], CLOTH_SHIRT[1]), axial=y)
    b, w = chain_weights(torso.positions[:, 1], bone["下半身"], [(11.3, bone["上半身"], .45), (12.9, bone["上半身2"], .45)])
    # shoulders: upper chest vertices near each arm also follow the shoulder bone
    p = torso.positions
    t = 0.6 * smoothstep((np.abs(p[:, 0]) - 0.9) / 0.7) * smoothstep((p[:, 1] - 13.9) / 0.5)
    sh = t > 1e-4
    b[sh] = np.stack([np.full(sh.sum(), bone["上半身2"]), np.where(p[sh, 0] > 0, bone["左肩"], bone["右肩"])], 1)
    w[sh] = np.stack([1 - t[sh], t[sh]], 1)
    out.append(torso.rig(b, w))

    # Skirt: a pleated cone, double-sided, four-bone weights (BDEF4) between the hips and both legs.
    y = np.linspace(12.0, 7.6, 10)
    h = (12.0 - y) / 4.4
    r = np.stack([0.9 + h * 1.6, 1.24 + h * 1.76], 1)             # e1 = Z (depth), e2 = x (width)
    skirt = tube("skirt", "skirt", np.stack([0 * y, y, 0 * y + 0.05], 1), r, Z, 48,
                 (CLOTH_SKIRT[0], CLOTH_SKIRT[1], CLOTH_SKIRT[2], CLOTH_SKIRT[3]), caps=(False, False),
                 ripple=(0.06, 12))
    p = skirt.positions
    h = np.clip((12.0 - p[:, 1]) / 4.4, 0, 1)
    left = 0.5 * (1 + np.tanh(p[:, 0] / 0.8))
    w_up = 0.05 + 0.15 * (1 - h)
    w_l, w_r = 0.02 + 0.6 * h * left, 0.02 + 0.6 * h * (1 - left)
    skirt.rig(np.tile([bone["下半身"], bone["左足"], bone["右足"], bone["上半身"]], (len(p), 1)),
              np.stack([1 - w_up - w_l - w_r, w_l, w_r, w_up], 1))
    out.append(skirt)

    for side, lr in ((1.0, "左"), (-1.0, "右")):
        m = np.array([side, 1.0, 1.0])
        # Arm + hand (skin), one tube from inside the shoulder to the fingertips; the hand is flat in the
        # plane of the arm and Z (palms toward the thighs), so radii are (depth e1 = Z, thickness e2).
        d = arm_direction(side)
        s = np.concatenate([np.arange(-0.35, 5.6, 0.33), [5.6, 5.9, 6.2, 6.5, 6.8, 7.0]])
        prof = [(-.35, .42, .42), (0, .42, .43), (1.5, .37, .38), (3.0, .31, .31), (4.2, .32, .30),
                (5.6, .24, .21), (5.9, .34, .16), (6.5, .38, .16), (6.9, .28, .13), (7.0, .2, .1)]
        arm = tube(f"arm_{lr}", "skin", J[lr + "腕"] + s[:, None] * d, _profile(s, prof), Z, 16, (0, 0, 1, 1), axial=s)
        joints = [(0.0, bone[lr + "腕"], .3), (0.55 * UPPER_ARM, bone[lr + "腕捩"], .45),
                  (UPPER_ARM, bone[lr + "ひじ"], .35), (UPPER_ARM + 0.5 * FOREARM, bone[lr + "手捩"], .45),
                  (UPPER_ARM + FOREARM, bone[lr + "手首"], .3)]
        out.append(arm.rig(*chain_weights(arm.axial, bone[lr + "肩"], joints)))
        s = np.linspace(-0.3, 1.1, 5)
        sleeve = tube(f"sleeve_{lr}", "clothes", J[lr + "腕"] + s[:, None] * d,
                      _profile(s, [(-.3, .5, .5), (1.1, .56, .56)]), Z, 16, CLOTH_SLEEVE, axial=s, caps=(True, False))
        out.append(sleeve.rig(*chain_weights(sleeve.axial, bone[lr + "肩"], joints[:1])))

        # Leg (skin) from inside the hips to just below the ankle, along hip -> knee -> ankle.
        pts = np.stack([J[lr + "足"], J[lr + "ひざ"], J[lr + "足首"]])
        L1, L2 = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        s = np.linspace(-0.5, L1 + L2 + 0.25, 22)
        prof = [(-.5, .7, .7), (0, .8, .78), (.5 * L1, .68, .66), (L1, .5, .48), (L1 + 1.2, .55, .53),
                (L1 + L2 - .6, .38, .38), (L1 + L2 + .25, .36, .36)]
        leg = tube(f"leg_{lr}", "skin", polyline_at(pts, s), _profile(s, prof), Z, 16, (0, 0, 1, 1), axial=s)
        joints = [(0.0, bone[lr + "足"], .45), (L1, bone[lr + "ひざ"], .45), (L1 + L2, bone[lr + "足首"], .3)]
        out.append(leg.rig(*chain_weights(leg.axial, bone["下半身"], joints)))

        # Boots: a cuff around the shin and ankle plus the foot, which rests flat on y = 0.
        s = np.linspace(L1 + L2 - 1.0, L1 + L2 + 0.4, 5)
        boot = tube(f"boot_{lr}", "shoes", polyline_at(pts, s), _profile(s, [(s[0], .5, .5), (s[-1], .44, .44)]),
                    Z, 16, CLOTH_SHOES, axial=s)
        out.append(boot.rig(*chain_weights(boot.axial, bone[lr + "ひざ"], joints[2:])))
        z = np.linspace(0.62, -1.55, 9)
        r = _profile(-z, [(-.62, .36, .45), (-.3, .42, .5), (.4, .46, .44), (1.1, .44, .36), (1.55, .3, .28)])
        foot = tube(f"foot_{lr}", "shoes", np.stack([0 * z + J[lr + "足首"][0], r[:, 1], z], 1), r, X, 16,
                    (CLOTH_SHOES[0], 0.8, CLOTH_SHOES[2], CLOTH_SHOES[3]))
        out.append(foot.rig(bone[lr + "足首"], 1.0))

        # Twin tail and a side lock (hair), rigid on the head.
        ctrl = np.array([[1.35, 18.75, .55], [1.95, 18.6, .95], [2.25, 17.1, 1.3], [2.35, 14.6, 1.45],
                         [2.15, 12.0, 1.4], [1.9, 10.6, 1.3]]) * m
        c = chaikin(ctrl)
        u = np.linspace(0, 1, 16)
        c = polyline_at(c, u * np.linalg.norm(np.diff(c, axis=0), axis=1).sum())
        r = _profile(u, [(0, .28, .28), (.12, .5, .45), (.35, .62, .55), (.7, .5, .45), (.92, .22, .2), (1, .1, .1)])
        out.append(tube(f"twintail_{lr}", "hair", c, r, Z, 12, (0, 0.05, 1, 0.95)).rig(bone["頭"], 1.0))
        ctrl = np.array([[1.28, 18.45, -.85], [1.43, 17.3, -.98], [1.4, 16.2, -.92], [1.3, 15.55, -.85]]) * m
        c = chaikin(ctrl)
        u = np.linspace(0, 1, 9)
        c = polyline_at(c, u * np.linalg.norm(np.diff(c, axis=0), axis=1).sum())
        r = _profile(u, [(0, .1, .3), (.5, .1, .3), (1, .04, .1)])  # thin across x, wide front-to-back
        out.append(tube(f"sidelock_{lr}", "hair", c, r, X, 10, (0, 0.1, 1, 0.9)).rig(bone["頭"], 1.0))

    # Hair cap: from the crown down to a zigzag fringe over the brow, lower at the sides and back.
    M = 40
    phi = 2 * np.pi * np.arange(M) / M
    tmax = np.radians(78 + 62 * (1 - np.cos(phi)) / 2 + 9 * (np.arange(M) % 2) * (np.cos(phi) > -0.35))
    theta = tmax[None, :] * (np.arange(1, 11)[:, None] / 10)
    out.append(ellipsoid("hair_cap", "hair", HEAD_CENTER, HAIR_AXES, theta, False, (0.0, 0.95)).rig(bone["頭"], 1.0))
    return out
