"""Tolerances: odd but readable data that authoring tools write, repaired or ignored once, after reading.

The readers are strict where bytes cannot be read (a truncated section, an index out of range: FormatError).
What MikuMikuDance itself loads without complaint is accepted here instead, each kind counted, and the
reader warns once per file with the counts (``Model.repairs`` keeps them for ``udpgen doctor``):

====================  =========================================================================================
key                   what the file has -> what the model gets
====================  =========================================================================================
extra_base_morph      PMD: a type-0 (base) skin after the first -> an ordinary morph on the hidden panel
english_bone_name     no bone has a standard Japanese name (左腕, センター, ...) but one has a well-known English
                      one in its name or English name (``arm_L``, ``left arm``, ``LeftUpperArm``, ``center``)
                      -> that bone is given the Japanese name, so the rig and VMD motions find it
parent_cycle          a bone that is its own ancestor (``parent == self`` included) -> that bone becomes a root,
                      cutting each cycle at its lowest-index bone whose parent index is not smaller than its own
grant_self            an append (grant) flag with source -1 or the bone itself -> the grant is off
ik_no_links           an IK bone whose target is -1 or itself, or with no link other than -1 / the target -> IK off
ik_bad_link           an IK link naming -1 or the IK target -> the link is dropped
bad_vertex            a vertex position, normal, uv, weight or SDEF value that is NaN, infinite or beyond
                      1e5 units (8 km) -> the vertex sits on its first bone's head (origin without a bone),
                      normal +Y, uv 0, BDEF1 on that bone
bad_bone_position     a bone head that is NaN, infinite or beyond 1e5 units -> its parent's head (else origin)
negative_edge         a negative material edge size or vertex edge scale -> 0 (no outline)
empty_material        a material with zero faces -> kept; it draws nothing
degenerate_face       a triangle naming one vertex twice -> kept; GL rasterises nothing for it
====================  =========================================================================================

Everything here is a pure function of the Model: arrays in, new arrays out; the input is never modified.
"""
from __future__ import annotations

import dataclasses
import re
import warnings
from collections import Counter

import numpy as np

from udpgen.errors import InputWarning

from udpgen.mmd.model import BoneFlag, Model, WeightType

__all__ = ["TOLERANCES", "repair", "warn_repairs", "read_repaired"]

# key -> how the warning describes one item of that kind
TOLERANCES = {
    "extra_base_morph": "extra base morph(s) read as ordinary morphs",
    "english_bone_name": "standard bone(s) known only by an English name given their Japanese name",
    "parent_cycle": "bone parent cycle(s) cut (bone made a root)",
    "grant_self": "grant(s) from itself or from no bone ignored",
    "ik_no_links": "IK bone(s) without a usable target or link: IK off",
    "ik_bad_link": "IK link(s) naming no bone or the target dropped",
    "bad_vertex": "vertex(es) with NaN, infinite or huge values moved onto their bone",
    "bad_bone_position": "bone head(s) with NaN, infinite or huge values moved onto their parent",
    "negative_edge": "negative edge size(s) set to 0",
    "empty_material": "material(s) with zero faces (draw nothing)",
    "degenerate_face": "triangle(s) naming a vertex twice (draw nothing)",
}

# English spellings of the standard bones (MMD's own English names, mmd_tools, Unity/VRM humanoid), written
# without case, spaces, dots, underscores or hyphens; sided ones are the side-free stem ("{side}" = 左 / 右).
_ENGLISH = {
    "center": "センター", "centre": "センター", "groove": "グルーブ", "upperbody": "上半身", "spine": "上半身",
    "upperbody2": "上半身2", "chest": "上半身2", "lowerbody": "下半身", "neck": "首", "head": "頭",
    "shoulder": "{side}肩", "arm": "{side}腕", "upperarm": "{side}腕", "elbow": "{side}ひじ", "lowerarm": "{side}ひじ",
    "forearm": "{side}ひじ", "wrist": "{side}手首", "hand": "{side}手首", "leg": "{side}足", "upperleg": "{side}足",
    "thigh": "{side}足", "knee": "{side}ひざ", "lowerleg": "{side}ひざ", "calf": "{side}ひざ", "ankle": "{side}足首",
    "foot": "{side}足首", "legik": "{side}足ＩＫ", "toeik": "{side}つま先ＩＫ", "eye": "{side}目",
}
_SIDED = re.compile(r"^(?:(left|right)(.+)|(.+?)(left|right|l|r))$")


