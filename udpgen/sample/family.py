"""The character family: a seeded generator of varied humanoid MMD characters (PMX 2.0 + PNG textures),
written by the project's own writer so that every stage treats them as users' models.

Each character starts from the sample character's mesh and skeleton (:mod:`udpgen.sample.character`, reused,
not copied) and is varied by a seeded :class:`CharacterSpec`:

* proportions: head-to-body ratio 3 (chibi) .. 7.5 (adult), height 0.85 .. 1.12, build (width) 0.85 .. 1.2,
  applied as one map to vertices and bones alike (bone heads, tails, fixed axes), so the rig stays valid;
* hair: a style of strand cards (none/short, bob, long straight, twin tails, ponytail, side hair), each card
  a chain of bones under 頭 with rigid bodies (mode 0 on the head, mode 1 on the strand) and 6-DOF spring
  joints, laid out as MMD modellers do (:mod:`udpgen.sample.parts`);
* garments: skirt length 0.6 .. 1.5, pleated (35 %: 8-16 pleats) or plain, a dress (25 %: the top in the
  skirt's colour), or no skirt (shorts: the skirt's faces dropped); a skirt hangs on 8 two-segment bone chains
  with box bodies and joints that keep its flare, and collides with kinematic thigh and shin capsules;
  without a skirt, bare legs, shorts or trousers; sleeves short, to the elbow or to the wrist; an open coat (20 %: a body over the top,
  tails to the thighs or knees, long sleeves; :mod:`udpgen.sample.garments`); a cape (30 %): two
  flaring cards under 上半身2 with their own bodies and joints and a material of its own;
* accessories (each 30 %): glasses, a brimmed hat, a ribbon, rigid on the head, one material;
* faces: eye colour, iris size and shape (narrow to round), lash weight, cheek blush; palettes and procedural textures: hair, eye, cloth, trim, cape and
  accessory colours; skirt patterns
  plain/stripes/checks/gradient.

Deterministic: character ``i`` of seed ``S`` draws from ``numpy.random.default_rng([S, i])`` and the files
are written without timestamps (PNG by :func:`udpgen.sample.character.png_bytes`), so the same seed writes
the same bytes. Layout: ``DIR/{name}/{name}.pmx`` and ``DIR/{name}/tex/*.png``; the PMX is written last
(atomically), so a folder with its PMX is complete and a rerun skips it.
"""
from __future__ import annotations

import colorsys
import dataclasses
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udpgen.errors import SettingsError, UdpgenError
from udpgen.io.atomic import write_bytes_atomic
from udpgen.mmd.model import BoneFlag, Model
from udpgen.mmd.pmx_writer import write_pmx
from udpgen.sample import garments
from udpgen.sample.character import build_model, png_bytes
from udpgen.sample.garments import BOTTOMS, SLEEVES
from udpgen.sample.mesh import HAIR_AXES, HEAD_CENTER, joint_positions, unit
from udpgen.sample.parts import CAPE_GROUP, CAPE_MASK, CARD_BONES, Card, Mesh, add_cards, add_skirt_chains, append_mesh, glasses, hat, part_material, ribbon

__all__ = ["CharacterSpec", "HAIR_STYLES", "ACCESSORIES", "PATTERNS", "CARD_BONES", "draw_spec", "build_character", "character_name",
           "write_family"]

HAIR_STYLES = ("short", "bob", "long", "twintails", "ponytail", "side")
ACCESSORIES = ("glasses", "hat", "ribbon")
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
    cape: float = 0.0          # cape length factor, 0 = no cape
    accessories: tuple = ()    # a subset of ACCESSORIES
    cape_rgb: tuple = (120, 30, 40)
    accessory_rgb: tuple = ((40, 40, 50), (200, 170, 120), (220, 60, 90))   # per ACCESSORIES entry
    pleats: int = 0            # skirt pleats around (0 = a plain flared skirt)
    dress: bool = False        # the top takes the skirt's colour: one dress
    iris: float = 1.0          # iris and pupil size factor (eye texture)
    sleeves: str = "short"     # one of garments.SLEEVES
    bottom: str = "skirt"      # one of garments.BOTTOMS: 'skirt' when skirt > 0, else bare legs, shorts or trousers
    coat: float = 0.0          # coat tail length in MMD units, 0 = no coat
    coat_rgb: tuple = (70, 60, 90)
    eye_shape: float = 1.0     # iris height / width factor: < 1 narrow, > 1 round
    lash: int = 9              # upper lash thickness in face-texture texels (of 64)
    blush: bool = False        # cheek blush under the eyes


