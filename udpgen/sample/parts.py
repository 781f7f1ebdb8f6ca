"""Parts a family character is dressed with, on top of the sample's body: strand cards (hair, capes) with their
bones, rigid bodies and joints; skirt bone chains with their bodies and the leg bodies they collide with; and
rigid accessories (glasses, a hat, a ribbon).

Every part is built in the sample's unshaped frame (MMD units, +Y up, the character faces -Z) and mapped by
the character's shape (:class:`udpgen.sample.family` ``_Shape``: head parts with head weight 1, body parts
with 0) before it is appended. A part owns a material; :func:`append_mesh` puts its triangles at the end
of the face list under that material (a new material is appended last, as PMX needs the face order to
follow the material order).

Cards are laid out as MMD modellers do: a chain of bones under a parent bone, one capsule per segment
(mode 1: physics drives the bone), a kinematic anchor body on the parent (mode 0), and 6-DOF spring joints
with angle limits between consecutive bodies; the anchor collides with nothing of its own group.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from udpgen.mmd.model import Bone, BoneFlag, Joint, Material, MaterialFlag, Model, RigidBody
from udpgen.sample.character import pack_weights
from udpgen.sample.mesh import FACE_OFFSET, HEAD_AXES, HEAD_CENTER, Surface, grid_faces, tube, unit

__all__ = ["Card", "Mesh", "add_cards", "append_mesh", "glasses", "hat", "ribbon", "part_material",
           "CARD_BONES", "add_skirt_chains", "capsule_rotation", "SKIRT_CHAINS", "skirt_in_thighs", "CAPE_GROUP", "CAPE_MASK"]

CARD_BONES = 4                     # bones per card chain


@dataclass(frozen=True)
class Card:
    """One strand card: ``label`` names its bones (``{label}{prefix}{j}``), ``root`` (3,) its top in the
    unshaped frame, ``side`` (3,) unit vector across it, ``width`` and ``length`` in MMD units, ``back``
    how far each segment steps towards +Z (behind her), ``limit_deg`` its joints' angle limit, ``tip`` its
    width at the tip as a fraction of ``width`` (hair tapers, a cape flares)."""
    label: str
    root: np.ndarray
    side: np.ndarray
    width: float
    length: float
    back: float = 0.25
    limit_deg: float = 25.0
    tip: float = 0.4


@dataclass
class Mesh:
    """Vertices (n, 3) positions / normals, (n, 2) uvs, (n, 4) bone ids and weights; (m, 3) local faces."""
    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    faces: np.ndarray
    bones: np.ndarray
    weights: np.ndarray

    @staticmethod
    def concat(meshes: list["Mesh"]) -> "Mesh":
        starts = np.cumsum([0] + [len(m.positions) for m in meshes])[:-1]
        return Mesh(*(np.concatenate([getattr(m, f) for m in meshes]) for f in ("positions", "normals", "uvs")),
                    np.concatenate([m.faces + s for m, s in zip(meshes, starts)]),
                    np.concatenate([m.bones for m in meshes]), np.concatenate([m.weights for m in meshes]))


def part_material(name: str, name_en: str, texture_index: int, double_sided: bool = True,
                  edge: bool = True, toon: int = 0) -> Material:
    """A material like the sample's (white diffuse: the colour is the texture's)."""
    flags = MaterialFlag.GROUND_SHADOW | MaterialFlag.CAST_SHADOW | MaterialFlag.RECEIVE_SHADOW
    flags |= (MaterialFlag.EDGE if edge else 0) | (MaterialFlag.DOUBLE_SIDED if double_sided else 0)
    return Material(name, name_en, diffuse=np.ones(4, np.float32), specular=np.zeros(3, np.float32),
                    specular_power=5.0, ambient=np.full(3, 0.6, np.float32), flags=int(flags),
                    edge_color=np.array([0.25, 0.15, 0.2, 1.0], np.float32), edge_size=0.5 if edge else 0.0,
                    texture_index=texture_index, toon_shared=True, toon_index=toon)


def append_mesh(model: Model, mesh: Mesh, material: int | Material) -> Model:
    """``model`` with ``mesh`` appended: its faces go last, under ``material``, which is the index of the
    model's last material or a new Material (appended). Weights are packed as PMX BDEF1/2/4."""
    mats = list(model.materials)
    if isinstance(material, Material):
        mats.append(material)
        material = len(mats) - 1
    if material != len(mats) - 1:
        raise ValueError("a part's faces go last: its material must be the last one")
    n0 = len(model.positions)
    types, bids, bws = pack_weights(mesh.bones, mesh.weights)
    mats[material] = dataclasses.replace(mats[material], face_count=mats[material].face_count + len(mesh.faces))
    cat = lambda a, b: np.concatenate([a, np.asarray(b).astype(a.dtype)])   # noqa: E731
    n = n0 + len(mesh.positions)
    return dataclasses.replace(
        model, positions=cat(model.positions, mesh.positions), normals=cat(model.normals, mesh.normals),
        uvs=cat(model.uvs, mesh.uvs), additional_uvs=np.zeros((n, 0, 4), np.float32),
        weight_types=cat(model.weight_types, types), bone_indices=cat(model.bone_indices, bids),
        bone_weights=cat(model.bone_weights, bws), sdef=np.zeros((n, 3, 3), np.float32),
        edge_scale=np.ones(n, np.float32), faces=cat(model.faces, mesh.faces + n0), materials=tuple(mats))


