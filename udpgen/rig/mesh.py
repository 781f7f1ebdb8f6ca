"""Posed meshes out of MMD's frame, for any mesh viewer: right-handed triangles with landmark colours.

MMD is left-handed with clockwise front faces; viewers (and glTF/PLY) are right-handed with
counter-clockwise ones. Negating z mirrors the geometry, which also reverses every triangle's winding, so
the conversion negates z and swaps two corners of each face: front faces stay front faces.
"""
from __future__ import annotations

import os

import numpy as np

from udpgen.io.atomic import write_bytes_atomic
from udpgen.errors import UdpgenError
from udpgen.mmd.model import Model

FORMATS = ("ply", "glb")
MMD_UNIT_M = 0.08           # one MMD unit in metres


def visible_faces(model: Model, visible: np.ndarray) -> np.ndarray:
    """(F', 3) faces of the materials flagged ``visible`` (M,) bool, in file order."""
    keep = [model.faces[start:start + count] for (start, count), v in zip(model.material_faces(), visible) if v]
    return np.concatenate(keep) if keep else np.zeros((0, 3), np.int32)


def to_right_handed(positions: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MMD-frame positions (N, 3) and faces (F, 3) -> right-handed positions (z negated) and faces with
    counter-clockwise front faces."""
    return positions * np.array([1.0, 1.0, -1.0]), faces[:, [0, 2, 1]]


def mesh_bytes(positions: np.ndarray, faces: np.ndarray, colors: np.ndarray, fmt: str) -> bytes:
    """Encode a right-handed mesh with per-vertex colours (N, 3) in [0, 1] as PLY or GLB bytes."""
    import trimesh

    rgba = np.concatenate([np.round(np.clip(colors, 0, 1) * 255), np.full((len(colors), 1), 255)], 1).astype(np.uint8)
    mesh = trimesh.Trimesh(vertices=positions, faces=faces, vertex_colors=rgba, process=False)
    return mesh.export(file_type=fmt)


def write_mesh(path: str | os.PathLike, positions: np.ndarray, faces: np.ndarray, colors: np.ndarray) -> None:
    """Write a right-handed coloured mesh; the format comes from the extension (.ply or .glb)."""
    fmt = os.fspath(path).rsplit(".", 1)[-1].lower()
    if fmt not in FORMATS:
        raise UdpgenError(f"{path}: unsupported mesh format '.{fmt}' (use .ply or .glb)")
    if len(positions) == 0:       # trimesh's writers fail on it with a traceback
        raise UdpgenError(f"{path}: the mesh has no vertices; nothing to write")
    write_bytes_atomic(path, mesh_bytes(positions, faces, colors, fmt))
