"""MMD physics on Bullet (panda3d's Bullet module): rigid bodies and 6-DOF spring joints driving bones.

The world is built from :func:`udpgen.rig.physics.usable_physics` and lives in the model's own frame and
units (MMD frame, left-handed, MMD units; 1 unit = 8 cm, so MMD's gravity is (0, -98, 0) units/s^2).
Matrices here are (4, 4) float64 column-vector transforms, like :class:`udpgen.rig.skeleton.BonePose`.

What follows MMD (and saba / babylon-mmd, which reproduce it):

* shapes: sphere (radius ``size[0]``), box (half-extents ``size``), capsule along the body's Y axis
  (radius ``size[0]``, cylinder height ``size[1]``); the body frame is ``T(position) Ry Rx Rz`` (Euler
  radians, Y-X-Z like babylon-mmd's yaw-pitch-roll), fixed relative to its bone at the rest pose;
* mode 0: kinematic, follows its bone (mass 0); mode 1: dynamic, its bone takes the body's transform;
  mode 2: dynamic rotation, the bone keeps the position its parent gives it while the body itself moves
  on as simulated (MMDAgent, saba and babylon-mmd all leave it there: nothing teleports it);
* collision: body a and b collide when a's group bit is in b's mask and b's in a's (the file's 16-bit
  "non-collision" field is stored as that mask: 0xFFFF collides with every group), jointed pairs too: the
  MMD-compatible runtimes (saba, nanoem, MMDAI's vpvl2, babylon-mmd) add their joints without Bullet's
  "disable collisions between linked bodies", so only the masks keep a chain's bodies apart;
* joints: a generic 6-DOF constraint in the joint frame ``T(position) Ry Rx Rz``, linear and angular limits
  as given (lower > upper frees an axis, Bullet's rule) and springs. panda3d wraps btGeneric6DofConstraint,
  not btGeneric6DofSpringConstraint, so the spring is emulated exactly as Bullet 2.x implements it
  (btGeneric6DofSpringConstraint::internalUpdateSprings): before each internal step (a pre-tick callback,
  :func:`_spring_tick`), per axis with a non-zero stiffness, ``delta`` = the constraint-space offset Bullet
  measures from the bodies at that moment (linear: frame B's origin in frame A; angular: Bullet's XYZ Euler
  angles of frame A^-1 B) minus the equilibrium, ``force = delta * k`` (linear) or
  ``-delta * k`` (angular), and the axis's limit motor gets target velocity ``fps * damping / iterations *
  force`` and max force ``|force| / fps`` (damping 1, Bullet's default; 10 solver iterations). The
  equilibrium is 0: a joint's frames in its two bodies are taken from the rest pose, where they coincide
  (MMD builds its joints at load, in the rest pose), whatever pose a world starts in;
* time: MMD's 60 frames/s, one Bullet call per frame with 2 fixed sub-steps (1/120 s), as the MMD
  runtimes step it: a kinematic body placed for a frame moves with that frame's velocity in both.

* Bullet's "additional damping" on every body, with Bullet's default factors and thresholds, as the
  MMD-compatible runtimes build their bodies (MMDAI's vpvl2, saba); panda3d reads it from the process-wide
  config variable ``bullet-additional-damping`` when a body is made, which this module sets (it is the only
  user of panda3d in udpgen).
"""
from __future__ import annotations

import math
import operator
from collections import deque
from dataclasses import dataclass

import numpy as np

from udpgen.errors import UdpgenError
from udpgen.mmd.model import Model
from udpgen.rig import quat as Q
from udpgen.rig.physics import UsablePhysics, usable_physics
from udpgen.settings import check_settings, fail, setting

GRAVITY = (0.0, -98.0, 0.0)       # MMD units/s^2 (9.8 m/s^2 * 10, as MMD sets it)
FRAME_RATE = 60.0                 # MMD's frames per second
SUBSTEPS = 2                      # fixed Bullet steps per frame
SOLVER_ITERATIONS = 10            # Bullet's default, used by the spring formula
REST_SETTLE_FRAMES = 60           # 1 s: how long a character's rest pose hangs under gravity before its still poses

_bullet = None
_drain = deque(maxlen=0).extend       # runs an iterator for its effects


class PhysicsUnavailable(UdpgenError):
    """The physics engine (panda3d) is not installed, or this model's physics cannot be built."""


def available() -> bool:
    """Whether the physics engine (the optional ``panda3d`` package) can be imported."""
    try:
        _engine()
    except PhysicsUnavailable:
        return False
    return True


def _engine():
    """panda3d's Bullet module, configured once for MMD's group/mask rule (read when a world is made)."""
    global _bullet
    if _bullet is None:
        try:
            from panda3d import bullet
            from panda3d.core import loadPrcFileData
        except ImportError as e:
            raise PhysicsUnavailable("physics needs the optional panda3d package "
                                     "(pip install 'udpgen[physics]')") from e
        # transform-cache off: panda3d's global cache of TransformStates (hashing and uniquifying each new
        # one) only slows us down, as every body's transform is made afresh each frame; the same bytes
        # come out, about 15% sooner on Gene
        loadPrcFileData("udpgen-physics", "bullet-filter-algorithm groups-mask\nnotify-level-bullet error\n"
                                          "transform-cache 0\nbullet-additional-damping 1")
        _bullet = bullet
    return _bullet