def character_name(seed: int, index: int) -> str:
    return f"family-{seed}-{index:04d}"


def _colour(rng, s=(0.3, 0.9), v=(0.35, 0.95)) -> tuple:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*s), rng.uniform(*v))
    return (int(r * 255), int(g * 255), int(b * 255))


def draw_spec(seed: int, index: int) -> CharacterSpec:
    """The spec of character ``index`` of family ``seed`` (deterministic)."""
    rng = np.random.default_rng([seed, index])
    hair = HAIR_STYLES[rng.integers(len(HAIR_STYLES))]
    spec = _draw_fields(rng, seed, index, hair)
    # a skirt is worn as the skirt; without one, the legs are bare or in shorts or trousers
    return spec if spec.skirt == 0 else dataclasses.replace(spec, bottom="skirt")


def _draw_fields(rng, seed: int, index: int, hair: str) -> CharacterSpec:
    return CharacterSpec(
        name=character_name(seed, index), head_ratio=float(rng.uniform(*HEAD_RATIO_RANGE)),
        height=float(rng.uniform(0.85, 1.12)), build=float(rng.uniform(0.85, 1.2)), hair=hair,
        hair_length=float(rng.uniform(3.0, 9.0)),
        skirt=0.0 if rng.uniform() < 0.25 else float(rng.uniform(0.6, 1.5)),
        pattern=PATTERNS[rng.integers(len(PATTERNS))], hair_rgb=_colour(rng), eye_rgb=_colour(rng),
        cloth_rgb=_colour(rng, v=(0.6, 1.0)), trim_rgb=_colour(rng), skirt_rgb=_colour(rng),
        cape=float(rng.uniform(0.6, 1.3)) if rng.uniform() < 0.3 else 0.0,
        accessories=tuple(a for a in ACCESSORIES if rng.uniform() < 0.3), cape_rgb=_colour(rng),
        accessory_rgb=(_colour(rng, v=(0.1, 0.4)), _colour(rng), _colour(rng)),
        pleats=int(rng.integers(8, 17)) if rng.uniform() < 0.35 else 0, dress=bool(rng.uniform() < 0.25),
        iris=float(rng.uniform(0.8, 1.15)), **_draw_garments(rng))


def _draw_garments(rng) -> dict:
    """The fields added after the first family (drawn last, so the earlier fields of a seed stay as they
    were): sleeves, what is worn when there is no skirt, a coat; the eyes' shape, lashes, blush."""
    return {"sleeves": SLEEVES[int(rng.choice(3, p=[0.45, 0.25, 0.3]))],
            "bottom": BOTTOMS[1 + int(rng.choice(3, p=[0.3, 0.3, 0.4]))],
            "coat": float(rng.uniform(2.5, 5.0)) if rng.uniform() < 0.2 else 0.0, "coat_rgb": _colour(rng),
            "eye_shape": float(rng.uniform(0.78, 1.2)), "lash": int(rng.integers(5, 14)),
            "blush": bool(rng.uniform() < 0.4)}


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
    if spec.pleats:     # pleats: the radius ripples around the body, more towards the hem
        phi = np.arctan2(pos[verts, 0], pos[verts, 2])
        k = 1 + 0.08 * drop * np.cos(spec.pleats * phi)
        pos[verts, 0] *= k
        pos[verts, 2] *= k
    return dataclasses.replace(model, positions=pos)


