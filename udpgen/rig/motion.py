"""Sample a VMD motion (or apply a VPD pose) for one model: per-bone animation values at a frame.

VMD semantics (MMD's, as babylon-mmd implements them): a bone's keys are sorted by frame; between two keys
the LATER key's four Bezier curves (X, Y, Z translation and rotation) map the linear time to a weight:
the curve's x(s) is inverted for s by bisection and y(s) is the weight. Rotation is slerped along the
shorter arc. Before the first key and after the last, the end key is held. Morph weights interpolate
linearly. IK on/off steps at IK-property keys. Tracks are matched to model bones by the cp932 bytes
VMD stores (15-byte truncations); tracks naming nothing in the model are ignored and counted.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from udpgen.errors import UdpgenError
from udpgen.mmd.model import Model, Motion, Pose, vmd_name_bytes
from udpgen.mmd.vmd import bone_curves
from udpgen.rig import quat as Q

_BISECTION_STEPS = 24      # x(s) is monotone on [0, 1]; 24 halvings reach float32 resolution
_FRAME_SPAN = 2.0 ** 33     # > any uint32 frame: separates tracks in one sorted key array


def bezier_weight(curves: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Evaluate MMD's cubic Bezier easing.

    curves (..., 4) = (x1, y1, x2, y2) in [0, 1] (the curve runs (0,0) -> (x1,y1) -> (x2,y2) -> (1,1));
    t (...) linear time in [0, 1]. Returns y at the s where x(s) = t, found by bisection.
    """
    x1, y1, x2, y2 = np.moveaxis(np.asarray(curves, np.float64), -1, 0)
    t = np.asarray(t, np.float64)
    lo, hi = np.zeros_like(t), np.ones_like(t)
    for _ in range(_BISECTION_STEPS):
        s = 0.5 * (lo + hi)
        u = 1.0 - s
        x = 3 * u * u * s * x1 + 3 * u * s * s * x2 + s * s * s
        below = x < t
        lo = np.where(below, s, lo)
        hi = np.where(below, hi, s)
    s = 0.5 * (lo + hi)
    u = 1.0 - s
    y = 3 * u * u * s * y1 + 3 * u * s * s * y2 + s * s * s
    return np.where(t <= 0.0, 0.0, np.where(t >= 1.0, 1.0, y))     # exact at the keys


def _tracks(names: tuple[bytes, ...], name_index: np.ndarray, frame: np.ndarray, targets: list[bytes]):
    """Group keys by target: returns (order of keys sorted by (target, frame), target of each sorted key,
    names that match no target)."""
    lookup = {}
    for i, nb in enumerate(targets):
        lookup.setdefault(nb, i)            # duplicates in the model: the first bone wins, as in MMD
    track_of_name = np.array([lookup.get(n, -1) for n in names], np.int64)
    track = track_of_name[name_index] if len(name_index) else np.zeros(0, np.int64)
    keep = np.flatnonzero(track >= 0)
    order = keep[np.lexsort((frame[keep], track[keep]))]
    unmatched = tuple(n for n, t in zip(names, track_of_name) if t < 0)
    return order, track[order], unmatched


@dataclass(frozen=True)
class FramePose:
    """Animation values of every bone at one frame: translation (n, 3) and rotation (n, 4) relative to the
    rest pose, IK on/off (n,) bool per bone, morph weights (m,)."""
    translation: np.ndarray
    rotation: np.ndarray
    ik_enabled: np.ndarray
    morph_weights: np.ndarray