def euler_matrix(position, rotation) -> np.ndarray:
    """(4, 4) ``T(position) Ry Rx Rz`` from MMD's body/joint position (3,) and Euler radians (3,)."""
    x, y, z = (float(a) for a in rotation)
    cx, sx, cy, sy, cz, sz = math.cos(x), math.sin(x), math.cos(y), math.sin(y), math.cos(z), math.sin(z)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    m = np.eye(4)
    m[:3, :3] = ry @ rx @ rz
    m[:3, 3] = np.asarray(position, np.float64)
    return m


def bullet_euler_xyz(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) relative rotations A^-1 B -> (..., 3) the angles Bullet's 6-DOF constraint measures
    (matrixToEulerXYZ, which reads the matrix elements column-major: the XYZ angles of ``r`` transposed)."""
    sy = np.clip(r[..., 2, 0], -1.0, 1.0)
    return np.stack([np.arctan2(-r[..., 2, 1], r[..., 2, 2]), np.arcsin(sy),
                     np.arctan2(-r[..., 1, 0], r[..., 0, 0])], -1)


def _offsets(fa: np.ndarray, fb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joint frames A and B (J, 4, 4) in model space -> (J, 3) B's origin in frame A and (J, 3) Bullet's
    Euler angles of A^-1 B."""
    ra = fa[:, :3, :3]
    linear = np.einsum("jki,jk->ji", ra, fb[:, :3, 3] - fa[:, :3, 3])
    return linear, bullet_euler_xyz(np.swapaxes(ra, 1, 2) @ fb[:, :3, :3])


def _spring_tick(plan: "_Plan", constraints: list, lin_motors: list, ang_motors: list, vec3):
    """The pre-tick callback that sets every spring's motors (module doc) before an internal Bullet step.

    ``set_frames`` with a joint's own frames makes Bullet recompute the joint's offsets from the bodies'
    transforms at that moment (kinematic ones already moved for this frame), and ``get_angle`` /
    ``get_pivot`` read those: the very values btGeneric6DofSpringConstraint takes in the step's getInfo2.
    Unbound methods mapped over lists run the per-joint calls from C (a Python loop costs as much again)."""
    gc = _engine().BulletGenericConstraint
    set_frames, get_angle, get_pivot = gc.set_frames, gc.get_angle, gc.get_pivot
    rows = plan.spring_joints.tolist()
    sprung = [constraints[k] for k in rows]
    frame_a, frame_b = [plan.frame_a[k] for k in rows], [plan.frame_b[k] for k in rows]
    ang_cons, ang_axes = [sprung[r] for r in plan.ang_rows.tolist()], plan.ang_axes.tolist()
    lin_cons = [sprung[r] for r in plan.lin_rows.tolist() for _ in range(3)]
    lin_axes = [0, 1, 2] * len(plan.lin_rows)
    k_ang, k_lin = -plan.k_ang_motor, plan.k_lin_motor
    velocity = [m.set_target_velocity for m in ang_motors]
    force = [m.set_max_motor_force for m in ang_motors]
    fps = FRAME_RATE * SUBSTEPS
    vel = fps / SOLVER_ITERATIONS        # * damping, 1 as in Bullet

    def tick(_data) -> None:
        _drain(map(set_frames, sprung, frame_a, frame_b))
        f = np.fromiter(map(get_angle, ang_cons, ang_axes), np.float64, len(ang_axes)) * k_ang
        _drain(map(operator.call, velocity, (vel * f).tolist()))
        _drain(map(operator.call, force, (np.abs(f) / fps).tolist()))
        if lin_motors:
            f = np.fromiter(map(get_pivot, lin_cons, lin_axes), np.float64, len(lin_axes)).reshape(-1, 3) * k_lin
            for motor, v, m in zip(lin_motors, (vel * f).tolist(), (np.abs(f) / fps).tolist()):
                motor.set_target_velocity(vec3(*v))
                motor.set_max_motor_force(vec3(*m))

    return tick