def add_cards(model: Model, cards: list[Card], parent: str, prefix: str, prefix_en: str, shape, head_weight: float,
              anchor: tuple[str, str, np.ndarray, float], groups: tuple[tuple[int, int], tuple[int, int]],
              material: int | Material) -> Model:
    """Strand cards hanging from bone ``parent``: bone chains, rigid bodies, joints and the card mesh
    (rows along the chain x 3 across, two-sided, ``Card.tip`` wide at the tip).

    shape: maps unshaped points, ``head_weight`` the blend it uses (1 for the head, 0 for the body);
    anchor: (name, English name, centre (3,) unshaped, radius) of the kinematic sphere on ``parent``;
    groups: ((group, collision mask) of the anchor, (group, mask) of the card bodies); a mask bit set
    means "collides with that group", as MMD files store it."""
    if not cards:
        return model
    bones, rigids, joints = list(model.bones), list(model.rigid_bodies), list(model.joints)
    pid = model.bone_index(parent)
    w1 = np.full(1, head_weight)
    aname, aname_en, centre, radius = anchor
    (agroup, amask), (group, mask) = groups
    anchor_id = len(rigids)
    rigids.append(RigidBody(aname, aname_en, pid, agroup, amask, 0,
                            np.float32([radius * shape.k ** head_weight, 0, 0]),
                            shape.points(centre[None], w1)[0].astype(np.float32), np.zeros(3, np.float32),
                            1.0, 0.5, 0.5, 0.0, 0.5, 0))
    meshes = []
    rows = 2 * CARD_BONES + 1
    for card in cards:
        r = shape.points(card.root[None], w1)[0]
        seg = card.length * shape.lin[1] / CARD_BONES
        ids = []
        for j in range(CARD_BONES + 1):
            flags = BoneFlag.ROTATABLE | BoneFlag.VISIBLE | BoneFlag.OPERABLE | BoneFlag.TAIL_IS_BONE
            pos = (r + np.array([0, -seg * j, card.back * j])).astype(np.float32)
            ids.append(len(bones))
            bones.append(Bone(f"{card.label}{prefix}{j + 1}", f"{prefix_en}_{card.label}{j + 1}", pos,
                              ids[-2] if j else pid, 0, int(flags), tail_index=-1))
            if j:
                bones[ids[-2]] = dataclasses.replace(bones[ids[-2]], tail_index=ids[-1])
        prev = anchor_id
        lim = math.radians(card.limit_deg)
        for j in range(CARD_BONES):                      # one capsule per segment, on its upper bone
            a, b = bones[ids[j]].position, bones[ids[j + 1]].position
            mid, ln = (a + b) / 2, float(np.linalg.norm(b - a))
            tilt = math.atan2(float(b[2] - a[2]), float(a[1] - b[1]))
            rigids.append(RigidBody(f"{card.label}{prefix}{j + 1}", f"{prefix_en}_{card.label}{j + 1}", ids[j],
                                    group, mask, 2, np.float32([0.25 * card.width, ln, 0]), mid.astype(np.float32),
                                    np.float32([-tilt, 0, 0]), 0.2, 0.9, 0.99, 0.0, 0.5, 1))
            joints.append(Joint(f"{card.label}{prefix}{j + 1}", f"{prefix_en}_{card.label}{j + 1}", 0,
                                prev, len(rigids) - 1, a.astype(np.float32), np.zeros(3, np.float32),
                                np.zeros(3, np.float32), np.zeros(3, np.float32),
                                np.float32([-lim, -lim / 2, -lim]), np.float32([lim, lim / 2, lim]),
                                np.zeros(3, np.float32), np.float32([5, 5, 5])))
            prev = len(rigids) - 1
        t = np.linspace(0, 1, rows)
        line = np.array([bones[ids[0]].position + (bones[ids[-1]].position - bones[ids[0]].position) * s
                         for s in t], np.float64)
        taper = (1 + (card.tip - 1) * t)[:, None, None] * np.array([-0.5, 0.0, 0.5])[None, :, None]
        grid = line[:, None, :] + taper * card.width * card.side[None, None, :]
        nrm = unit(np.cross(card.side, [0, -1.0, 0]))
        pos_s = t * CARD_BONES
        lo = np.minimum(pos_s.astype(int), CARD_BONES - 1)
        frac = pos_s - lo
        bi = np.stack([np.array(ids)[lo], np.array(ids)[lo + 1], -np.ones(rows, int), -np.ones(rows, int)], 1)
        wi = np.stack([1 - frac, frac, np.zeros(rows), np.zeros(rows)], 1)
        meshes.append(Mesh(grid.reshape(-1, 3), np.tile(nrm, (rows * 3, 1)),
                           np.stack(np.meshgrid(np.linspace(0, 1, 3), t), -1).reshape(-1, 2),
                           grid_faces(rows, 3), np.repeat(bi, 3, 0), np.repeat(wi, 3, 0)))
    model = dataclasses.replace(model, bones=tuple(bones), rigid_bodies=tuple(rigids), joints=tuple(joints))
    return append_mesh(model, Mesh.concat(meshes), material)


