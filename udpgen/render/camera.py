"""Cameras: perspective and orthographic, their intrinsics/extrinsics as JSON, and a seeded view sampler.

Frames (every matrix here is float64, column vectors, ``p' = M @ [p, 1]``):

* world: right-handed, +Y up, the character facing +Z, MMD units (8 cm): MMD's frame with z negated
  (:data:`MMD_TO_WORLD`; the same conversion as :func:`udpgen.rig.mesh.to_right_handed`, which also swaps
  two face corners so front faces stay counter-clockwise).
* camera (OpenGL convention): the camera sits at the origin looking down -Z, +X to the right of the image,
  +Y up in the image. ``world_to_camera`` (4 x 4, the "view matrix", rigid) maps world -> camera.
* pixels: u to the right, v down, origin at the top-left corner of the top-left pixel, pixel (i, j) centred
  at (i + 0.5, j + 0.5); row 0 of every returned image is the top.

Perspective projection of a camera-frame point (x, y, z), z < 0::

    u = cx + fx * x / -z        v = cy - fy * y / -z        (fx = fy, square pixels; cx = W / 2, cy = H / 2)

Orthographic: ``u = cx + s * x``, ``v = cy - s * y`` with ``s`` pixels per world unit (``ortho_scale``).
OpenCV users: ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` with ``world_to_camera_opencv`` =
``diag(1, -1, -1, 1) @ world_to_camera`` (also in the dict).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from udpgen.errors import UdpgenError
from udpgen.settings import check_settings, setting

__all__ = ["MMD_TO_WORLD", "Camera", "PerspectiveCamera", "OrthographicCamera", "CameraSampler", "look_at",
           "bounding_sphere", "camera_from_dict"]

MMD_TO_WORLD = np.diag([1.0, 1.0, -1.0, 1.0])      # MMD (left-handed) -> right-handed world: negate z
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def look_at(eye, target, up=(0.0, 1.0, 0.0), roll_deg: float = 0.0) -> np.ndarray:
    """(4, 4) world_to_camera of a camera at ``eye`` looking at ``target``; ``up`` picks the image's up
    direction (a fallback is used when looking straight along it); ``roll_deg`` turns the image
    counter-clockwise as seen by the viewer."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    fwd = target - eye
    norm = np.linalg.norm(fwd)
    if not np.isfinite(norm) or norm < 1e-12:
        raise UdpgenError("camera eye and target coincide (or are not finite)")
    fwd /= norm
    right = np.cross(fwd, up)
    if np.linalg.norm(right) < 1e-6:
        right = np.cross(fwd, np.array([0.0, 0.0, -1.0]) if abs(fwd[1]) > 0.5 else np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    true_up = np.cross(right, fwd)
    rot = np.stack([right, true_up, -fwd])             # rows: camera axes in world coordinates
    if roll_deg:
        c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
        rot = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]) @ rot
    view = np.eye(4)
    view[:3, :3] = rot
    view[:3, 3] = -rot @ eye
    return view