@dataclass(frozen=True)
class Layout:
    """Everything about a model's physics that does not change while simulating (built once per model).

    bodies: kept body indices (B,); bone (B,) int (-1 none); mode (B,); offset (B, 4, 4): the body's frame
    in its bone's frame (rest pose); joints: kept joint indices (J,); a / b (J,): positions in ``bodies``;
    frame_a / frame_b (J, 4, 4): the joint frame in body a's / b's frame; scale: the diagonal of the
    mesh's bounding box (MMD units); reach: the farthest body from the origin at rest (MMD units).
    """
    bodies: np.ndarray
    bone: np.ndarray
    mode: np.ndarray
    offset: np.ndarray
    joints: np.ndarray
    a: np.ndarray
    b: np.ndarray
    frame_a: np.ndarray
    frame_b: np.ndarray
    scale: float
    reach: float

    @staticmethod
    def build(model: Model, usable: UsablePhysics | None = None) -> "Layout":
        usable = usable if usable is not None else usable_physics(model)
        rest = np.array([b.position for b in model.bones], np.float64).reshape(-1, 3)
        bodies = np.asarray(usable.bodies, np.int64)
        bone = np.array([model.rigid_bodies[i].bone for i in bodies], np.int64)
        mode = np.array([model.rigid_bodies[i].mode for i in bodies], np.int64)
        world = np.stack([euler_matrix(model.rigid_bodies[i].position, model.rigid_bodies[i].rotation)
                          for i in bodies]) if len(bodies) else np.zeros((0, 4, 4))
        offset = world.copy()
        has = bone >= 0
        offset[has, :3, 3] -= rest[bone[has]]          # rest bone frames are pure translations
        slot = {int(i): k for k, i in enumerate(bodies)}
        joints = np.asarray(usable.joints, np.int64)
        a = np.array([slot[model.joints[j].rigid_a] for j in joints], np.int64)
        b = np.array([slot[model.joints[j].rigid_b] for j in joints], np.int64)
        jw = np.stack([euler_matrix(model.joints[j].position, model.joints[j].rotation) for j in joints]) \
            if len(joints) else np.zeros((0, 4, 4))
        inv = Q.rigid_inverse(world)
        frame_a = inv[a] @ jw if len(joints) else jw
        frame_b = inv[b] @ jw if len(joints) else jw
        pts = np.asarray(model.positions, np.float64).reshape(-1, 3) if model.vertex_count else rest
        pts = pts[np.isfinite(pts).all(axis=1)]
        span = pts.max(0) - pts.min(0) if len(pts) else np.ones(3)
        reach = float(np.linalg.norm(world[:, :3, 3], axis=1).max()) if len(bodies) else 0.0
        return Layout(bodies, bone, mode, offset, joints, a, b, frame_a, frame_b,
                      float(max(np.linalg.norm(span), 1.0)), reach)

    @property
    def dynamic(self) -> np.ndarray:
        return self.mode != 0