# ---------------------------------------------------------------------------------------------------
# Hair strand cards with bones, rigid bodies and joints
# ---------------------------------------------------------------------------------------------------
def _hair_cards(spec: CharacterSpec) -> list[Card]:
    """The strand cards of ``spec``'s hair style (unshaped head frame; +Z is behind her)."""
    c, a = HEAD_CENTER, HAIR_AXES
    back = lambda x, y: c + np.array([x * a[0], y * a[1], 0.92 * a[2]])   # noqa: E731
    L, X, Z = spec.hair_length, np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    if spec.hair == "short":
        return []
    if spec.hair == "long":
        return [Card("後", back(0.0, -0.1), X, 2.6, L)]
    if spec.hair == "ponytail":
        return [Card("後", back(0.0, 0.45), X, 1.1, L)]
    if spec.hair == "twintails":
        return [Card(lr, c + np.array([s * 1.05 * a[0], 0.35 * a[1], 0.3 * a[2]]), Z, 1.0, L)
                for lr, s in (("左", 1.0), ("右", -1.0))]
    if spec.hair == "bob":             # a ring of short cards round the back and sides, to the jaw
        out = []
        for k, phi in enumerate(np.linspace(-0.6 * np.pi, 0.6 * np.pi, 5)):
            d = np.array([np.sin(phi), 0.0, np.cos(phi)])
            root = c + np.array([0, -0.15 * a[1], 0]) + 0.95 * a * d
            out.append(Card("ボブ" + "ABCDE"[k], root, unit(np.cross([0, 1.0, 0], d)), 1.4, 1.6, back=0.1,
                            limit_deg=15.0))
        return out
    return [Card(lr, c + np.array([s * 0.9 * a[0], -0.2 * a[1], -0.45 * a[2]]), Z, 0.7, L)
            for lr, s in (("左", 1.0), ("右", -1.0))]


def _add_hair(model: Model, spec: CharacterSpec, shape: _Shape) -> Model:
    head = model.bones[model.bone_index("頭")].position
    hair_mat = [m.name for m in model.materials].index("髪")
    # the strands collide with nothing: MMD lets jointed bodies collide (only the masks filter), and a
    # strand's segments overlap where they join, so hair colliding with hair pushed each strand out stiff
    return add_cards(model, _hair_cards(spec), "頭", "髪", "hair", shape, 1.0,
                     ("頭", "head", head + np.float32([0, 1.2, 0]), 1.6), ((0, 0xFFFE), (1, 0x0000)), hair_mat)


def _add_cape(model: Model, spec: CharacterSpec, shape: _Shape) -> Model:
    """A cape from the shoulders down the back: two wide cards under 上半身2 (group 2, colliding with
    everything but itself, the head it starts under and the skirt it hangs over: bodies that overlap at rest
    would push each other apart the moment physics starts), in its own material."""
    if not spec.cape:
        return model
    upper = joint_positions()["上半身2"]
    cards = [Card(lr, np.array([s * 0.8, 14.9, 1.1]), np.array([1.0, 0, 0]), 1.7, spec.cape * 8.0, back=0.35,
                  limit_deg=30.0, tip=1.6) for lr, s in (("左", 1.0), ("右", -1.0))]
    mat = part_material("マント", "cape", model.textures.index("tex/cape.png"))
    return add_cards(model, cards, "上半身2", "マント", "cape", shape, 0.0, ("上半身", "upper body", upper, 1.8),
                     ((CAPE_GROUP, CAPE_MASK), (CAPE_GROUP, CAPE_MASK)), mat)


