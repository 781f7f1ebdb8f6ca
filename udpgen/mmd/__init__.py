"""MMD file formats: PMX 2.0/2.1 and PMD models, VMD motions, VPD poses.

``load(path)`` picks the reader from the file's magic bytes (not its extension).
"""
from udpgen.mmd.model import (IK, Bone, BoneFlag, BoneKeys, CameraKeys, DisplayFrame, IKKey, IKLink, Joint,
                              LightKeys, Material, MaterialFlag, Model, Morph, MorphKeys, MorphKind, Motion,
                              Pose, RigidBody, ShadowKeys, WeightType, vmd_name_bytes)
