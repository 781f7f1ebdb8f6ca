"""Bone evaluation with MMD's semantics: forward kinematics, fixed axes, append (grant) transforms, IK.

Everything is in MMD's native frame (left-handed, +Y up, the model facing -Z, MMD units). A bone's
local transform is a rotation about its head followed by a translation to its rest offset from the
parent: ``L = T(offset + t) R(r)`` with ``r = r_ik * r_anim * r_append`` (babylon-mmd's order; saba's
is the same). World matrices compose parent-first, ``W = W_parent L``, so the skinning matrix of a
bone is ``S = W T(-rest_position)``.

Evaluation order (what MMD, saba and babylon-mmd do): bones are visited in a stable sort by
(deform after physics, transform layer, index); a bone with an append source takes its grant when
visited, an IK bone solves its chain when visited. Unlike a single pass over that order, world
matrices here are always recomputed parent-first over the real hierarchy, so a file that stores a
parent after its child still poses correctly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from udpgen.errors import ModelError
from udpgen.mmd.model import Model
from udpgen.rig import quat as Q
from udpgen.rig.ik import build_chains, solve


@dataclass(frozen=True)
class Append:
    """A grant: bone ``bone`` takes ``ratio`` of ``source``'s rotation and/or translation."""
    bone: int
    source: int
    ratio: float
    rotate: bool
    translate: bool
    local: bool


@dataclass
class BonePose:
    """The result of evaluating a skeleton for one pose.

    world (n, 4, 4) float64: bone frames in model space (MMD frame, column vectors).
    local_rotation (n, 4): the final local rotation of each bone (r_ik * r_anim * r_append).
    ik_rotation (n, 4): the rotation IK added to each chain link (identity elsewhere).
    """
    world: np.ndarray
    local_rotation: np.ndarray
    ik_rotation: np.ndarray
    rest: np.ndarray

    def skinning(self) -> np.ndarray:
        """(n, 4, 4) skinning matrices S_b = W_b T(-p_b): rest-pose model space -> posed model space."""
        s = self.world.copy()
        s[:, :3, 3] -= np.einsum("nij,nj->ni", self.world[:, :3, :3], self.rest)
        return s

    @property
    def positions(self) -> np.ndarray:
        """(n, 3) posed bone heads."""
        return self.world[:, :3, 3]


