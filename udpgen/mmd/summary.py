"""What is in an MMD file: plain-dict summaries behind ``udpgen inspect`` (JSON-ready, no I/O but texture lookups)."""
from __future__ import annotations

from collections import Counter

import numpy as np

from udpgen.mmd.binary import decode_cp932
from udpgen.mmd.model import Model, MorphKind, Motion, Pose, WeightType, shared_toon_index, vmd_name_bytes


def _show(raw: bytes) -> str:
    """A VMD name for people: cp932, a cut trailing lead byte dropped, anything else undecodable replaced."""
    try:
        return decode_cp932(raw, truncated=True)
    except UnicodeDecodeError:
        return raw.decode("cp932", errors="replace")


def model_summary(model: Model) -> dict:
    """Counts of everything in ``model``, and which of its textures exist on disk."""
    toons = {m.toon_index for m in model.materials if not m.toon_shared and m.toon_index >= 0}
    used = sorted({i for m in model.materials for i in (m.texture_index, m.sphere_index) if i >= 0} | toons)
    # a toon named toonNN.bmp that the model's folder lacks is MMD's own shared toon: found, not missing
    missing = [model.textures[i] for i in used if model.resolve_texture(i) is None
               and not (i in toons and shared_toon_index(model.textures[i]) is not None)]
    weights = np.bincount(model.weight_types, minlength=5)
    return {
        "file": model.path, "format": model.format, "version": model.version, "encoding": model.encoding,
        "name": model.name, "name_en": model.name_en,
        "vertices": model.vertex_count, "faces": model.face_count, "additional_uvs": model.additional_uv_count,
        "weight_types": {WeightType(t).name: int(weights[t]) for t in range(5)},
        "materials": len(model.materials),
        "textures": {"total": len(model.textures), "used": len(used), "found": len(used) - len(missing),
                     "missing": missing},
        "bones": len(model.bones),
        "ik_chains": sum(b.ik is not None for b in model.bones),
        "append_bones": sum(b.append_parent >= 0 and (b.append_rotate or b.append_translate) for b in model.bones),
        "morphs": {"total": len(model.morphs),
                   **{MorphKind(k).name.lower(): n for k, n in sorted(Counter(int(m.kind) for m in model.morphs).items())}},
        "display_frames": len(model.display_frames),
        "rigid_bodies": len(model.rigid_bodies), "joints": len(model.joints), "soft_bodies": model.soft_body_count,
        "repairs": dict(model.repairs),
    }


def motion_summary(motion: Motion) -> dict:
    """Keyframes per section, frame range and distinct tracks of a VMD."""
    fr = motion.frame_range
    return {
        "file": motion.path, "format": "vmd", "model_name": _show(motion.model_name),
        "keyframes": {"bones": len(motion.bones), "morphs": len(motion.morphs), "cameras": len(motion.cameras),
                      "lights": len(motion.lights), "shadows": len(motion.shadows), "ik": len(motion.ik)},
        "frame_range": list(fr) if fr else None,
        "bone_tracks": len(motion.bones.names), "morph_tracks": len(motion.morphs.names),
        "sections": list(motion.sections),
    }


def pose_summary(pose: Pose) -> dict:
    return {"file": pose.path, "format": "vpd", "model_name": pose.model_name, "bones": len(pose.bones),
            "morphs": len(pose.morphs)}


def match_names(model: Model, motion: Motion | Pose) -> dict:
    """Which of the motion's bone and morph tracks name something in ``model``.

    VMD names are matched by their (truncated) cp932 bytes, as MMD does; VPD names by text. Tracks that
    match nothing are ignored when posing; they are listed here so a user sees a motion made for another
    skeleton.
    """
    if isinstance(motion, Pose):
        bone_names, morph_names = {b.name for b in model.bones}, {m.name for m in model.morphs}
        bones = [name for name, _, _ in motion.bones]
        morphs = [name for name, _ in motion.morphs]
        missing_b = [n for n in bones if n not in bone_names]
        missing_m = [n for n in morphs if n not in morph_names]
    else:
        bone_names = {vmd_name_bytes(b.name) for b in model.bones}
        morph_names = {vmd_name_bytes(m.name) for m in model.morphs}
        bones, morphs = motion.bones.names, motion.morphs.names
        missing_b = [_show(n) for n in bones if n not in bone_names]
        missing_m = [_show(n) for n in morphs if n not in morph_names]
    return {"model": model.path,
            "bones": {"tracks": len(bones), "matched": len(bones) - len(missing_b), "missing": missing_b},
            "morphs": {"tracks": len(morphs), "matched": len(morphs) - len(missing_m), "missing": missing_m}}


def format_table(summary: dict, indent: int = 0) -> str:
    """Nested dict -> aligned 'key: value' lines for a terminal."""
    lines = []
    width = max((len(k) for k in summary), default=0)
    for key, value in summary.items():
        pad = " " * indent
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.append(format_table(value, indent + 2))
        elif isinstance(value, list) and len(value) > 8:
            lines.append(f"{pad}{key:<{width}}  {', '.join(map(str, value[:8]))}, ... ({len(value)} in all)")
        elif isinstance(value, list):
            lines.append(f"{pad}{key:<{width}}  {', '.join(map(str, value)) if value else '-'}")
        else:
            lines.append(f"{pad}{key:<{width}}  {value}")
    return "\n".join(lines)