def _add_accessories(model: Model, spec: CharacterSpec, shape: _Shape) -> Model:
    if not spec.accessories:
        return model
    uv = {k: ((i + 0.5) / len(ACCESSORIES), 0.5) for i, k in enumerate(ACCESSORIES)}   # one atlas column each
    rng = np.random.default_rng(zlib.crc32(spec.name.encode()))     # stable across processes
    meshes = []
    for k in spec.accessories:
        if k == "glasses":
            meshes.append(glasses(model, shape, uv[k]))
        elif k == "hat":
            meshes.append(hat(model, shape, uv[k], rng))
        elif k == "ribbon":
            meshes.append(ribbon(model, shape, uv[k], 1.0 if rng.uniform() < 0.5 else -1.0))
    mat = part_material("小物", "accessories", model.textures.index("tex/accessory.png"))
    return append_mesh(model, Mesh.concat(meshes), mat)


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
    k, e = spec.iris, spec.eye_shape
    iris = ((xx - 32) / (17 * k)) ** 2 + ((yy - 35) / (21 * k * e)) ** 2 < 1
    pupil = ((xx - 32) / (7 * k)) ** 2 + ((yy - 35) / (10 * k * e)) ** 2 < 1
    glint = (xx - 25) ** 2 + (yy - 26) ** 2 < 25
    shade = np.clip((yy - 14) / 42, 0, 1)[..., None]
    eye = (1 - shade) * np.asarray(spec.eye_rgb) * 0.6 + shade * np.asarray(spec.eye_rgb)
    left = face[:, :64]
    left[(((xx - 32) / 17) ** 2 + ((yy - 35) / 21) ** 2 < 1) | (yy < 9), :3] = 255   # clear the sample's iris, lash
    sel = iris & ~pupil & ~glint
    left[sel, :3] = eye[sel].astype(np.uint8)
    left[pupil & ~glint, :3] = (np.asarray(spec.eye_rgb) * 0.25).astype(np.uint8)
    left[yy < spec.lash, :3] = (35, 25, 30)                   # the upper lash, thin to heavy
    if spec.blush:                                            # cheeks: a soft pink band below the eye
        band = (yy > 58) & (np.abs(xx - 32) < 24)
        left[band, :3] = (0.6 * left[band, :3] + 0.4 * np.array([240, 130, 150])).astype(np.uint8)
    tex["tex/face.png"] = face
    cloth = base["tex/cloth.png"].copy()
    y2, x2 = np.mgrid[0:128, 0:128] + 0.5
    top = y2 < 64
    body = spec.skirt_rgb if spec.dress and spec.skirt else spec.cloth_rgb
    cloth[top & (cloth[..., 0] > 200), :3] = body                               # the light body of the top
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
    cape = np.empty((32, 32, 4), np.uint8)
    cape[...] = (*spec.cape_rgb, 255)
    cape[:3, :, :3] = spec.trim_rgb                                             # a trimmed collar edge
    tex["tex/cape.png"] = cape
    acc = np.empty((4, 4 * len(ACCESSORIES), 4), np.uint8)                      # one 4-px column per accessory
    for i, rgb in enumerate(spec.accessory_rgb):
        acc[:, 4 * i:4 * i + 4] = (*rgb, 255)
    tex["tex/accessory.png"] = acc
    coat = np.empty((32, 32, 4), np.uint8)
    coat[...] = (*spec.coat_rgb, 255)
    coat[29:, :, :3] = spec.trim_rgb                                            # hem and cuffs
    coat[:, 15:17, :3] = np.asarray(spec.coat_rgb) * 0.7                        # a seam down the back
    tex["tex/coat.png"] = coat
    return tex


# ---------------------------------------------------------------------------------------------------
# The character and the family on disk
# ---------------------------------------------------------------------------------------------------
def build_character(spec: CharacterSpec) -> tuple[Model, dict[str, np.ndarray]]:
    """The :class:`Model` (path None) of ``spec`` and its textures {relative path: HxWx4 RGBA uint8}."""
    model, base = build_model()
    model = dataclasses.replace(model, textures=model.textures + ("tex/cape.png", "tex/accessory.png", "tex/coat.png"))
    model = _skirt(model, spec)
    model, shape = _reshape(model, spec)
    model = _add_hair(model, spec, shape)
    model = add_skirt_chains(model)
    model = garments.sleeves(model, shape, spec.sleeves)
    if spec.bottom in ("shorts", "trousers"):
        model = garments.trousers(model, shape, long=spec.bottom == "trousers")
    if spec.coat:
        model = garments.coat(model, shape, spec.coat)
    model = _add_cape(model, spec, shape)
    model = _add_accessories(model, spec, shape)
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