def _standard_name(english: str) -> str | None:
    """``'arm_L'`` / ``'Left Arm'`` / ``'LeftUpperArm'`` / ``'center'`` -> the standard Japanese name, else None."""
    key = re.sub(r"[\s._\-]", "", english.lower())
    if key in _ENGLISH and "{side}" not in _ENGLISH[key]:
        return _ENGLISH[key]
    m = _SIDED.match(key)
    if not m:
        return None
    side, stem = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
    name = _ENGLISH.get(stem)
    if name is None or "{side}" not in name:
        return None
    return name.format(side="左" if side[0] == "l" else "右")


def _english_names(bones: list, counts: Counter) -> None:
    """Give standard bones known only by English names their Japanese name (in place on the list)."""
    taken = {b.name for b in bones}
    for i, b in enumerate(bones):
        for english in (b.name, b.name_en):
            std = _standard_name(english) if english else None
            if std and std not in taken:
                bones[i] = dataclasses.replace(b, name=std, name_en=b.name_en or b.name)
                taken.add(std)
                counts["english_bone_name"] += 1
                break


HUGE = 1e5      # MMD units (8 cm): no character or stage vertex is 8 km from the origin


def _bad_rows(a: np.ndarray, limit: float | None = HUGE) -> np.ndarray:
    """(N, ...) -> (N,) bool: rows with a non-finite value (or one beyond ``limit`` in magnitude)."""
    flat = a.reshape(len(a), int(np.prod(a.shape[1:])))
    bad = ~np.isfinite(flat).all(1)
    if limit is not None:
        with np.errstate(invalid="ignore"):
            bad |= (np.abs(np.nan_to_num(flat)) > limit).any(1)
    return bad


def _bones(model: Model, counts: Counter) -> tuple:
    bones = list(model.bones)
    n = len(bones)
    _english_names(bones, counts)
    parent = [b.parent if 0 <= b.parent < n else -1 for b in bones]
    # cycles: walk up from each bone; a walk that meets its own trail has found a cycle
    state = [0] * n                 # 0 unseen, 1 on the current trail, 2 known to reach a root
    for start in range(n):
        trail, b = [], start
        while b >= 0 and state[b] == 0:
            state[b] = 1
            trail.append(b)
            b = parent[b]
        if b >= 0 and state[b] == 1:                 # closed a cycle: b .. end of trail
            cycle = trail[trail.index(b):]
            cut = min(i for i in cycle if parent[i] >= i)   # some edge of a cycle must point up or to itself
            parent[cut] = -1
            counts["parent_cycle"] += 1
        for i in trail:
            state[i] = 2
    heads = np.array([b.position for b in bones], np.float32).reshape(n, 3)
    moved = set(np.flatnonzero(_bad_rows(heads)).tolist())
    counts["bad_bone_position"] += len(moved)
    for i in sorted(moved, key=lambda i: _depth(parent, i)):    # parents first: a bad parent is fixed first
        heads[i] = heads[parent[i]] if parent[i] >= 0 else 0.0
    out = []
    for i, b in enumerate(bones):
        changes = {}
        if parent[i] != b.parent:
            changes["parent"] = parent[i]
        if i in moved:
            changes["position"] = heads[i].copy()
        grants = BoneFlag.APPEND_ROTATE | BoneFlag.APPEND_TRANSLATE
        if b.flags & grants and not (0 <= b.append_parent < n and b.append_parent != i):
            counts["grant_self"] += 1
            changes["flags"] = int(b.flags & ~grants)
        if b.ik is not None:
            links = tuple(l for l in b.ik.links if 0 <= l.bone < n and l.bone != b.ik.target)
            counts["ik_bad_link"] += len(b.ik.links) - len(links)
            if not (0 <= b.ik.target < n and b.ik.target != i) or not links:
                counts["ik_no_links"] += 1
                changes["ik"] = None
                changes["flags"] = int(changes.get("flags", b.flags) & ~BoneFlag.IK)
            elif len(links) != len(b.ik.links):
                changes["ik"] = dataclasses.replace(b.ik, links=links)
        out.append(dataclasses.replace(b, **changes) if changes else b)
    return tuple(out)