# ---------------------------------------------------------------------------------------------------
# Rigid accessories on the head (weighted to 頭; built unshaped, mapped with head weight 1)
# ---------------------------------------------------------------------------------------------------
def _on_head(model: Model, surf, shape, uv: tuple[float, float]) -> Mesh:
    head = model.bone_index("頭")
    n = len(surf.positions)
    pos = shape.points(surf.positions, np.ones(n))
    bones = np.full((n, 4), -1, np.int64)
    bones[:, 0] = head
    weights = np.zeros((n, 4))
    weights[:, 0] = 1.0
    uvs = np.tile(np.asarray(uv, np.float64), (n, 1))      # one texel colour of the accessory atlas
    return Mesh(pos, surf.normals, uvs, surf.faces, bones, weights)


def glasses(model: Model, shape, uv) -> Mesh:
    """Two round rims in front of the eyes and a bridge (thin tubes)."""
    z = HEAD_CENTER[2] - HEAD_AXES[2] * FACE_OFFSET - 0.08
    y = HEAD_CENTER[1] - 0.35
    parts = []
    for s in (1.0, -1.0):
        a = np.linspace(0, 2 * np.pi, 25)
        ring = np.stack([s * 0.55 + 0.42 * np.cos(a), y + 0.36 * np.sin(a), np.full_like(a, z)], 1)
        parts.append(tube("rim", "acc", ring, np.full((len(ring), 2), 0.05), np.array([0, 0, 1.0]), 6,
                          (0, 0, 1, 1), caps=(False, False)))
    bridge = np.array([[0.14, y + 0.1, z], [-0.14, y + 0.1, z]])
    parts.append(tube("bridge", "acc", bridge, np.full((2, 2), 0.05), np.array([0, 0, 1.0]), 6, (0, 0, 1, 1)))
    return Mesh.concat([_on_head(model, p, shape, uv) for p in parts])