class _Plan:
    """What every world of one model shares, built once per character (:class:`Physics` keeps it): the
    bodies' engine parameters, the joints' frames as engine transforms, the spring arrays and the batched
    write-back order. Engine transforms are immutable, so worlds share them safely."""

    def __init__(self, model: Model, layout: Layout, parent: np.ndarray, depth: np.ndarray):
        bt = _engine()
        from panda3d.core import BitMask32, Point3, Quat, TransformState, Vec3

        one = Vec3(1, 1, 1)

        def transforms(m: np.ndarray) -> list:
            qs = Q.from_matrix(m[:, :3, :3]).tolist() if len(m) else []
            return [TransformState.make_pos_quat_scale(Point3(*p), Quat(q[3], q[0], q[1], q[2]), one)
                    for p, q in zip(m[:, :3, 3].tolist(), qs)]

        self.rbs = [model.rigid_bodies[i] for i in layout.bodies]
        classes = sorted({(rb.group, rb.no_collision_mask) for rb in self.rbs})
        if len(classes) > 32:
            raise PhysicsUnavailable(f"{model.path or 'model'}: {len(classes)} distinct collision "
                                     f"group/mask pairs, more than the 32 the engine's filter can hold")
        self.classes = {c: k for k, c in enumerate(classes)}
        self.joints = [model.joints[j] for j in layout.joints]
        # per body: (name, shape constructor and its arguments, mass or None (kinematic), (linear, angular)
        # damping, friction, restitution, collision class bit). Each world makes its own shapes: panda3d
        # sets a shape's scale from every transform given to its body (1 give or take float32 rounding), so
        # a shape shared between worlds would carry one pose's last scale into the next pose's world
        self.bodies = []
        for rb in self.rbs:
            size = [float(v) for v in rb.size]
            shape = (bt.BulletSphereShape, (size[0],)) if rb.shape == 0 else \
                (bt.BulletBoxShape, (Vec3(*size),)) if rb.shape == 1 else \
                (bt.BulletCapsuleShape, (size[0], size[1], bt.YUp))
            self.bodies.append((rb.name, shape, None if rb.mode == 0 else float(rb.mass),
                                (float(rb.linear_damping), float(rb.angular_damping)), float(rb.friction),
                                float(rb.restitution), BitMask32.bit(self.classes[rb.group, rb.no_collision_mask])))
        self.frame_a, self.frame_b = transforms(layout.frame_a), transforms(layout.frame_b)
        sprung = [k for k, jt in enumerate(self.joints)
                  if np.any(np.asarray(jt.spring_linear) != 0) or np.any(np.asarray(jt.spring_angular) != 0)]
        self.spring_joints = np.array(sprung, np.int64)
        self.k_lin = np.array([self.joints[k].spring_linear for k in sprung], np.float64).reshape(-1, 3)
        self.k_ang = np.array([self.joints[k].spring_angular for k in sprung], np.float64).reshape(-1, 3)
        self.lin_rows = np.flatnonzero((self.k_lin != 0).any(1))          # spring rows with a linear motor
        self.ang_rows, self.ang_axes = np.nonzero(self.k_ang != 0)        # (row, axis) per angular motor
        self.k_lin_motor, self.k_ang_motor = self.k_lin[self.lin_rows], self.k_ang[self.ang_rows, self.ang_axes]
        # per joint: linear limits, angular limits in degrees (panda3d's unit), and for a sprung joint its
        # spring row and the axes whose limit motors carry a spring (linear, angular)
        spring_row = {k: r for r, k in enumerate(sprung)}
        self.joint_limits = []
        for k, jt in enumerate(self.joints):
            row = spring_row.get(k)
            lin_axes = [a for a in range(3) if row is not None and self.k_lin[row, a] != 0]
            ang_axes = [a for a in range(3) if row is not None and self.k_ang[row, a] != 0]
            self.joint_limits.append(([float(v) for v in jt.linear_lower], [float(v) for v in jt.linear_upper],
                                      [math.degrees(float(v)) for v in jt.angular_lower],
                                      [math.degrees(float(v)) for v in jt.angular_upper], row, lin_axes, ang_axes))
        self.dynamic = np.flatnonzero(layout.dynamic)
        self.kinematic = np.flatnonzero(~layout.dynamic)
        # the bones the kinematic bodies follow (a settle eases these alone), each kinematic body's row
        # among them (an unbound body's is the identity appended last) and its frame in that bone's
        self.kin_bones = np.unique(layout.bone[self.kinematic][layout.bone[self.kinematic] >= 0])
        self.kin_row = np.where(layout.bone[self.kinematic] >= 0,
                                np.searchsorted(self.kin_bones, layout.bone[self.kinematic]), len(self.kin_bones))
        self.kin_offset = layout.offset[self.kinematic]
        self.inv_offset = Q.rigid_inverse(layout.offset)
        # bones a dynamic body writes back to (the first body of a bone wins), and every bone below one,
        # parent-first: what a step recomputes
        writer_of: dict[int, int] = {}
        for k in self.dynamic:
            if layout.bone[k] >= 0:
                writer_of.setdefault(int(layout.bone[k]), int(k))
        below = np.zeros(len(parent), bool)
        for b in range(len(parent)):
            q = b
            while q >= 0 and not below[b]:
                if q in writer_of:
                    below[b] = True
                q = int(parent[q])
        affected = np.array([int(b) for b in np.lexsort((np.arange(len(parent)), depth)) if below[b]], np.int64)
        self.written = np.array([b for b in affected.tolist() if b in writer_of], np.int64)
        self.writers = np.array([writer_of[b] for b in self.written.tolist()], np.int64)   # body per written
        # the affected bones, and per depth: (their bones, their rows in that list, their parents (None
        # when some have none), which have one; (rows, positions in ``written``) of the bones written by
        # mode-1 and by mode-2 bodies, or None): empty selections skipped, each costs a numpy call
        self.aff, self.aff_parent = affected, parent[affected] if len(affected) else affected
        self.levels = []
        wpos = {b: i for i, b in enumerate(self.written.tolist())}
        for d in sorted({int(depth[b]) for b in affected.tolist()}):
            rows = np.flatnonzero(depth[affected] == d)
            idx = affected[rows]
            w_rows = [r for r, b in enumerate(idx.tolist()) if b in wpos]
            w_pos = np.array([wpos[int(idx[r])] for r in w_rows], np.int64)
            w_rows = np.array(w_rows, np.int64)
            two = layout.mode[self.writers[w_pos]] == 2 if len(w_pos) else np.zeros(0, bool)
            has = parent[idx] >= 0
            self.levels.append((idx, rows, parent[idx] if has.all() else None, has,
                                (w_rows[~two], w_pos[~two]) if (~two).any() else None,
                                (w_rows[two], w_pos[two]) if two.any() else None))
        lo = np.array([jt.linear_lower for jt in self.joints], np.float64).reshape(-1, 3)
        hi = np.array([jt.linear_upper for jt in self.joints], np.float64).reshape(-1, 3)
        self.lo, self.hi, self.free = lo, hi, lo > hi
        arms = np.linalg.norm(layout.frame_a[:, :3, 3], axis=1) + np.linalg.norm(layout.frame_b[:, :3, 3], axis=1)
        self.slack = 0.1 * layout.scale + 0.5 * arms
        self.reach = 2.0 * (layout.scale + layout.reach)

    def kinematic_frames(self, bone_frames: np.ndarray) -> np.ndarray:
        """(..., k, 4, 4) frames of the bones ``kin_bones`` -> (..., K, 4, 4) the kinematic bodies' frames."""
        if len(self.kin_row) and self.kin_row.max() == len(self.kin_bones):       # an unbound body
            eye = np.broadcast_to(np.eye(4), bone_frames.shape[:-3] + (1, 4, 4))
            bone_frames = np.concatenate([bone_frames, eye], -3)
        return bone_frames[..., self.kin_row, :, :] @ self.kin_offset