class MotionSampler:
    """A VMD motion bound to a model: call :meth:`at` for the animation values at any (fractional) frame."""

    def __init__(self, model: Model, motion: Motion):
        self.n_bones, self.n_morphs = len(model.bones), len(model.morphs)
        bk = motion.bones
        order, track, self.unmatched_bones = _tracks(bk.names, bk.name_index, bk.frame.astype(np.int64),
                                                     [vmd_name_bytes(b.name) for b in model.bones])
        self._b_frame = bk.frame[order].astype(np.float64)
        self._b_track = track
        self._b_pos = bk.position[order].astype(np.float64)
        self._b_rot = Q.normalize(bk.rotation[order])
        self._b_curves = bone_curves(bk.interpolation[order]) if len(order) else np.zeros((0, 4, 4), np.float32)
        self._b_starts = np.searchsorted(track, np.arange(self.n_bones + 1))
        mk = motion.morphs
        order, track, self.unmatched_morphs = _tracks(mk.names, mk.name_index, mk.frame.astype(np.int64),
                                                      [vmd_name_bytes(m.name) for m in model.morphs])
        self._m_frame = mk.frame[order].astype(np.float64)
        self._m_weight = mk.weight[order].astype(np.float64)
        self._m_starts = np.searchsorted(track, np.arange(self.n_morphs + 1))
        ik_names = {vmd_name_bytes(b.name, 20): i for i, b in enumerate(model.bones) if b.ik is not None}
        self._ik_keys = sorted(((k.frame, [(ik_names[n], on) for n, on in k.ik_enabled if n in ik_names])
                                for k in motion.ik), key=lambda k: k[0])
        self.frame_range = motion.frame_range or (0, 0)
        self.animated_bones = np.flatnonzero(np.diff(self._b_starts) > 0)

    @staticmethod
    def _segments(frames: np.ndarray, starts: np.ndarray, f: float):
        """Per track with keys: (track ids, index of key a, index of key b, linear t in [0, 1]).

        Keys are sorted by (track, frame), so one searchsorted over (track, frame) pairs finds, for every
        track at once, its first key after ``f``.
        """
        tracks = np.flatnonzero(np.diff(starts) > 0)
        lo, hi = starts[tracks], starts[tracks + 1]
        track_of_key = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
        keys = track_of_key * _FRAME_SPAN + frames
        pos = np.searchsorted(keys, tracks * _FRAME_SPAN + f, side="right")
        b = np.minimum(pos, hi - 1)
        a = np.maximum(pos - 1, lo)
        span = frames[b] - frames[a]
        t = np.where(span > 0, (f - frames[a]) / np.where(span > 0, span, 1.0), 0.0)
        return tracks, a, b, np.clip(t, 0.0, 1.0)

    def at(self, frame: float) -> FramePose:
        """Animation values at ``frame`` (30 fps frame numbers; fractions interpolate)."""
        n = self.n_bones
        translation = np.zeros((n, 3))
        rotation = np.tile(Q.IDENTITY, (n, 1))
        if len(self._b_frame):
            tracks, a, b, t = self._segments(self._b_frame, self._b_starts, frame)
            w = bezier_weight(self._b_curves[b], t[:, None])              # (k, 4): X, Y, Z, R weights
            translation[tracks] = self._b_pos[a] + w[:, :3] * (self._b_pos[b] - self._b_pos[a])
            rotation[tracks] = Q.slerp(self._b_rot[a], self._b_rot[b], w[:, 3])
        morphs = np.zeros(self.n_morphs)
        if len(self._m_frame):
            tracks, a, b, t = self._segments(self._m_frame, self._m_starts, frame)
            morphs[tracks] = self._m_weight[a] + t * (self._m_weight[b] - self._m_weight[a])
        ik = np.ones(n, bool)
        for key_frame, states in self._ik_keys:
            if key_frame > frame:
                break
            for bone, on in states:
                ik[bone] = on
        return FramePose(translation, rotation, ik, morphs)


def pose_values(model: Model, pose: Pose) -> FramePose:
    """A VPD pose as animation values for ``model`` (names matched by text; unknown names ignored)."""
    n = len(model.bones)
    translation = np.zeros((n, 3))
    rotation = np.tile(Q.IDENTITY, (n, 1))
    index = {}
    for i, b in enumerate(model.bones):
        index.setdefault(b.name, i)
    for name, t, r in pose.bones:
        i = index.get(name)
        if i is not None:
            translation[i] = t
            rotation[i] = Q.normalize(r)
    morph_index = {}
    for i, m in enumerate(model.morphs):
        morph_index.setdefault(m.name, i)
    weights = np.zeros(len(model.morphs))
    for name, w in pose.morphs:
        if name in morph_index:
            weights[morph_index[name]] = w
    return FramePose(translation, rotation, np.ones(n, bool), weights)


def parse_frames(spec: str, frame_range: tuple[int, int]) -> list[float]:
    """``A``, ``A:B`` or ``A:B:S`` -> frames A, A + S, ... below B (half-open, like range; floats allowed).
    B may be empty (``A:`` / ``A::S``): up to and including the motion's last frame."""
    parts = spec.split(":")
    if not 1 <= len(parts) <= 3:
        raise UdpgenError(f"--frames {spec!r}: expected A, A:B or A:B:S")
    try:
        a = float(parts[0]) if parts[0] else float(frame_range[0])
        b = float(parts[1]) if len(parts) > 1 and parts[1] else None
        s = float(parts[2]) if len(parts) > 2 and parts[2] else 1.0
    except ValueError:
        raise UdpgenError(f"--frames {spec!r}: A, B and S must be numbers") from None
    if len(parts) == 1:
        return [a]
    if b is None:
        b = float(frame_range[1]) + 1e-9
    if not (np.isfinite([a, b, s]).all() and s > 0):
        raise UdpgenError(f"--frames {spec!r}: the step must be positive and all values finite")
    n = int(np.ceil((b - a) / s - 1e-9))
    if n <= 0:
        raise UdpgenError(f"--frames {spec!r} selects no frame")
    if n > 1_000_000:
        raise UdpgenError(f"--frames {spec!r} selects {n} frames; that is too many")
    return [a + k * s for k in range(n)]