def hat(model: Model, shape, uv, rng: np.random.Generator) -> Mesh:
    """A brimmed hat on the crown: a crown tube (closed on top) and a flat brim ring."""
    top = HEAD_CENTER[1] + HEAD_AXES[1] * 0.55
    h = rng.uniform(0.8, 1.6)
    r = HEAD_AXES[0] * rng.uniform(0.95, 1.1)
    crown = np.stack([np.zeros(6), top + np.linspace(0, h, 6), np.zeros(6)], 1)
    parts = [tube("crown", "acc", crown, np.full((6, 2), r), np.array([1.0, 0, 0]), 16, (0, 0, 1, 1),
                  caps=(False, True))]
    # the brim: a flat annulus, 4 rings of growing radius x 17 around (the seam duplicated)
    brim_r = np.linspace(r, r * rng.uniform(1.4, 1.9), 4)
    a = 2 * np.pi * np.arange(17) / 16
    ring = brim_r[:, None, None] * np.stack([np.cos(a), np.zeros_like(a), np.sin(a)], -1)[None]
    pos = (ring + np.array([0.0, top + 0.02, 0.0])).reshape(-1, 3)
    nrm = np.tile([0, 1.0, 0], (len(pos), 1))
    parts.append(Surface("brim", "acc", pos, nrm, np.zeros((len(pos), 2)), grid_faces(4, 17), pos.copy(),
                         np.zeros(len(pos))))
    return Mesh.concat([_on_head(model, p, shape, uv) for p in parts])


def ribbon(model: Model, shape, uv, side: float) -> Mesh:
    """A bow on one side of the head: two flattened loops and a knot."""
    c = HEAD_CENTER + np.array([side * HEAD_AXES[0] * 0.75, HEAD_AXES[1] * 0.7, 0.2])
    parts = []
    for d in (-1.0, 1.0):
        line = np.stack([c + np.array([0, 0, d * s]) for s in np.linspace(0.05, 0.9, 6)])
        radii = np.stack([0.12 + 0.5 * np.sin(np.linspace(0.2, np.pi - 0.2, 6)), np.full(6, 0.12)], 1)
        parts.append(tube("loop", "acc", line, radii, np.array([0, 1.0, 0]), 8, (0, 0, 1, 1)))
    return Mesh.concat([_on_head(model, p, shape, uv) for p in parts])


# ---------------------------------------------------------------------------------------------------
# Skirt chains and the leg bodies they collide with
# ---------------------------------------------------------------------------------------------------
SKIRT_CHAINS = 8                   # bone chains around the skirt, two segments each
SKIRT_GROUP, LEG_GROUP = 3, 4      # collision groups (a mask bit set: collides with that group)
CAPE_GROUP = 2
CAPE_MASK = 0xFFFF & ~(1 << CAPE_GROUP) & ~(1 << 0) & ~(1 << SKIRT_GROUP)   # not itself, the head, the skirt


def capsule_rotation(u: np.ndarray) -> np.ndarray:
    """MMD Euler radians (x, y, z; applied Ry Rx Rz) turning a capsule's +Y axis onto the unit vector ``u``."""
    return np.float32([math.acos(float(np.clip(u[1], -1, 1))), math.atan2(float(u[0]), float(u[2])), 0.0])


def _capsule(name: str, name_en: str, bone: int, a: np.ndarray, b: np.ndarray, radius: float, group: int,
             mask: int, mode: int, mass: float = 0.3) -> RigidBody:
    """A capsule body from point ``a`` to ``b`` (MMD units) on ``bone``."""
    d = a - b
    ln = float(np.linalg.norm(d))
    return RigidBody(name, name_en, bone, group, mask, 2, np.float32([radius, max(ln - 2 * radius, 0.05), 0]),
                     ((a + b) / 2).astype(np.float32), capsule_rotation(d / max(ln, 1e-6)), mass, 0.9, 0.99, 0.0,
                     0.5, mode)


def _panel(name: str, name_en: str, bone: int, a: np.ndarray, b: np.ndarray, half_width: float, group: int,
           mask: int) -> RigidBody:
    """A box body from point ``a`` to ``b`` (MMD units) on ``bone``: a strip of skirt ``2 half_width`` wide
    along its tangent (the rotation of :func:`capsule_rotation` puts the box's X there for a strand that
    flares out of a waist), thin across it, the way MMD modellers cover a skirt with boxes."""
    d = a - b
    ln = float(np.linalg.norm(d))
    return RigidBody(name, name_en, bone, group, mask, 1, np.float32([half_width, ln / 2, 0.15]),
                     ((a + b) / 2).astype(np.float32), capsule_rotation(d / max(ln, 1e-6)), 0.3, 0.9, 0.99, 0.0,
                     0.5, 1)