class PhysicsWorld:
    """One Bullet world for one model's kept bodies and joints; build a fresh one to reset all state.

    ``reset(world)`` places every body at its bone's frame in ``world`` (n, 4, 4) at rest velocity;
    ``advance(world)`` simulates one MMD frame (1/60 s, 2 sub-steps) with the kinematic bodies at ``world``;
    ``bones(world)`` gives the bone frames with the physics bones replaced (``step`` = both, for one
    result after each frame); :meth:`exploded` says whether the result is
    unusable (NaN, a body far from its bone, a joint stretched far past its limits). ``plan``: the model's
    shared :class:`_Plan` (built here when not given).
    """

    def __init__(self, model: Model, layout: Layout, parent: np.ndarray, depth: np.ndarray,
                 plan: _Plan | None = None):
        bt = _engine()
        from panda3d.core import Datagram, DatagramIterator, LMatrix4f, TransformState, Vec3

        plan = plan if plan is not None else _Plan(model, layout, parent, depth)
        self.plan = plan
        self._make, self._mat4, self._vec3 = TransformState.make_mat, LMatrix4f, Vec3
        self._datagram, self._iterator = Datagram, DatagramIterator
        self.model, self.layout, self.parent = model, layout, parent
        self.world = bt.BulletWorld()
        self.world.set_gravity(Vec3(*GRAVITY))
        cid = plan.classes
        for (ga, ma), ka in cid.items():
            for (gb, mb), kb in cid.items():
                self.world.set_group_collision_flag(ka, kb, bool((ma >> gb) & 1 and (mb >> ga) & 1))
        self.nodes = []
        for name, (shape, args), mass, damping, friction, restitution, mask in plan.bodies:
            node = bt.BulletRigidBodyNode(name)
            node.add_shape(shape(*args))
            if mass is None:
                node.set_kinematic(True)
            else:
                node.set_mass(mass)
            node.set_linear_damping(damping[0])
            node.set_angular_damping(damping[1])
            node.set_friction(friction)
            node.set_restitution(restitution)
            node.set_deactivation_enabled(False)
            node.set_into_collide_mask(mask)
            self.world.attach_rigid_body(node)
            self.nodes.append(node)
        self.constraints = []
        lin, ang = {}, {}
        for k, (lo, hi, ang_lo, ang_hi, row, lin_axes, ang_axes) in enumerate(plan.joint_limits):
            c = bt.BulletGenericConstraint(self.nodes[layout.a[k]], self.nodes[layout.b[k]],
                                           plan.frame_a[k], plan.frame_b[k], True)
            for axis in range(3):
                c.set_linear_limit(axis, lo[axis], hi[axis])
                c.set_angular_limit(axis, ang_lo[axis], ang_hi[axis])
            if lin_axes:
                motor = c.get_translational_limit_motor()
                for axis in lin_axes:
                    motor.set_motor_enabled(axis, True)
                lin[row] = motor
            for axis in ang_axes:
                rot = c.get_rotational_limit_motor(axis)
                rot.set_motor_enabled(True)
                ang[row, axis] = rot
            self.world.attach_constraint(c, False)
            self.constraints.append(c)
        lin_motors = [lin[int(r)] for r in plan.lin_rows]
        ang_motors = [ang[int(r), int(a)] for r, a in zip(plan.ang_rows, plan.ang_axes)]
        # the springs are refreshed before every internal step, where Bullet's own spring constraint does
        # it; the callback holds the constraints and motors but not the world (no cycle through C++)
        if plan.spring_joints.size:
            self.world.set_tick_callback(_spring_tick(plan, self.constraints, lin_motors, ang_motors, Vec3), True)
        self._dyn_nodes = [self.nodes[k] for k in plan.dynamic.tolist()]
        self._dynamic, self._kinematic = plan.dynamic, plan.kinematic
        self.written = plan.written
        self._bodies = None          # (B, 4, 4) the state after the last step, or None (read afresh)
        self._stepped = False        # stepped since the motion states were last brought up to date

    # ------------------------------------------------------------------------------ transforms
    def _place(self, ks, frames: np.ndarray) -> None:
        """Set the bodies ``ks`` to the rigid frames (k, 4, 4)."""
        if not len(ks):
            return
        # as matrices (panda3d's are row-vector: ours transposed), read from one buffer: about a third of
        # the cost of a quaternion and a position per body, which a kinematic body pays every frame
        buf = self._datagram(np.ascontiguousarray(np.swapaxes(frames, 1, 2), "<f4").tobytes())
        buf.set_stdfloat_double(False)
        it = self._iterator(buf)          # reads ``buf``, which must live as long
        make, mat, nodes = self._make, self._mat4, self.nodes
        for k in ks:
            m = mat()
            m.read_datagram(it)
            nodes[k].set_transform(make(m))

    def _read(self, nodes) -> np.ndarray:
        """(k, 4, 4) the current frames of ``nodes``: their matrices written into one buffer (panda3d's
        little-endian float32), a third of the cost of reading a quaternion and a position per node."""
        buf = self._datagram()
        buf.set_stdfloat_double(False)
        for node in nodes:
            node.get_transform().get_mat().write_datagram(buf)
        return np.swapaxes(np.frombuffer(buf.get_message(), "<f4").reshape(-1, 4, 4), 1, 2).astype(np.float64)

    def body_matrices(self) -> np.ndarray:
        """(B, 4, 4) the bodies' current frames (model space)."""
        self._sync()
        return self._read(self.nodes)

    def _body_targets(self, world: np.ndarray) -> np.ndarray:
        lay = self.layout
        bone_world = np.where((lay.bone >= 0)[:, None, None], world[np.maximum(lay.bone, 0)], np.eye(4))
        return bone_world @ lay.offset

    def reset(self, world: np.ndarray, dynamic: np.ndarray | None = None) -> None:
        """Put every body at its bone's frame in ``world`` (n, 4, 4), or the dynamic ones at ``dynamic``
        (D, 4, 4), at rest (kinematic ones too: no velocity from where they were)."""
        targets = self._body_targets(world)
        if dynamic is not None:
            targets[self._dynamic] = dynamic
        zero = self._vec3(0, 0, 0)
        # Bullet gives a kinematic body the velocity that carries it from its last stepped place to its new
        # one; panda3d moves only its motion state, so the first step saw every kinematic body fly from the
        # origin (where it was made) to its bone in one frame and yank whatever is jointed to it (a skirt
        # strand rose 6 units in a frame). Placed as a static body, its last place is set as well.
        kinematic = [self.nodes[k] for k in self._kinematic.tolist()]
        for node in kinematic:
            node.set_kinematic(False)
        self._place(range(len(self.nodes)), targets)
        for node in kinematic:
            node.set_kinematic(True)
        self._bodies = None
        for node in self._dyn_nodes:
            node.set_linear_velocity(zero)
            node.set_angular_velocity(zero)

    def _joint_offsets(self, bodies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per joint, (J, 3) frame B's origin in frame A and (J, 3) Bullet's Euler angles of A^-1 B."""
        lay = self.layout
        return _offsets(bodies[lay.a] @ lay.frame_a, bodies[lay.b] @ lay.frame_b)

    def advance(self, world: np.ndarray, frames: int = 1) -> None:
        """Simulate ``frames`` MMD frames with the kinematic bodies at their bones in ``world`` (n, 4, 4, the
        before-physics bone frames)."""
        self.advance_kinematic(self.plan.kinematic_frames(world[self.plan.kin_bones]), frames)

    def advance_kinematic(self, kinematic: np.ndarray, frames: int = 1) -> None:
        """:meth:`advance` given the kinematic bodies' frames (K, 4, 4) (``_Plan.kinematic_frames``).

        As MMD steps Bullet: one call per frame, ``SUBSTEPS`` fixed sub-steps inside it, so a kinematic
        body moved this frame carries the velocity of that move over the whole frame in both sub-steps
        (float32 1/60 is exactly twice float32 1/120: always two steps, nothing left over)."""
        self._place(self._kinematic, kinematic)
        step = self.world.do_physics
        for _ in range(frames):
            step(1.0 / FRAME_RATE, SUBSTEPS, 1.0 / (FRAME_RATE * SUBSTEPS))
        self._bodies, self._stepped = None, True

    def _sync(self) -> None:
        """Bring the bodies' reported transforms up to the simulated state. After fixed sub-steps Bullet
        reports each dynamic body extrapolated back by one sub-step (its latency motion-state
        interpolation, which panda3d does not expose); a zero-length variable step steps nothing and
        reports the current transforms."""
        if self._stepped:
            self.world.do_physics(0.0, 0, 1.0 / (FRAME_RATE * SUBSTEPS))
            self._stepped = False

    def bones(self, world: np.ndarray) -> np.ndarray:
        """A copy of the bone frames ``world`` (n, 4, 4) with the bones of dynamic bodies (and their
        descendants) replaced by the current physics state."""
        if self._bodies is None:
            self._bodies = self.body_matrices()
        return self._write_back(world, self._bodies)

    def step(self, world: np.ndarray, frames: int = 1) -> np.ndarray:
        """:meth:`advance` then :meth:`bones`: the bone frames after ``frames`` MMD frames at ``world``."""
        self.advance(world, frames)
        return self.bones(world)

    def _write_back(self, world: np.ndarray, bodies: np.ndarray) -> np.ndarray:
        """Bones of dynamic bodies take their body's frame (mode 1) or rotation (mode 2: at the position its
        parent gives it); their other descendants keep their before-physics local transforms under the moved
        parents. One batched step per hierarchy depth. Reads ``bodies`` (B, 4, 4) only."""
        plan = self.plan
        out = world.copy()
        if not plan.aff.size:
            return out
        has = plan.aff_parent >= 0
        local = world[plan.aff].copy()               # before-physics frames in their parents' frames
        local[has] = Q.rigid_inverse(world[plan.aff_parent[has]]) @ local[has]
        frame = bodies[plan.writers] @ plan.inv_offset[plan.writers]
        for idx, rows, parents, has, one, two in plan.levels:
            if parents is not None:
                base = out[parents] @ local[rows]
            else:
                base = local[rows]
                if has.any():
                    base[has] = out[self.parent[idx[has]]] @ base[has]
            if one is not None:
                base[one[0]] = frame[one[1]]
            if two is not None:
                base[two[0], :3, :3] = frame[two[1], :3, :3]
            out[idx] = base
        return out

    def exploded(self, world: np.ndarray) -> str | None:
        """Why the current state is unusable for the kinematic bone frames ``world``, or None.

        Unusable: a non-finite body; a dynamic body farther from its kinematic place than twice the reach
        of the model (its size plus the farthest body from the origin at rest: MMD "weights" hang dozens
        of units below a skirt, so their kinematic place swings that far when the body turns); a joint
        whose frames lie outside its linear limits by more than a tenth of the model's size plus half its
        lever arms (a weld to a far weight flexes by its arm times the angular error).
        """
        bodies = self.body_matrices()
        if not np.isfinite(bodies).all():
            return "a rigid body's transform is not finite"
        lay = self.layout
        dyn = self._dynamic
        if dyn.size:
            far = np.linalg.norm(bodies[dyn, :3, 3] - self._body_targets(world)[dyn, :3, 3], axis=1)
            if far.max() > self.plan.reach:
                return f"a rigid body is {far.max():.1f} units from its bone (bound {self.plan.reach:.1f})"
        if len(lay.joints):
            linear, _ = self._joint_offsets(bodies)
            outside = np.where(self.plan.free, 0.0, np.maximum(self.plan.lo - linear, 0) + np.maximum(linear - self.plan.hi, 0))
            excess = np.linalg.norm(outside, axis=1) - self.plan.slack
            k = int(np.argmax(excess))
            if excess[k] > 0:
                return (f"joint {self.model.joints[lay.joints[k]].name!r} is stretched "
                        f"{np.linalg.norm(outside[k]):.1f} units past its limits (bound {self.plan.slack[k]:.1f})")
        return None


@dataclass(frozen=True)
class SettleSettings:
    """How a still pose is reached: from the rest pose with its bodies hanging settled (``Physics.hanging``),
    the kinematic bones go to the target over a seeded number of MMD frames in [min_frames, max_frames]
    (smoothstep easing), then hold it ``hold_frames``.

    The defaults (2/15-4/15 s, then 8 frames) are what ``python3 bench/physics.py --sweep --poses 16`` chose:
    the bones end a median 1.6% of Gene's size from where a 4 s settle puts them (1.6% for 10-20+8, 1.1% for
    30-60+10 at 2.2 times the cost), 1.2% for a generated long-haired character (whose long chains swing on
    after a quicker ease: 1.1% for 10-20+8, 0.4% for 30-60+10), and a generated skirt leaves the raised
    thighs (158 skirt vertices inside them over the sweep's poses, 650 kinematic) about as well as with
    longer settles."""
    min_frames: int = setting(8, kind=int, low=1, high=600)
    max_frames: int = setting(16, kind=int, low=1, high=600)
    hold_frames: int = setting(8, kind=int, low=0, high=600)

    def __post_init__(self):
        check_settings(self)
        if self.max_frames < self.min_frames:
            fail(self, "max_frames", self.max_frames, f"at least min_frames ({self.min_frames})")


class Physics:
    """A character's physics: :meth:`settle` gives the hook :meth:`udpgen.rig.skeleton.Skeleton.pose` runs
    between the before- and after-physics bones. Every pose gets a fresh Bullet world (no state carries
    over between poses or characters, so a pose's result depends only on its inputs and seed).

    ``fallbacks`` counts poses whose physics exploded and were drawn kinematic; ``last_fallback`` says why.
    """

    def __init__(self, model: Model, skeleton, settings: SettleSettings | None = None,
                 usable: UsablePhysics | None = None):
        _engine()
        self.model, self.skeleton = model, skeleton
        self.settings = settings or SettleSettings()
        self.layout = Layout.build(model, usable)
        # built here, so a character with too many collision classes fails once, at load, not per view
        self.plan = _Plan(model, self.layout, skeleton.parent, skeleton.depth)
        self.active = bool(self.layout.dynamic.any())
        self.rest_world = skeleton.pose().world
        self._rest_quats = Q.from_matrix(self.rest_world[:, :3, :3])
        self._hanging: np.ndarray | None = None      # (D, 4, 4), made by the first settle
        self.fallbacks = 0
        self.last_fallback: str | None = None

    def world(self, at: np.ndarray | None = None, dynamic: np.ndarray | None = None) -> PhysicsWorld:
        """A fresh world with the bodies at the bone frames ``at`` (n, 4, 4; default the rest pose), or the
        dynamic ones at ``dynamic`` (D, 4, 4)."""
        w = PhysicsWorld(self.model, self.layout, self.skeleton.parent, self.skeleton.depth, self.plan)
        w.reset(self.rest_world if at is None else at, dynamic)
        return w

    def hanging(self) -> np.ndarray | None:
        """(D, 4, 4) the dynamic bodies of the rest pose settled under gravity (``REST_SETTLE_FRAMES`` from
        their bones' places; computed once per character), or None when that explodes. Every still pose
        starts here, as a character standing still in MMD would: its hair already hangs, so a settle spends
        its frames on the move into the pose rather than on the model's modelled (unsettled) shape falling."""
        if self._hanging is None:
            w = self.world()
            try:
                w.advance(self.rest_world, REST_SETTLE_FRAMES)
                ok = w.exploded(self.rest_world) is None
            except AssertionError:           # panda3d asserts when Bullet hands it a NaN transform
                ok = False
            self._hanging = w.body_matrices()[self.plan.dynamic] if ok else np.zeros((0, 4, 4))
        return self._hanging if len(self._hanging) else None

    def settle(self, seed):
        """The physics hook for one still pose (None when the model has no dynamic body, so such a model
        poses exactly as without physics). ``seed``: anything ``numpy.random.default_rng`` takes."""
        if not self.active:
            return None
        n_frames = int(np.random.default_rng(seed).integers(self.settings.min_frames,
                                                             self.settings.max_frames + 1))

        def hook(target: np.ndarray):
            w = self.world(dynamic=self.hanging())
            # every frame's kinematic bodies at once: their bones eased (slerp, smoothstep) from rest
            kb = self.plan.kin_bones
            s = np.arange(1, n_frames + 1) / n_frames
            s = (s * s * (3 - 2 * s))[:, None]                                        # (F, 1)
            q = Q.slerp(self._rest_quats[kb], Q.from_matrix(target[kb, :3, :3]), s)   # (F, k, 4)
            p = (1 - s)[..., None] * self.rest_world[kb, :3, 3] + s[..., None] * target[kb, :3, 3]
            try:
                for frame in self.plan.kinematic_frames(Q.compose(q, p)):
                    w.advance_kinematic(frame)
                if self.settings.hold_frames:
                    w.advance(target, self.settings.hold_frames)
                out = w.bones(target)
                why = w.exploded(target) or (None if np.isfinite(out).all() else "a bone frame is not finite")
            except AssertionError as e:      # panda3d asserts when Bullet hands it a NaN transform
                why = f"the engine refused the state ({e})"
            if why is not None:
                self.fallbacks += 1
                self.last_fallback = why
                return None
            return w.written, out

        return hook


class MotionPhysics:
    """A motion simulated forward at MMD's 60 Hz, as MMD plays it: ``at(frame)`` gives the hook for one
    motion frame (VMD frames, 30 per second). The world starts ``warmup_s`` seconds before the first frame
    asked for, with the bodies at their bones in that pose, and runs through every 1/60 s in between; a
    frame more than two warm-ups after the last one (or before it) restarts it there, as does an
    explosion (that frame falls back to the kinematic pose and is counted in ``physics.fallbacks``). A warm-up
    reaching before frame 0 holds the motion's first pose there (the motion clamps to its first key), so the
    first frames are drawn settled into it.

    world_at(frame) -> (n, 4, 4): the before-physics bone frames of the motion at a VMD frame.
    """

    def __init__(self, physics: "Physics", world_at, warmup_s: float = 2.0):
        self.physics, self.world_at, self.warmup = physics, world_at, warmup_s * 30.0
        self._w: PhysicsWorld | None = None
        self._t = 0.0                      # VMD frame the world has been stepped to

    def _restart(self, frame: float) -> None:
        start = np.floor(2.0 * (frame - self.warmup)) / 2.0
        self._w = self.physics.world(self.world_at(start))
        self._t = start

    def at(self, frame: float):
        """The hook for motion frame ``frame`` (None when the model has no dynamic body)."""
        if not self.physics.active:
            return None

        def hook(target: np.ndarray):
            ph = self.physics
            if self._w is None or frame < self._t or frame - self._t > 2 * self.warmup:
                self._restart(frame)
            try:
                while self._t + 0.5 <= frame + 1e-9:          # 0.5 VMD frame = one 1/60 s physics frame
                    self._t += 0.5
                    self._w.advance(self.world_at(self._t))
                out = self._w.bones(target)
                why = self._w.exploded(target) or (None if np.isfinite(out).all() else "a bone frame is not finite")
            except AssertionError as e:
                why = f"the engine refused the state ({e})"
            if why is not None:
                ph.fallbacks += 1
                ph.last_fallback = why
                self._w = None
                return None
            return self._w.written, out

        return hook


PHYSICS_CHOICES = ("auto", "on", "off")


def resolve_physics(choice: str) -> bool:
    """``--physics`` on/off/auto -> whether to simulate: auto = on when the engine is installed; on
    without the engine is an error naming the package."""
    if choice not in PHYSICS_CHOICES:
        raise UdpgenError(f"physics = {choice!r}: expected one of {', '.join(PHYSICS_CHOICES)}")
    if choice == "off":
        return False
    if choice == "on":
        _engine()                     # raises PhysicsUnavailable naming the package
        return True
    return available()


def character_physics(model: Model, skeleton, settings: SettleSettings | None = None) -> Physics | None:
    """A :class:`Physics` for a character, or None when it has no dynamic body (nothing to simulate) or
    its physics cannot be built (more collision classes than the engine holds): then it poses kinematic."""
    try:
        ph = Physics(model, skeleton, settings)
    except PhysicsUnavailable:
        return None
    return ph if ph.active else None