class Skeleton:
    """The evaluation structure of a model's bones: order, hierarchy levels, grants and IK chains.

    Build once per model; :meth:`pose` is then a pure function of the animation values.
    """

    def __init__(self, model: Model):
        bones = model.bones
        n = len(bones)
        self.n = n
        self.names = tuple(b.name for b in bones)
        self.parent = np.array([b.parent if 0 <= b.parent < n else -1 for b in bones], np.int64)
        self.rest = np.array([b.position for b in bones], np.float64).reshape(n, 3)
        self.offset = self.rest - np.where(self.parent[:, None] >= 0, self.rest[self.parent], 0.0)
        self.order = sorted(range(n), key=lambda i: (bones[i].after_physics, bones[i].layer, i))
        self.after_physics = np.array([bool(b.after_physics) for b in bones], bool)
        self.depth = self._depths(model)
        self.levels = [np.flatnonzero(self.depth == d) for d in range(int(self.depth.max(initial=-1)) + 1)]
        self.children: list[list[int]] = [[] for _ in range(n)]
        for i, p in enumerate(self.parent):
            if p >= 0:
                self.children[p].append(i)
        axes = np.array([b.fixed_axis if b.fixed_axis is not None else (0, 0, 0) for b in bones], np.float64)
        self.has_fixed_axis = np.linalg.norm(axes.reshape(n, 3), axis=1) > 1e-8
        self.fixed_axis = np.where(self.has_fixed_axis[:, None], axes.reshape(n, 3)
                                   / np.maximum(np.linalg.norm(axes.reshape(n, 3), axis=1, keepdims=True), 1e-12), 0)
        self.appends = {i: Append(i, b.append_parent, float(b.append_ratio), b.append_rotate, b.append_translate,
                                  b.local_append)
                        for i, b in enumerate(bones)
                        if (b.append_rotate or b.append_translate) and 0 <= b.append_parent < n
                        and b.append_parent != i}
        self.chains = build_chains(model, self)
        self.is_link = np.zeros(n, bool)
        for chain in self.chains.values():
            for link in chain.links:
                self.is_link[link.bone] = True
        self._subtree_cache: dict[int, list[np.ndarray]] = {}

    def _depths(self, model: Model) -> np.ndarray:
        depth = np.full(self.n, -1, np.int64)
        for start in range(self.n):
            path, b = [], start
            while b >= 0 and depth[b] < 0:
                if b in path:
                    names = " -> ".join(model.bones[i].name for i in path[path.index(b):] + [b])
                    raise ModelError(f"{model.path or 'model'}: bones form a parent cycle: {names}")
                path.append(b)
                b = int(self.parent[b])
            d = depth[b] if b >= 0 else -1
            for i in reversed(path):
                d += 1
                depth[i] = d
        return depth

    def index(self, name: str) -> int:
        """Bone index by exact name, or -1."""
        try:
            return self.names.index(name)
        except ValueError:
            return -1

    def subtree(self, bone: int) -> np.ndarray:
        """``bone`` and all its descendants (index array, cached)."""
        members = self._subtree_cache.get(bone)
        if members is None:
            out, frontier = [], [bone]
            while frontier:
                out.extend(frontier)
                frontier = [c for b in frontier for c in self.children[b]]
            members = self._subtree_cache[bone] = np.array(out, np.int64)
        return members

    # --------------------------------------------------------------------------------------------
    def pose(self, translation: np.ndarray | None = None, rotation: np.ndarray | None = None,
             ik_enabled: np.ndarray | None = None, physics=None) -> BonePose:
        """Evaluate every bone.

        translation (n, 3): animation offsets from the rest pose, parent frame, MMD units (None = 0).
        rotation (n, 4): animation rotations (x, y, z, w) relative to the rest pose (None = identity);
            normalised here; zero quaternions count as identity.
        ik_enabled (n,) bool: per IK bone on/off (VMD IK-property keys); None = all on.
        physics: None, or a callable run between the before-physics and the after-physics bones (where
            MMD steps its rigid bodies): it gets the (n, 4, 4) world matrices so far and returns None (keep
            them) or ``(bones, world)``: the indices of the bones physics moves, whose local transforms
            (grant and IK included, as in MMD) become those that put them at their frames in ``world``,
            and the (n, 4, 4) world matrices after physics (rigid; the bones' descendants follow them
            there); then the after-physics bones are evaluated.
        """
        n = self.n
        t = np.zeros((n, 3)) if translation is None else np.asarray(translation, np.float64).reshape(n, 3)
        r = np.tile(Q.IDENTITY, (n, 1)) if rotation is None else Q.normalize(np.asarray(rotation).reshape(n, 4))
        r = self._project_fixed_axes(r)
        state = _State(self, t, r)
        pending = physics
        for b in self.order:
            if pending is not None and self.after_physics[b]:
                state.apply_physics(pending)
                pending = None
            if b in self.appends:
                state.apply_append(self.appends[b])
            chain = self.chains.get(b)
            if chain is not None and (ik_enabled is None or ik_enabled[b]):
                solve(state, chain)
        if pending is not None:
            state.apply_physics(pending)
        state.flush()
        return BonePose(world=state.world, local_rotation=state.local_q, ik_rotation=state.ik_q, rest=self.rest)

    def _project_fixed_axes(self, r: np.ndarray) -> np.ndarray:
        """Twist bones turn about their fixed axis only: keep the animation's angle, signed by how its axis
        lines up with the fixed one (babylon-mmd's runtime form of what MMD does at load time)."""
        idx = np.flatnonzero(self.has_fixed_axis)
        if idx.size == 0:
            return r
        axis, angle = Q.to_axis_angle(r[idx])
        sign = np.where(np.sum(axis * self.fixed_axis[idx], axis=1) < 0, -1.0, 1.0)
        r = r.copy()
        r[idx] = Q.from_axis_angle(self.fixed_axis[idx], sign * angle)
        return r