def add_skirt_chains(model: Model, material: str = "スカート", outward_deg: float = 80.0, side_deg: float = 15.0,
                     twist_deg: float = 10.0) -> Model:
    """Bone chains for the skirt as MMD modellers rig one: SKIRT_CHAINS chains of two segments under 下半身
    around it, the skirt's vertices reweighted onto them (the waist ring stays on 下半身), a capsule per
    segment (mode 1) with 6-DOF spring joints to a kinematic anchor on 下半身, and kinematic capsules on the
    thighs and shins (mode 0) that the skirt collides with, so a raised leg pushes it aside.

    Each joint's frame is turned to its chain (X along the skirt's tangent, Z outward), so its limits say
    how a strand may swing: out by up to ``outward_deg`` (a raised knee lifts the front of the skirt), never
    in past its rest cone (a stiff skirt keeps its flare: with symmetric limits it hung onto the thighs,
    and random poses left more skirt inside a thigh with physics than without), ``side_deg`` along the
    tangent and ``twist_deg`` about itself."""
    names = [m.name for m in model.materials]
    if material not in names:
        return model
    mi = names.index(material)
    start = sum(m.face_count for m in model.materials[:mi])
    verts = np.unique(model.faces[start:start + model.materials[mi].face_count])
    if not len(verts):
        return model
    hip = model.bone_index("下半身")
    p = model.positions[verts].astype(np.float64)
    top, hem = float(p[:, 1].max()), float(p[:, 1].min())
    drop = (top - p[:, 1]) / max(top - hem, 1e-6)
    phi = np.arctan2(p[:, 0], p[:, 2])
    bones, rigids, joints = list(model.bones), list(model.rigid_bodies), list(model.joints)
    skirt_mask = 0xFFFF & ~(1 << SKIRT_GROUP) & ~(1 << CAPE_GROUP)
    anchor = len(rigids)
    rigids.append(RigidBody("腰基", "skirt_base", hip, SKIRT_GROUP, skirt_mask, 0,
                            np.float32([0.8 * float(np.abs(p[drop < 0.1][:, 0]).max(initial=1.0)), 0, 0]),
                            np.float32([0, top - 0.3, 0]), np.zeros(3, np.float32), 1.0, 0.5, 0.5, 0.0, 0.5, 0))
    chain_ids = np.zeros((SKIRT_CHAINS, 2), int)
    out, side, twist = (math.radians(d) for d in (outward_deg, side_deg, twist_deg))
    lower, upper = np.float32([0.0, -twist, -side]), np.float32([out, twist, side])
    for k in range(SKIRT_CHAINS):
        a = 2 * math.pi * k / SKIRT_CHAINS
        near = np.abs(np.angle(np.exp(1j * (phi - a)))) < math.pi / SKIRT_CHAINS
        pts = []
        for level in (0.05, 0.5, 1.0):
            sel = near & (np.abs(drop - level) < 0.12)
            pts.append(p[sel].mean(0) if sel.any() else p[near].mean(0))
        ids = []
        for j in range(3):
            flags = BoneFlag.ROTATABLE | BoneFlag.VISIBLE | BoneFlag.OPERABLE | BoneFlag.TAIL_IS_BONE
            ids.append(len(bones))
            bones.append(Bone(f"スカート{k + 1}_{j + 1}", f"skirt_{k + 1}_{j + 1}", pts[j].astype(np.float32),
                              ids[-2] if j else hip, 0, int(flags), tail_index=-1))
            if j:
                bones[ids[-2]] = dataclasses.replace(bones[ids[-2]], tail_index=ids[-1])
        chain_ids[k] = ids[:2]
        prev = anchor
        for j in range(2):
            # the strip covers 90% of its share of the circumference: the thigh cannot slip between strips
            ring = float(np.linalg.norm((pts[j] + pts[j + 1])[[0, 2]] / 2))
            rigids.append(_panel(f"スカート{k + 1}_{j + 1}", f"skirt_{k + 1}_{j + 1}", ids[j], pts[j], pts[j + 1],
                                 0.9 * math.pi * ring / SKIRT_CHAINS, SKIRT_GROUP, skirt_mask))
            # yawed by the chain's angle: +X rotation swings the strand's lower end outward
            joints.append(Joint(f"スカート{k + 1}_{j + 1}", f"skirt_{k + 1}_{j + 1}", 0, prev, len(rigids) - 1,
                                pts[j].astype(np.float32), np.float32([0, a, 0]), np.zeros(3, np.float32),
                                np.zeros(3, np.float32), lower, upper, np.zeros(3, np.float32), np.float32([8, 8, 8])))
            prev = len(rigids) - 1
    leg_mask = 0xFFFF & ~(1 << LEG_GROUP)
    for lr, en in (("左", "L"), ("右", "R")):
        hipj, knee, ankle = (model.bone_index(lr + n) for n in ("足", "ひざ", "足首"))
        if min(hipj, knee, ankle) < 0:
            continue
        a, b, c = (np.asarray(bones[i].position, np.float64) for i in (hipj, knee, ankle))
        r = 0.22 * float(np.linalg.norm(a - b)) / 4.6 * 3
        rigids.append(_capsule(f"{lr}足", f"leg_{en}", hipj, a, b, r, LEG_GROUP, leg_mask, 0, 1.0))
        rigids.append(_capsule(f"{lr}ひざ", f"knee_{en}", knee, b, c, 0.8 * r, LEG_GROUP, leg_mask, 0, 1.0))
    # weights: the waist ring on 下半身, below it the two nearest chains (by angle), by segment (by drop)
    w = np.clip(drop / 0.25, 0, 1)
    w = w * w * (3 - 2 * w)
    t = phi / (2 * math.pi / SKIRT_CHAINS) % SKIRT_CHAINS
    k0 = np.floor(t).astype(int) % SKIRT_CHAINS
    k1 = (k0 + 1) % SKIRT_CHAINS
    f = t - np.floor(t)
    seg = (drop >= 0.5).astype(int)
    bi = np.stack([np.full(len(verts), hip), chain_ids[k0, seg], chain_ids[k1, seg], np.full(len(verts), -1)], 1)
    bw = np.stack([1 - w, w * (1 - f), w * f, np.zeros(len(verts))], 1)
    types, bids, bws = pack_weights(bi, bw)
    wt, all_ids, all_w = model.weight_types.copy(), model.bone_indices.copy(), model.bone_weights.copy()
    wt[verts], all_ids[verts], all_w[verts] = types, bids, bws
    return dataclasses.replace(model, bones=tuple(bones), rigid_bodies=tuple(rigids), joints=tuple(joints),
                               weight_types=wt, bone_indices=all_ids, bone_weights=all_w)


