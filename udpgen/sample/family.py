"""The character family: a seeded generator of varied humanoid MMD characters (PMX 2.0 + PNG textures),
written by the project's own writer so that every stage treats them as users' models.

Each character starts from the sample character's mesh and skeleton (:mod:`udpgen.sample.character`, reused,
not copied) and is varied by a seeded :class:`CharacterSpec`:

* proportions: head-to-body ratio 3 (chibi) .. 7.5 (adult), height 0.85 .. 1.12, build (width) 0.85 .. 1.2,
  applied as one map to vertices and bones alike (bone heads, tails, fixed axes), so the rig stays valid;
* hair: a style of strand cards (none/short, long straight, twin tails, ponytail, side hair), each card a
  chain of bones under 頭 with rigid bodies (mode 0 on the head, mode 1 on the strand) and 6-DOF spring
  joints, laid out as MMD modellers do;
* garments: skirt length 0.6 .. 1.5 or no skirt (shorts: the skirt's faces dropped);
* palettes and procedural textures: hair, eye, cloth, trim colours; skirt patterns plain/stripes/checks/
  gradient.

Deterministic: character ``i`` of seed ``S`` draws from ``numpy.random.default_rng([S, i])`` and the files
are written without timestamps (PNG by :func:`udpgen.sample.character.png_bytes`), so the same seed writes
the same bytes. Layout: ``DIR/{name}/{name}.pmx`` and ``DIR/{name}/tex/*.png``; the PMX is written last
(atomically), so a folder with its PMX is complete and a rerun skips it.
"""
from __future__ import annotations

import colorsys
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udpgen.errors import SettingsError, UdpgenError
from udpgen.io.atomic import write_bytes_atomic
from udpgen.mmd.model import Bone, BoneFlag, Joint, Model, RigidBody
from udpgen.mmd.pmx_writer import write_pmx
from udpgen.sample.character import build_model, pack_weights, png_bytes
from udpgen.sample.mesh import HAIR_AXES, HEAD_CENTER, grid_faces, joint_positions

__all__ = ["CharacterSpec", "HAIR_STYLES", "PATTERNS", "draw_spec", "build_character", "character_name",
           "write_family"]

HAIR_STYLES = ("short", "long", "twintails", "ponytail", "side")
PATTERNS = ("plain", "stripes", "checks", "gradient")
HEAD_RATIO_RANGE = (3.0, 7.5)
_STRAND_BONES = 4                                            # bones per hair card chain


@dataclass(frozen=True)
class CharacterSpec:
    """What one family member looks like; every field drawn by :func:`draw_spec`."""
    name: str
    head_ratio: float          # total height / head height
    height: float              # vertical scale of the body
    build: float               # horizontal (x, z) scale
    hair: str                  # one of HAIR_STYLES
    hair_length: float         # strand length in MMD units
    skirt: float               # skirt length factor, 0 = no skirt (shorts)
    pattern: str               # one of PATTERNS
    hair_rgb: tuple
    eye_rgb: tuple
    cloth_rgb: tuple
    trim_rgb: tuple
    skirt_rgb: tuple


def character_name(seed: int, index: int) -> str:
    return f"family-{seed}-{index:04d}"


def _colour(rng, s=(0.3, 0.9), v=(0.35, 0.95)) -> tuple:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*s), rng.uniform(*v))
    return (int(r * 255), int(g * 255), int(b * 255))


