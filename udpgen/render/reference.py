"""A small numpy rasteriser: the reference the GL renderer is tested against (any speed; tests only).

Triangles are rasterised at pixel centres with the same camera model as the renderer
(:mod:`udpgen.render.camera`): clip = P V [p, 1], window x = (ndc_x + 1) W / 2, y = (1 - ndc_y) H / 2 (row 0
at the top), depth = ndc_z / 2 + 1/2 interpolated linearly in screen space and z-buffered (nearest wins);
attributes are interpolated perspective-correctly (barycentrics divided by clip w, renormalised), as GL
does. Triangles are two-sided. Differences to GL are limited to pixels whose centre lies on a triangle
edge (GL's top-left rule) and to near-coplanar depth ties. Triangles crossing the near plane are skipped
(no clipping): keep the character in front of the camera.

Everything is vectorised: each triangle's bounding box of pixel centres is expanded into candidate pixels
(in chunks, so memory stays bounded), tested with edge functions and reduced per pixel by a lexsort.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import MMD_TO_WORLD, Camera

__all__ = ["Raster", "rasterize", "reference_udp"]


@dataclass
class Raster:
    """values (H, W, C) float64 interpolated attributes (0 where empty); mask (H, W) bool covered;
    depth (H, W) float64 window depth in [0, 1] (1 where empty); face (H, W) int64 triangle id (-1 empty)."""
    values: np.ndarray
    mask: np.ndarray
    depth: np.ndarray
    face: np.ndarray


def rasterize(camera: Camera, positions: np.ndarray, faces: np.ndarray, attributes: np.ndarray,
              chunk: int = 2_000_000) -> Raster:
    """positions (N, 3) world frame, faces (F, 3) vertex indices, attributes (N, C) -> :class:`Raster`."""
    W, H = camera.width, camera.height
    p = np.asarray(positions, np.float64)
    attr = np.asarray(attributes, np.float64)
    faces = np.asarray(faces, np.int64).reshape(-1, 3)
    clip = np.concatenate([p, np.ones((len(p), 1))], 1) @ camera.view_projection().T
    w = clip[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndc = clip[:, :3] / w[:, None]
    sx = (ndc[:, 0] + 1.0) * 0.5 * W
    sy = (1.0 - ndc[:, 1]) * 0.5 * H
    sz = ndc[:, 2] * 0.5 + 0.5
    ok = np.isfinite(clip).all(1) & (w > 1e-9)
    tri_ok = ok[faces].all(1)
    X, Y, Z, Wt = sx[faces], sy[faces], sz[faces], w[faces]          # (F, 3) each
    area = (X[:, 1] - X[:, 0]) * (Y[:, 2] - Y[:, 0]) - (X[:, 2] - X[:, 0]) * (Y[:, 1] - Y[:, 0])
    tri_ok &= np.abs(area) > 1e-12
    with np.errstate(invalid="ignore"):
        i0 = np.clip(np.ceil(X.min(1) - 0.5), 0, W).astype(np.int64)
        i1 = np.clip(np.floor(X.max(1) - 0.5), -1, W - 1).astype(np.int64)
        j0 = np.clip(np.ceil(Y.min(1) - 0.5), 0, H).astype(np.int64)
        j1 = np.clip(np.floor(Y.max(1) - 0.5), -1, H - 1).astype(np.int64)
    nx, ny = np.maximum(i1 - i0 + 1, 0), np.maximum(j1 - j0 + 1, 0)
    tri_ok &= (nx > 0) & (ny > 0)
    tris = np.flatnonzero(tri_ok)
    counts = (nx * ny)[tris]

    best_pix, best_z, best_tri, best_b = [], [], [], []
    start = 0
    cum = np.cumsum(counts)
    while start < len(tris):
        base = cum[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cum, base + chunk, side="right")))
        t = tris[start:stop]
        c = counts[start:stop]
        tid = np.repeat(t, c)
        k = np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)     # index inside each triangle's box
        px = i0[tid] + k % nx[tid]
        py = j0[tid] + k // nx[tid]
        cx, cy = px + 0.5, py + 0.5
        x, y = X[tid], Y[tid]
        e0 = (x[:, 2] - x[:, 1]) * (cy - y[:, 1]) - (y[:, 2] - y[:, 1]) * (cx - x[:, 1])
        e1 = (x[:, 0] - x[:, 2]) * (cy - y[:, 2]) - (y[:, 0] - y[:, 2]) * (cx - x[:, 2])
        e2 = (x[:, 1] - x[:, 0]) * (cy - y[:, 0]) - (y[:, 1] - y[:, 0]) * (cx - x[:, 0])
        b = np.stack([e0, e1, e2], 1) / area[tid][:, None]
        inside = (b >= 0).all(1)
        b, tid, pix = b[inside], tid[inside], (py * W + px)[inside]
        z = (b * Z[tid]).sum(1)
        best_pix.append(pix)
        best_z.append(z)
        best_tri.append(tid)
        best_b.append(b)
        start = stop

    values = np.zeros((H * W, attr.shape[1]))
    depth = np.ones(H * W)
    face = np.full(H * W, -1, np.int64)
    if best_pix:
        pix, z, tid, b = (np.concatenate(a) for a in (best_pix, best_z, best_tri, best_b))
        order = np.lexsort((z, pix))
        pix, z, tid, b = pix[order], z[order], tid[order], b[order]
        first = np.ones(len(pix), bool)
        first[1:] = pix[1:] != pix[:-1]
        pix, z, tid, b = pix[first], z[first], tid[first], b[first]
        keep = (z >= 0) & (z <= 1)                                    # the depth range clips, as GL does
        pix, z, tid, b = pix[keep], z[keep], tid[keep], b[keep]
        bp = b / Wt[tid]                                              # perspective-correct weights
        bp /= bp.sum(1, keepdims=True)
        values[pix] = np.einsum("pk,pkc->pc", bp, attr[faces[tid]])
        depth[pix] = z
        face[pix] = tid
    mask = face >= 0
    return Raster(values.reshape(H, W, -1), mask.reshape(H, W), depth.reshape(H, W), face.reshape(H, W))


def reference_udp(camera: Camera, positions_mmd: np.ndarray, faces_mmd: np.ndarray,
                  landmarks: np.ndarray) -> tuple[np.ndarray, Raster]:
    """The UDP image a correct renderer draws for posed vertices ``positions_mmd`` (N, 3) (MMD frame, e.g.
    ``Rig.pose(values).positions``), faces in file winding (F, 3) and landmarks (N, 3) ->
    ((H, W, 4) float32 UDP, the Raster)."""
    world = np.asarray(positions_mmd, np.float64) @ MMD_TO_WORLD[:3, :3]
    r = rasterize(camera, world, np.asarray(faces_mmd)[:, [0, 2, 1]], landmarks)
    udp = np.zeros(r.mask.shape + (4,), np.float32)
    udp[..., :3] = np.where(r.mask[..., None], r.values, 0.0)
    udp[..., 3] = r.mask
    return udp, r