class _State:
    """Mutable per-pose arrays shared by the grant and IK steps.

    anim_q/anim_t: animation values; grant_q/grant_t: the rotation/offset after a bone's grant (what
    babylon-mmd calls the animated value with the append applied), initially the animation values;
    ik_q: IK's extra rotation; local_q = ik_q * grant_q; world: current world matrices.
    """

    def __init__(self, sk: Skeleton, t: np.ndarray, r: np.ndarray):
        self.sk = sk
        self.anim_q, self.anim_t = r, t
        self.grant_q, self.grant_t = r.copy(), t.copy()
        self.has_grant_q = np.zeros(sk.n, bool)      # bones whose grant has been evaluated (this pose)
        self.has_grant_t = np.zeros(sk.n, bool)
        self.ik_q = np.tile(Q.IDENTITY, (sk.n, 1))
        self.local_q = r.copy()
        self.world = np.zeros((sk.n, 4, 4))
        self.dirty = np.ones(sk.n, bool)

    def local_matrices(self, idx: np.ndarray) -> np.ndarray:
        return Q.compose(self.local_q[idx], self.sk.offset[idx] + self.grant_t[idx])

    def mark(self, bone: int) -> None:
        """``bone``'s local transform changed: its subtree's world matrices are stale until :meth:`flush`."""
        self.dirty[self.sk.subtree(bone)] = True

    def flush(self) -> None:
        """Recompute every stale world matrix, parents first, one batched step per hierarchy depth.

        Grants and IK solves mark subtrees stale instead of recomputing them at once, so a pose costs one
        pass over the depths per read of the world matrices rather than one pass per grant.
        """
        stale = np.flatnonzero(self.dirty)
        if stale.size == 0:
            return
        sk = self.sk
        self.world[stale] = self.local_matrices(stale)       # one batched compose; parents applied below
        for level in sk.levels:
            idx = level[self.dirty[level]]
            p = sk.parent[idx]
            idx = idx[p >= 0]
            if idx.size:
                self.world[idx] = self.world[sk.parent[idx]] @ self.world[idx]
        self.dirty[:] = False

    def world_of(self, bone: int) -> np.ndarray:
        """Current (4, 4) world matrix of ``bone``. Only its stale ancestors are recomputed (a stale bone's
        whole subtree is stale, so the rest stays consistent for the next :meth:`flush`)."""
        if self.dirty[bone]:
            path, b = [], bone
            while b >= 0 and self.dirty[b]:
                path.append(b)
                b = int(self.sk.parent[b])
            path.reverse()
            local = self.local_matrices(np.array(path))
            for k, b in enumerate(path):
                p = self.sk.parent[b]
                self.world[b] = self.world[p] @ local[k] if p >= 0 else local[k]
                self.dirty[b] = False
        return self.world[bone]

    def set_local(self, bone: int) -> None:
        self.local_q[bone] = Q.mul1(tuple(self.ik_q[bone].tolist()), tuple(self.grant_q[bone].tolist()))

    def apply_physics(self, physics) -> None:
        """Run the physics hook on the current world matrices and take over the world it returns: the bones
        it names get the local transforms that put them at their new frames (batched: the frames are rigid),
        their descendants are where the hook put them already."""
        self.flush()
        result = physics(self.world.copy())
        if result is None:
            return
        bones, world = result
        bones = np.asarray(bones, np.int64)
        sk = self.sk
        parent = sk.parent[bones]
        parent_world = world[np.maximum(parent, 0)]
        parent_world[parent < 0] = np.eye(4)
        local = Q.rigid_inverse(parent_world) @ world[bones]
        q = Q.from_matrix(local[:, :3, :3])
        self.grant_q[bones] = q
        self.local_q[bones] = q
        self.ik_q[bones] = Q.IDENTITY
        self.grant_t[bones] = local[:, :3, 3] - sk.offset[bones]
        self.has_grant_q[bones] = self.has_grant_t[bones] = True
        self.world[:] = world

    def apply_append(self, a: Append) -> None:
        """Grant ``a.ratio`` of the source's transform to ``a.bone`` (babylon-mmd's AppendTransformSolver)."""
        src, sk = a.source, self.sk
        if a.rotate:
            # one bone at a time: Python floats (quat.mul1/slerp1), not numpy calls on 4-vectors
            if a.local:
                q = Q.from_matrix1(self.world_of(src)[:3, :3].tolist())
            elif self.has_grant_q[src]:
                q = tuple(self.grant_q[src].tolist())   # chained grants pass on the source's granted rotation
            else:
                q = tuple(self.anim_q[src].tolist())
            if sk.is_link[src] and not a.local:
                q = Q.mul1(tuple(self.ik_q[src].tolist()), q)  # IK on the source moves its followers too
            q = Q.slerp1((0.0, 0.0, 0.0, 1.0), q, a.ratio) if a.ratio != 1.0 else q
            self.grant_q[a.bone] = Q.mul1(tuple(self.anim_q[a.bone].tolist()), q)
            self.has_grant_q[a.bone] = True
        if a.translate:
            if a.local:
                # how far the source's head moved from its rest position, not the translation of its
                # skinning matrix (which a source that only rotates has too)
                d = self.world_of(src)[:3, 3] - sk.rest[src]
            elif self.has_grant_t[src]:
                d = self.grant_t[src]
            else:
                d = self.anim_t[src]
            self.grant_t[a.bone] = self.anim_t[a.bone] + a.ratio * d
            self.has_grant_t[a.bone] = True
        self.set_local(a.bone)
        self.mark(a.bone)