def draw_spec(seed: int, index: int) -> CharacterSpec:
    """The spec of character ``index`` of family ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    hair = HAIR_STYLES[rng.integers(len(HAIR_STYLES))]
    return CharacterSpec(
        name=character_name(seed, index), head_ratio=float(rng.uniform(*HEAD_RATIO_RANGE)),
        height=float(rng.uniform(0.85, 1.12)), build=float(rng.uniform(0.85, 1.2)), hair=hair,
        hair_length=float(rng.uniform(3.0, 9.0)),
        skirt=0.0 if rng.uniform() < 0.25 else float(rng.uniform(0.6, 1.5)),
        pattern=PATTERNS[rng.integers(len(PATTERNS))], hair_rgb=_colour(rng), eye_rgb=_colour(rng),
        cloth_rgb=_colour(rng, v=(0.6, 1.0)), trim_rgb=_colour(rng), skirt_rgb=_colour(rng))


# ---------------------------------------------------------------------------------------------------
# Proportions: one map for vertices and bones
# ---------------------------------------------------------------------------------------------------
_HEAD_BONES = ("頭", "両目", "左目", "右目")


def _head_scale(spec: CharacterSpec, neck_y: float, top_y: float) -> float:
    """Scale k of the head about the neck so that (body below neck + k head) / (k head height) = ratio."""
    head_h = top_y - 16.0                                    # the sample's chin is at y = 16.0
    return neck_y / (spec.head_ratio * head_h - (top_y - neck_y))


class _Shape:
    """p -> diag(build, height, build) (neck + k (p - neck) blended by head weight w)."""

    def __init__(self, spec: CharacterSpec, top_y: float):
        self.neck = joint_positions()["首"]
        self.k = _head_scale(spec, float(self.neck[1]), top_y)
        self.lin = np.array([spec.build, spec.height, spec.build])

    def points(self, p: np.ndarray, w: np.ndarray) -> np.ndarray:
        head = self.neck + self.k * (p - self.neck)
        return ((1 - w)[:, None] * p + w[:, None] * head) * self.lin

    def vectors(self, v: np.ndarray, w: np.ndarray) -> np.ndarray:
        return v * (1 + (self.k - 1) * w)[..., None] * self.lin


def _reshape(model: Model, spec: CharacterSpec) -> tuple[Model, _Shape]:
    head_ids = [model.bone_index(n) for n in _HEAD_BONES]
    w = np.where(np.isin(model.bone_indices, head_ids), model.bone_weights, 0).sum(1)
    shape = _Shape(spec, float(model.positions[:, 1].max()))
    pos = shape.points(model.positions.astype(np.float64), w)
    nor = model.normals / shape.lin                            # normals transform by the inverse transpose
    nor /= np.linalg.norm(nor, axis=1, keepdims=True)
    bones = []
    for b in model.bones:
        bw = np.array([1.0 if b.name in _HEAD_BONES else 0.0])
        kw = {"position": shape.points(b.position[None].astype(np.float64), bw)[0].astype(np.float32)}
        if not b.flags & BoneFlag.TAIL_IS_BONE:
            kw["tail_offset"] = shape.vectors(b.tail_offset[None].astype(np.float64), bw)[0].astype(np.float32)
        if b.flags & BoneFlag.FIXED_AXIS:
            a = b.fixed_axis * shape.lin
            kw["fixed_axis"] = (a / np.linalg.norm(a)).astype(np.float32)
        bones.append(dataclasses.replace(b, **kw))
    return dataclasses.replace(model, positions=pos.astype(np.float32), normals=nor.astype(np.float32),
                               bones=tuple(bones)), shape


def _skirt(model: Model, spec: CharacterSpec) -> Model:
    """Lengthen/shorten the skirt about the waist, or drop its faces (shorts)."""
    mi = [m.name for m in model.materials].index("スカート")
    start = sum(m.face_count for m in model.materials[:mi])
    count = model.materials[mi].face_count
    if spec.skirt == 0.0:
        faces = np.concatenate([model.faces[:start], model.faces[start + count:]])
        # the material goes too (the sample has no material morphs to renumber): an empty one is odd data
        return dataclasses.replace(model, faces=faces, materials=model.materials[:mi] + model.materials[mi + 1:])
    verts = np.unique(model.faces[start:start + count])
    pos = model.positions.copy()
    top = pos[verts, 1].max()
    pos[verts, 1] = top + (pos[verts, 1] - top) * spec.skirt
    # a flared hem: the lower part spreads outwards in proportion to its drop
    drop = (top - pos[verts, 1]) / max(1e-6, float(top - pos[verts, 1].min()))
    pos[verts, 0] *= 1 + 0.15 * drop * (spec.skirt - 0.6)
    pos[verts, 2] *= 1 + 0.15 * drop * (spec.skirt - 0.6)
    return dataclasses.replace(model, positions=pos)


# ---------------------------------------------------------------------------------------------------
# Hair strand cards with bones, rigid bodies and joints
# ---------------------------------------------------------------------------------------------------
def _strand_roots(spec: CharacterSpec) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    """(label, root on the unshaped head (3,), sideways unit (3,), card width) per card."""
    c, a = HEAD_CENTER, HAIR_AXES
    back = lambda x, y: c + np.array([x * a[0], y * a[1], 0.92 * a[2]])   # noqa: E731  (+Z is behind her)
    if spec.hair == "short":
        return []
    if spec.hair == "long":
        return [("後", back(0.0, -0.1), np.array([1.0, 0, 0]), 2.6)]
    if spec.hair == "ponytail":
        return [("後", back(0.0, 0.45), np.array([1.0, 0, 0]), 1.1)]
    if spec.hair == "twintails":
        return [(lr, c + np.array([s * 1.05 * a[0], 0.35 * a[1], 0.3 * a[2]]), np.array([0, 0, 1.0]), 1.0)
                for lr, s in (("左", 1.0), ("右", -1.0))]
    return [(lr, c + np.array([s * 0.9 * a[0], -0.2 * a[1], -0.45 * a[2]]), np.array([0, 0, 1.0]), 0.7)
            for lr, s in (("左", 1.0), ("右", -1.0))]


def _add_hair(model: Model, spec: CharacterSpec, shape: _Shape) -> Model:
    roots = _strand_roots(spec)
    if not roots:
        return model
    bones, rigids, joints = list(model.bones), [], []
    head = model.bone_index("頭")
    hair_mat = [m.name for m in model.materials].index("髪")
    rigids.append(RigidBody("頭", "head", head, 0, 0xFFFE, 0, np.full(3, 1.6 * shape.k, np.float32),
                            bones[head].position + np.float32([0, 1.2 * shape.k * spec.height, 0]),
                            np.zeros(3, np.float32), 1.0, 0.5, 0.5, 0.0, 0.5, 0))
    n0, P, N, U, B, W, F = len(model.positions), [], [], [], [], [], []
    rows = 2 * _STRAND_BONES + 1
    for label, root, side, width in roots:
        one = np.ones(1)
        r = shape.points(root[None], one)[0]
        seg = spec.hair_length * spec.height / _STRAND_BONES
        ids = []
        for j in range(_STRAND_BONES + 1):
            name = f"{label}髪{j + 1}"
            parent = ids[-1] if ids else head
            flags = BoneFlag.ROTATABLE | BoneFlag.VISIBLE | BoneFlag.OPERABLE | BoneFlag.TAIL_IS_BONE
            pos = (r + np.array([0, -seg * j, 0.25 * j])).astype(np.float32)
            ids.append(len(bones))
            bones.append(Bone(name, f"hair_{label}{j + 1}", pos, parent, 0, int(flags), tail_index=-1))
            if j:
                bones[ids[-2]] = dataclasses.replace(bones[ids[-2]], tail_index=ids[-1])
        for j in range(_STRAND_BONES):                       # one capsule per segment, on its upper bone
            a, b = bones[ids[j]].position, bones[ids[j + 1]].position
            mid, ln = (a + b) / 2, float(np.linalg.norm(b - a))
            tilt = math.atan2(float(b[2] - a[2]), float(a[1] - b[1]))
            rigids.append(RigidBody(f"{label}髪{j + 1}", f"hair_{label}{j + 1}", ids[j], 1, 0x0002, 2,
                                    np.float32([0.25 * width, ln, 0]), mid.astype(np.float32),
                                    np.float32([-tilt, 0, 0]), 0.2, 0.9, 0.99, 0.0, 0.5, 1))
            lim = math.radians(25)
            joints.append(Joint(f"{label}髪{j + 1}", f"hair_{label}{j + 1}", 0,
                                0, 0,
                                a.astype(np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32),
                                np.zeros(3, np.float32), np.float32([-lim, -lim / 2, -lim]),
                                np.float32([lim, lim / 2, lim]), np.zeros(3, np.float32),
                                np.float32([5, 5, 5])))
        # the card: rows along the chain x 3 columns across, two-sided hair material
        t = np.linspace(0, 1, rows)
        centre = np.array([bones[ids[0]].position + (bones[ids[-1]].position - bones[ids[0]].position) * s
                           for s in t], np.float64)
        taper = (1 - 0.6 * t)[:, None, None] * np.array([-0.5, 0.0, 0.5])[None, :, None]
        grid = centre[:, None, :] + taper * width * side[None, None, :]
        start = n0 + sum(len(p) for p in P)
        P.append(grid.reshape(-1, 3))
        nrm = np.cross(side, [0, -1.0, 0])
        N.append(np.tile(nrm / np.linalg.norm(nrm), (rows * 3, 1)))
        U.append(np.stack(np.meshgrid(np.linspace(0, 1, 3), t), -1).reshape(-1, 2))
        seg_pos = t * _STRAND_BONES
        lo = np.minimum(seg_pos.astype(int), _STRAND_BONES - 1)
        frac = seg_pos - lo
        bi = np.stack([np.array(ids)[lo], np.array(ids)[lo + 1], -np.ones(rows, int), -np.ones(rows, int)], 1)
        wi = np.stack([1 - frac, frac, np.zeros(rows), np.zeros(rows)], 1)
        B.append(np.repeat(bi, 3, 0)), W.append(np.repeat(wi, 3, 0))
        F.append(grid_faces(rows, 3, start))
    # fix the joint pairs: joint j of a card joins the previous rigid (the head for j = 0) to this one
    ji, k = 0, 1
    for label, *_ in roots:
        prev = 0
        for j in range(_STRAND_BONES):
            joints[ji] = dataclasses.replace(joints[ji], rigid_a=prev, rigid_b=k)
            prev, k, ji = k, k + 1, ji + 1
    types, bids, bws = pack_weights(np.vstack(B), np.vstack(W))
    n = sum(len(p) for p in P)
    # new faces go at the end of the hair material's range (the hair material is the last one)
    assert hair_mat == len(model.materials) - 1
    mats = list(model.materials)
    newf = np.vstack(F).astype(np.int32)
    mats[hair_mat] = dataclasses.replace(mats[hair_mat], face_count=mats[hair_mat].face_count + len(newf))
    cat = lambda a, b: np.concatenate([a, b.astype(a.dtype)])   # noqa: E731
    return dataclasses.replace(
        model, positions=cat(model.positions, np.vstack(P)), normals=cat(model.normals, np.vstack(N)),
        uvs=cat(model.uvs, np.vstack(U)), additional_uvs=np.zeros((n0 + n, 0, 4), np.float32),
        weight_types=cat(model.weight_types, types), bone_indices=cat(model.bone_indices, bids),
        bone_weights=cat(model.bone_weights, bws), sdef=np.zeros((n0 + n, 3, 3), np.float32),
        edge_scale=np.ones(n0 + n, np.float32), faces=cat(model.faces, newf), materials=tuple(mats),
        bones=tuple(bones), rigid_bodies=tuple(rigids), joints=tuple(joints))


# ---------------------------------------------------------------------------------------------------
# Palettes and textures
# ---------------------------------------------------------------------------------------------------
def _recolour(img: np.ndarray, rgb: tuple, mask=None) -> np.ndarray:
    """Keep the texture's luminance pattern, take the hue from ``rgb``."""
    out = img.copy()
    lum = img[..., :3].astype(np.float64).mean(-1, keepdims=True) / 255.0
    lum = lum / max(1e-6, float(lum.mean()))
    col = np.clip(lum * np.asarray(rgb, np.float64), 0, 255).astype(np.uint8)
    m = np.ones(img.shape[:2], bool) if mask is None else mask
    out[m, :3] = col[m]
    return out