def skirt_in_thighs(model: Model, positions: np.ndarray, bones_world: np.ndarray, material: str = "スカート",
                    sides=("左", "右")) -> int:
    """How many of the skirt's vertices lie inside the thighs' bodies: the clipping physics should undo when
    a leg rises into the skirt. positions: (V, 3) posed vertices; bones_world: (n, 4, 4) the bone frames of
    that pose (MMD units, model frame); the thigh body is the capsule from 足 to ひざ with the radius of the
    rigid body named 足 (as :func:`add_skirt_chains` makes it). 0 without a skirt or thigh bodies."""
    names = [m.name for m in model.materials]
    if material not in names:
        return 0
    mi = names.index(material)
    start = sum(m.face_count for m in model.materials[:mi])
    p = positions[np.unique(model.faces[start:start + model.materials[mi].face_count])]
    count = 0
    for lr in sides:
        hip, knee = model.bone_index(lr + "足"), model.bone_index(lr + "ひざ")
        r = next((float(rb.size[0]) for rb in model.rigid_bodies if rb.name == lr + "足"), None)
        if min(hip, knee) < 0 or r is None:
            continue
        a, b = bones_world[hip, :3, 3], bones_world[knee, :3, 3]
        t = np.clip(((p - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        count += int((np.linalg.norm(p - (a + t[:, None] * (b - a)), axis=1) < r).sum())
    return count