def _depth(parent: list[int], i: int) -> int:
    d = 0
    while parent[i] >= 0:
        i, d = parent[i], d + 1
    return d


def _vertices(model: Model, bones: tuple, counts: Counter) -> dict:
    bad = (_bad_rows(model.positions) | _bad_rows(model.normals) | _bad_rows(model.uvs)
           | _bad_rows(model.bone_weights, None) | _bad_rows(model.sdef) | _bad_rows(model.additional_uvs)
           | ~np.isfinite(model.edge_scale))
    changes = {}
    if bad.any():
        counts["bad_vertex"] += int(bad.sum())
        idx = np.flatnonzero(bad)
        first = model.bone_indices[idx, 0]
        heads = np.array([b.position for b in bones] or [np.zeros(3)], np.float32)
        pos, nrm, uv = model.positions.copy(), model.normals.copy(), model.uvs.copy()
        pos[idx] = np.where((first >= 0)[:, None], heads[np.maximum(first, 0)], 0.0)
        nrm[idx] = (0.0, 1.0, 0.0)
        uv[idx] = 0.0
        bi, bw, wt = model.bone_indices.copy(), model.bone_weights.copy(), model.weight_types.copy()
        sdef, auv, edge = model.sdef.copy(), model.additional_uvs.copy(), model.edge_scale.copy()
        bi[idx] = -1
        bi[idx, 0] = np.maximum(first, 0) if len(bones) else -1
        bw[idx] = (1.0, 0.0, 0.0, 0.0)
        wt[idx] = WeightType.BDEF1
        sdef[idx] = 0.0
        auv[idx] = 0.0
        edge[idx] = np.where(np.isfinite(edge[idx]), edge[idx], 1.0)
        changes = dict(positions=pos, normals=nrm, uvs=uv, bone_indices=bi, bone_weights=bw, weight_types=wt,
                       sdef=sdef, additional_uvs=auv, edge_scale=edge)
    edge = changes.get("edge_scale", model.edge_scale)
    if (edge < 0).any():
        counts["negative_edge"] += int((edge < 0).sum())
        changes["edge_scale"] = np.maximum(edge, 0).astype(np.float32)
    return changes


def repair(model: Model, counts: Counter | None = None) -> Model:
    """Apply every tolerance of the module docstring to ``model`` (already index-checked by its reader).

    ``counts``: tolerances the reader already applied (e.g. ``extra_base_morph``). Returns ``model`` itself
    when nothing needed repair, else a new Model whose ``repairs`` holds ``{key: count}`` (sorted items).
    """
    counts = Counter(counts or {})
    bones = _bones(model, counts)
    changes = _vertices(model, bones, counts)
    materials = []
    for m in model.materials:
        if m.face_count == 0:
            counts["empty_material"] += 1
        if m.edge_size < 0 or not np.isfinite(m.edge_size):
            counts["negative_edge"] += 1
            m = dataclasses.replace(m, edge_size=0.0)
        materials.append(m)
    f = model.faces
    if len(f):
        counts["degenerate_face"] += int(((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])).sum())
    counts = Counter({k: v for k, v in counts.items() if v})
    if not counts:
        return model
    return dataclasses.replace(model, bones=bones, materials=tuple(materials), repairs=tuple(sorted(counts.items())),
                               **changes)


def warn_repairs(model: Model, stacklevel: int = 3) -> None:
    """One warning for the whole file listing what :func:`repair` did, with counts (nothing when clean)."""
    if model.repairs:
        what = "; ".join(f"{n} {TOLERANCES.get(k, k)}" for k, n in model.repairs)
        warnings.warn(f"{model.path or '<bytes>'}: tolerated odd data: {what}", InputWarning, stacklevel=stacklevel)


def read_repaired(model: Model, counts: Counter | None = None) -> Model:
    """What each reader calls last: :func:`repair`, then :func:`warn_repairs`."""
    model = repair(model, counts)
    warn_repairs(model, stacklevel=4)
    return model
