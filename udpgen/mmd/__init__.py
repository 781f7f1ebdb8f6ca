"""MMD file formats: PMX 2.0/2.1 and PMD models, VMD motions, VPD poses.

``load(path)`` picks the reader from the file's magic bytes (not its extension).
"""
from udpgen.mmd.model import (IK, Bone, BoneFlag, BoneKeys, CameraKeys, DisplayFrame, IKKey, IKLink, Joint,
                              LightKeys, Material, MaterialFlag, Model, Morph, MorphKeys, MorphKind, Motion,
                              Pose, RigidBody, ShadowKeys, WeightType, vmd_name_bytes)

__all__ = ["IK", "Bone", "BoneFlag", "BoneKeys", "CameraKeys", "DisplayFrame", "IKKey", "IKLink", "Joint",
           "LightKeys", "Material", "MaterialFlag", "Model", "Morph", "MorphKeys", "MorphKind", "Motion", "Pose",
           "RigidBody", "ShadowKeys", "WeightType", "vmd_name_bytes", "load", "parse", "sniff"]

import os as _os

from udpgen.errors import FormatError as _FormatError
from udpgen.mmd.binary import read_file_bytes as _read_file_bytes

# Leading bytes of each format -> (kind, module, parser). VPD is text and starts with its title line.
_MAGICS = (
    (b"PMX ", "model", "udpgen.mmd.pmx", "parse_pmx"),
    (b"Pmd", "model", "udpgen.mmd.pmd", "parse_pmd"),
    (b"Vocaloid Motion Data", "motion", "udpgen.mmd.vmd", "parse_vmd"),
    (b"Vocaloid Pose Data file", "pose", "udpgen.mmd.vpd", "parse_vpd"),
)


def sniff(data: bytes) -> str | None:
    """'model', 'motion' or 'pose' from the leading bytes, or None."""
    for magic, kind, _, _ in _MAGICS:
        if data.startswith(magic):
            return kind
    return None


def load(path: str | _os.PathLike):
    """Read any MMD file (.pmx, .pmd, .vmd, .vpd) by its magic bytes; returns a Model, Motion or Pose.

    Raises FormatError naming the file for anything unreadable or of an unknown format.
    """
    return parse(_read_file_bytes(path), path)


def parse(data: bytes, path: str | _os.PathLike | None = None):
    """Decode the bytes of any MMD file by their magic; ``path`` is for messages and texture lookups."""
    import importlib

    for magic, _, module, func in _MAGICS:
        if data.startswith(magic):
            return getattr(importlib.import_module(module), func)(data, path)
    if not data:
        raise _FormatError(path, 0, "header.magic", "empty file")
    raise _FormatError(path, 0, "header.magic",
                       f"unknown format (starts with {data[:8]!r}; expected a PMX, PMD, VMD or VPD file)")