@dataclass
class Camera:
    """Shared part of both cameras: image size (pixels), extrinsics and depth range (world units)."""
    width: int
    height: int
    world_to_camera: np.ndarray = field(default_factory=lambda: np.eye(4))
    znear: float = 0.1
    zfar: float = 1000.0
    kind = "camera"

    def __post_init__(self):
        self.width, self.height = int(self.width), int(self.height)
        self.world_to_camera = np.asarray(self.world_to_camera, np.float64).reshape(4, 4)
        if self.width <= 0 or self.height <= 0:
            raise UdpgenError(f"camera image size must be positive, got {self.width}x{self.height}")
        if not np.isfinite(self.world_to_camera).all():
            raise UdpgenError("camera extrinsics are not finite")
        if not 0 < self.znear < self.zfar:
            raise UdpgenError(f"camera depth range must satisfy 0 < znear < zfar, got {self.znear}, {self.zfar}")

    @property
    def position(self) -> np.ndarray:
        """(3,) camera centre in world coordinates."""
        r, t = self.world_to_camera[:3, :3], self.world_to_camera[:3, 3]
        return -r.T @ t

    def projection(self) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def intrinsics(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def view_projection(self) -> np.ndarray:
        """(4, 4) world -> clip."""
        return self.projection() @ self.world_to_camera

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N, 3) -> (pixel coordinates (N, 2) as (u, v), depth (N,) = distance in front of the
        camera along its axis, world units)."""
        p = np.asarray(points, np.float64) @ self.world_to_camera[:3, :3].T + self.world_to_camera[:3, 3]
        k = self.intrinsics()
        if self.kind == "perspective":
            d = -p[:, 2]
            with np.errstate(divide="ignore", invalid="ignore"):
                uv = np.stack([k["cx"] + k["fx"] * p[:, 0] / d, k["cy"] - k["fy"] * p[:, 1] / d], 1)
        else:
            d = -p[:, 2]
            s = k["ortho_scale"]
            uv = np.stack([k["cx"] + s * p[:, 0], k["cy"] - s * p[:, 1]], 1)
        return uv, d

    def to_dict(self) -> dict:
        """JSON-ready description: kind, size, intrinsics, both extrinsics conventions, depth range."""
        return {"kind": self.kind, "width": self.width, "height": self.height, "intrinsics": self.intrinsics(),
                "world_to_camera": self.world_to_camera.tolist(),
                "world_to_camera_opencv": (_GL_TO_CV @ self.world_to_camera).tolist(),
                "position": self.position.tolist(), "znear": self.znear, "zfar": self.zfar,
                "convention": "world: right-handed, +Y up, character faces +Z (MMD with z negated), MMD units; "
                              "camera: OpenGL (looks down -Z, +Y up); pixels: u right, v down, origin top-left "
                              "corner, centres at +0.5"}


@dataclass
class PerspectiveCamera(Camera):
    """A pinhole camera with vertical field of view ``yfov`` (radians); square pixels."""
    yfov: float = math.radians(35.0)
    kind = "perspective"

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.yfov < math.pi:
            raise UdpgenError(f"field of view must be in (0, 180) degrees, got {math.degrees(self.yfov):.4g}")

    def intrinsics(self) -> dict:
        fy = 0.5 * self.height / math.tan(0.5 * self.yfov)
        return {"fx": fy, "fy": fy, "cx": 0.5 * self.width, "cy": 0.5 * self.height,
                "yfov_deg": math.degrees(self.yfov)}

    def projection(self) -> np.ndarray:
        k = self.intrinsics()
        n, f = self.znear, self.zfar
        p = np.zeros((4, 4))
        p[0, 0] = 2.0 * k["fx"] / self.width
        p[1, 1] = 2.0 * k["fy"] / self.height
        p[2, 2] = -(f + n) / (f - n)
        p[2, 3] = -2.0 * f * n / (f - n)
        p[3, 2] = -1.0
        return p


@dataclass
class OrthographicCamera(Camera):
    """A parallel projection showing ``ymag`` world units above and below the image centre."""
    ymag: float = 10.0
    kind = "orthographic"

    def __post_init__(self):
        super().__post_init__()
        if not (self.ymag > 0 and math.isfinite(self.ymag)):
            raise UdpgenError(f"orthographic half-height must be positive, got {self.ymag}")

    def intrinsics(self) -> dict:
        return {"ortho_scale": 0.5 * self.height / self.ymag, "cx": 0.5 * self.width, "cy": 0.5 * self.height,
                "ymag": self.ymag}

    def projection(self) -> np.ndarray:
        n, f = self.znear, self.zfar
        xmag = self.ymag * self.width / self.height
        p = np.eye(4)
        p[0, 0] = 1.0 / xmag
        p[1, 1] = 1.0 / self.ymag
        p[2, 2] = -2.0 / (f - n)
        p[2, 3] = -(f + n) / (f - n)
        return p


def camera_from_dict(d: dict) -> Camera:
    """Inverse of :meth:`Camera.to_dict`."""
    common = dict(width=d["width"], height=d["height"], world_to_camera=np.array(d["world_to_camera"]),
                  znear=d["znear"], zfar=d["zfar"])
    if d["kind"] == "perspective":
        return PerspectiveCamera(**common, yfov=math.radians(d["intrinsics"]["yfov_deg"]))
    if d["kind"] == "orthographic":
        return OrthographicCamera(**common, ymag=d["intrinsics"]["ymag"])
    raise UdpgenError(f"unknown camera kind {d['kind']!r}")


def bounding_sphere(points: np.ndarray) -> tuple[np.ndarray, float]:
    """(centre (3,), radius) enclosing the finite rows of ``points`` (N, 3): the bounding box's centre and
    the farthest point from it (within ~15% of the smallest sphere, and stable from frame to frame)."""
    p = np.asarray(points, np.float64).reshape(-1, 3)
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) == 0:
        raise UdpgenError("no finite vertex to frame: the posed character is empty or all NaN")
    t = np.ascontiguousarray(p.T)           # coordinate rows: numpy reduces these much faster than columns
    centre = 0.5 * (t.min(1) + t.max(1))
    d = t - centre[:, None]
    radius = float(np.sqrt(np.einsum("ij,ij->j", d, d).max()))
    return centre, max(radius, 1e-6)


@dataclass(frozen=True)
class CameraSampler:
    """Random views that frame a whole character. Angles in degrees; ranges are (low, high), uniform.

    azimuth: about +Y, 0 = in front of the character (on its +Z side), 90 = on its left (+X);
    elevation: above (+) or below (-) the character's centre; roll: image rotation;
    fov: vertical field of view of perspective views; distance: multiple of the distance at which the
    bounding sphere just fits the image (1 = touching the nearer image border, times ``margin``);
    orthographic_prob: chance of an orthographic view (same framing rule).
    """
    azimuth: tuple[float, float] = setting((-180.0, 180.0), kind="pair")
    elevation: tuple[float, float] = setting((-10.0, 30.0), kind="pair", low=-89, high=89)
    roll: tuple[float, float] = setting((-8.0, 8.0), kind="pair")
    fov: tuple[float, float] = setting((25.0, 45.0), kind="pair", low=0, high=170, open_low=True, open_high=True)
    distance: tuple[float, float] = setting((1.0, 1.2), kind="pair", low=1.0)      # the character must fit
    orthographic_prob: float = setting(0.0, low=0, high=1)
    margin: float = setting(1.02, low=1.0)

    def __post_init__(self):
        check_settings(self)

    def sample(self, rng: np.random.Generator, centre, radius: float, width: int, height: int) -> Camera:
        """One camera looking at ``centre`` (3,) (world frame) from a random direction, framing the sphere of
        ``radius`` in an image of ``width`` x ``height`` pixels."""
        u = lambda r: float(rng.uniform(r[0], r[1]))    # noqa: E731
        az, el, roll, fov, dist = (u(self.azimuth), u(self.elevation), u(self.roll), u(self.fov),
                                   u(self.distance))
        ortho = bool(rng.random() < self.orthographic_prob)
        centre = np.asarray(centre, np.float64)
        a, e = math.radians(az), math.radians(el)
        direction = np.array([math.sin(a) * math.cos(e), math.sin(e), math.cos(a) * math.cos(e)])
        r = float(radius) * self.margin
        aspect = width / height
        if ortho:
            ymag = r * dist / min(1.0, aspect)
            d = 3.0 * r
            view = look_at(centre + d * direction, centre, roll_deg=roll)
            return OrthographicCamera(width, height, view, znear=d - 1.5 * r, zfar=d + 1.5 * r, ymag=ymag)
        yfov = math.radians(fov)
        half = min(0.5 * yfov, math.atan(math.tan(0.5 * yfov) * aspect))   # the narrower half-angle
        d = dist * r / math.sin(half)
        view = look_at(centre + d * direction, centre, roll_deg=roll)
        return PerspectiveCamera(width, height, view, znear=max(d - 1.5 * r, 1e-3 * d), zfar=d + 1.5 * r, yfov=yfov)

    def sample_many(self, seed: int, count: int, centre, radius: float, width: int, height: int) -> list[Camera]:
        """``count`` cameras from ``seed`` (reproducible)."""
        rng = np.random.default_rng(seed)
        return [self.sample(rng, centre, radius, width, height) for _ in range(count)]

    @staticmethod
    def front(centre, radius: float, width: int, height: int, fov_deg: float = 30.0, azimuth: float = 0.0,
              elevation: float = 0.0) -> PerspectiveCamera:
        """A fixed view (default: straight in front) framing the sphere; for tests and previews."""
        s = CameraSampler(azimuth=(azimuth, azimuth), elevation=(elevation, elevation), roll=(0.0, 0.0),
                          fov=(fov_deg, fov_deg), distance=(1.0, 1.0))
        return s.sample(np.random.default_rng(0), centre, radius, width, height)