def build_textures(spec: CharacterSpec, base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    tex = dict(base)
    tex["tex/hair.png"] = _recolour(base["tex/hair.png"], spec.hair_rgb)
    face = base["tex/face.png"].copy()
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    iris = ((xx - 32) / 17) ** 2 + ((yy - 35) / 21) ** 2 < 1
    pupil = ((xx - 32) / 7) ** 2 + ((yy - 35) / 10) ** 2 < 1
    glint = (xx - 25) ** 2 + (yy - 26) ** 2 < 25
    shade = np.clip((yy - 14) / 42, 0, 1)[..., None]
    eye = (1 - shade) * np.asarray(spec.eye_rgb) * 0.6 + shade * np.asarray(spec.eye_rgb)
    left = face[:, :64]
    sel = iris & ~pupil & ~glint
    left[sel, :3] = eye[sel].astype(np.uint8)
    tex["tex/face.png"] = face
    cloth = base["tex/cloth.png"].copy()
    y2, x2 = np.mgrid[0:128, 0:128] + 0.5
    top = y2 < 64
    cloth[top & (cloth[..., 0] > 200), :3] = spec.cloth_rgb                     # the light body of the top
    cloth[top & (cloth[..., 2] == 110), :3] = spec.trim_rgb                     # collar, cuffs
    skirt = (y2 >= 64) & (y2 < 96)
    base_rgb, trim = np.asarray(spec.skirt_rgb, np.float64), np.asarray(spec.trim_rgb, np.float64)
    pat = {"plain": np.zeros_like(x2, bool), "stripes": (x2 // 8) % 2 == 0,
           "checks": ((x2 // 8) + (y2 // 8)) % 2 == 0, "gradient": None}[spec.pattern]
    if pat is None:
        g = np.clip((y2 - 64) / 32, 0, 1)[..., None]
        col = (1 - g) * base_rgb + g * trim
    else:
        col = np.where(pat[..., None], 0.5 * (base_rgb + trim), base_rgb)
    cloth[skirt, :3] = col[skirt].astype(np.uint8)
    cloth[(y2 > 88) & (y2 < 91), :3] = spec.trim_rgb                            # hem trim
    tex["tex/cloth.png"] = cloth
    return tex


# ---------------------------------------------------------------------------------------------------
# The character and the family on disk
# ---------------------------------------------------------------------------------------------------
def build_character(spec: CharacterSpec) -> tuple[Model, dict[str, np.ndarray]]:
    """The :class:`Model` (path None) of ``spec`` and its textures {relative path: HxWx4 RGBA uint8}."""
    model, base = build_model()
    model = _skirt(model, spec)
    model, shape = _reshape(model, spec)
    model = _add_hair(model, spec, shape)
    model = dataclasses.replace(model, name=spec.name, name_en=spec.name,
                                comment=f"{spec.name}: udpgen の生成キャラクター (CC0)",
                                comment_en=f"{spec.name}: a generated udpgen family character (CC0)")
    return model, build_textures(spec, base)


def _check_args(count: int, seed: int, out: Path) -> None:
    if count < 1:
        raise SettingsError(f"characters: --count must be at least 1, got {count}")
    if seed < 0:
        raise SettingsError(f"characters: --seed must be >= 0, got {seed}")
    if out.exists() and not out.is_dir():
        raise UdpgenError(f"characters: {out} is a file, not a folder")
    if out.is_dir():
        prefix = character_name(seed, 0)[:-4]
        other = sorted(p.name for p in out.iterdir()
                       if not (p.is_dir() and p.name.startswith(prefix) and p.name[len(prefix):].isdigit()))
        if other:
            raise UdpgenError(f"characters: {out} holds other files ({', '.join(other[:3])}"
                              f"{', ...' if len(other) > 3 else ''}); give an empty or a family folder "
                              f"of the same --seed")


def write_family(out_dir: str | os.PathLike, count: int, seed: int = 0, progress=None) -> dict:
    """Write ``count`` characters of family ``seed`` under ``out_dir``; resume: characters whose PMX exists
    are not rewritten. Returns {"written": [...names], "skipped": [...names], "out": str}."""
    out = Path(out_dir)
    _check_args(count, seed, out)
    written, skipped = [], []
    for i in range(count):
        spec = draw_spec(seed, i)
        folder = out / spec.name
        pmx = folder / f"{spec.name}.pmx"
        if pmx.exists():
            skipped.append(spec.name)
        else:
            model, textures = build_character(spec)
            (folder / "tex").mkdir(parents=True, exist_ok=True)
            for rel, rgba in textures.items():
                write_bytes_atomic(folder / rel, png_bytes(rgba))
            write_pmx(model, pmx)                            # last: its presence marks the folder complete
            written.append(spec.name)
        if progress:
            progress(1)
    return {"out": str(out), "written": written, "skipped": skipped}


# ---------------------------------------------------------------------------------------------------
# How different two characters look (the family's variety check, used by its test and bench)
# ---------------------------------------------------------------------------------------------------
def apose_render(renderer, model: Model):
    """(H, W, 4) uint8 RGBA of ``model`` in the canonical A-pose, seen from the front by one fixed camera
    (centre 10 units up, radius 14: the same framing for every character, so size differences show)."""
    from udpgen.render import CameraSampler
    from udpgen.rig import Rig
    from udpgen.rig.canonical import apose_values

    char = renderer.load(model)
    pose = char.pose(apose_values(Rig(model)))
    cam = CameraSampler.front(np.array([0.0, 10.0, 0.0]), 14.0, renderer.width, renderer.height,
                              azimuth=0, elevation=5)
    return renderer.render(pose, cam).rgba


def pairwise_distances(rgbas: list[np.ndarray], bins: int = 8) -> dict[str, np.ndarray]:
    """For N renders (H, W, 4) uint8: "iou" (N, N) silhouette IoU (alpha > 0) and "hist" (N, N) colour
    histogram distance (half the L1 distance of normalised RGB histograms of covered pixels, in [0, 1])."""
    masks = np.stack([r[..., 3] > 0 for r in rgbas]).reshape(len(rgbas), -1).astype(np.float64)
    inter = masks @ masks.T
    area = masks.sum(1)
    iou = inter / np.maximum(area[:, None] + area[None, :] - inter, 1)
    hists = []
    for r in rgbas:
        px = r[r[..., 3] > 0][:, :3].astype(np.int64) * bins // 256
        h = np.bincount((px[:, 0] * bins + px[:, 1]) * bins + px[:, 2], minlength=bins ** 3).astype(np.float64)
        hists.append(h / max(1.0, h.sum()))
    H = np.stack(hists)
    hist = 0.5 * np.abs(H[:, None, :] - H[None, :, :]).sum(-1)
    return {"iou": iou, "hist": hist}
