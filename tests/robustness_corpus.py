"""A generated zoo of odd, broken and non-character MMD files, written with the project's own writers.

Every oddity that :mod:`udpgen.mmd.repair` tolerates, every texture spelling that
:func:`udpgen.mmd.model.resolve_relative` resolves, and the files a real zoo also holds (skeletons without a
mesh, accessories (PMX and PMD) and stages without humanoid bones, English-only bone names, 1-byte indices, UTF-8 PMX,
truncated and empty files, camera- and morph-only motions). ``write_corpus(folder)`` returns what each
file is expected to give, so tests (and bench/doctor.py) can check the whole pipeline against it.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from udpgen.mmd import load
from udpgen.mmd.model import IK, Bone, BoneFlag, CameraKeys, Material, Model, MorphKeys, Motion
from udpgen.mmd.pmx_writer import write_pmx
from udpgen.mmd.vmd import write_vmd

from mmd_fixtures import skeleton_only
from pmd_builder import build, full_spec
from paths import SAMPLE

F = np.float32


@dataclasses.dataclass(frozen=True)
class Entry:
    """What a corpus file should give. ``kind``: 'model' | 'motion'. ``usable``: a humanoid that renders (a
    motion: one with bone tracks); ``readable``: its reader accepts it; ``repairs``: tolerance keys its
    reader must report; ``error``: a fragment of the one-line refusal."""
    kind: str
    usable: bool = True
    readable: bool = True
    repairs: tuple[str, ...] = ()
    error: str = ""


def _sample() -> Model:
    return load(SAMPLE / "sample.pmx")


def _bone(model: Model, name: str) -> int:
    i = model.bone_index(name)
    assert i >= 0, name
    return i


def _with_bones(model: Model, changes: dict[int, dict]) -> Model:
    bones = list(model.bones)
    for i, kw in changes.items():
        bones[i] = dataclasses.replace(bones[i], **kw)
    return dataclasses.replace(model, bones=tuple(bones))


def _box(n_bones_named=("全ての親",), size: float = 1.0, materials: int = 1) -> Model:
    """A cube (8 vertices, 12 triangles) on one root bone: an accessory or a stage prop, not a character."""
    v = np.array([[x, y, z] for x in (-1, 1) for y in (0, 2) for z in (-1, 1)], F) * size
    q = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([t for a, b, c, d in q for t in ((a, b, c), (a, c, d))], np.int32)
    per = [len(faces) // materials] * materials
    per[-1] += len(faces) - sum(per)
    n = len(v)
    return Model(name="box", name_en="box", positions=v, normals=v / np.linalg.norm(v, axis=1, keepdims=True),
                 uvs=np.zeros((n, 2), F), additional_uvs=np.zeros((n, 0, 4), F), weight_types=np.zeros(n, np.uint8),
                 bone_indices=np.tile(np.array([0, -1, -1, -1], np.int32), (n, 1)),
                 bone_weights=np.tile(np.array([1, 0, 0, 0], F), (n, 1)), sdef=np.zeros((n, 3, 3), F),
                 edge_scale=np.ones(n, F), faces=faces,
                 materials=tuple(Material(name=f"mat{i}", face_count=c) for i, c in enumerate(per)),
                 bones=tuple(Bone(name=b) for b in n_bones_named))


def _copy_textures(folder: Path) -> None:
    shutil.copytree(SAMPLE / "tex", folder / "tex", dirs_exist_ok=True)


def _oddities(m: Model) -> dict[str, tuple[Model, tuple[str, ...]]]:
    """One sample-derived model per tolerance: name -> (model, expected repair keys)."""
    head, neck, arm = _bone(m, "頭"), _bone(m, "首"), _bone(m, "左腕")
    out = {}
    grants = int(BoneFlag.ROTATABLE | BoneFlag.VISIBLE | BoneFlag.APPEND_ROTATE | BoneFlag.APPEND_TRANSLATE)
    out["grant_self"] = (_with_bones(m, {head: dict(flags=grants, append_parent=head, append_ratio=1.0),
                                         neck: dict(flags=grants, append_parent=-1, append_ratio=0.5)}),
                         ("grant_self",))
    ik = int(m.bones[head].flags | BoneFlag.IK)
    out["ik_zero_links"] = (_with_bones(m, {head: dict(flags=ik, ik=IK(target=neck, loop_count=10, limit_angle=1.0))}),
                            ("ik_no_links",))
    # a cycle: the neck's parent becomes the head (its own child)
    out["cyclic_parents"] = (_with_bones(m, {neck: dict(parent=head)}), ("parent_cycle",))
    pos = m.positions.copy()
    pos[0] = np.nan
    pos[1] = (1e30, 0, 0)
    nrm = m.normals.copy()
    nrm[2] = np.inf
    out["nan_vertices"] = (dataclasses.replace(m, positions=pos, normals=nrm), ("bad_vertex",))
    bones = _with_bones(m, {arm: dict(position=np.array([np.nan, 0, 0], F))})
    out["nan_bone"] = (bones, ("bad_bone_position",))
    edge = m.edge_scale.copy()
    edge[:10] = -1.0
    mats = list(m.materials)
    mats[0] = dataclasses.replace(mats[0], edge_size=-2.0)
    out["negative_edges"] = (dataclasses.replace(m, edge_scale=edge, materials=tuple(mats)), ("negative_edge",))
    out["empty_material"] = (dataclasses.replace(m, materials=m.materials + (Material(name="空", face_count=0),)),
                             ("empty_material",))
    faces = m.faces.copy()
    faces[:5, 1] = faces[:5, 0]
    out["degenerate_faces"] = (dataclasses.replace(m, faces=faces), ("degenerate_face",))
    english = tuple(dataclasses.replace(b, name=b.name_en or b.name) for b in m.bones)
    out["english_bones"] = (dataclasses.replace(m, bones=english), ("english_bone_name",))
    return out


def _texture_zoo(folder: Path, m: Model) -> Model:
    """The sample with its textures under Windows spellings, in every format MMD reads."""
    d = folder / "texzoo"
    (d / "Tex").mkdir(parents=True, exist_ok=True)
    src = SAMPLE / "tex"
    rgb = lambda name: Image.open(src / name).convert("RGB")          # noqa: E731
    rgb("skin.png").save(d / "Tex" / "Skin.bmp")
    Image.open(src / "face.png").convert("RGBA").save(d / "Tex" / "face.tga")
    rgb("cloth.png").save(d / "Tex" / "cloth.jpg")
    Image.open(src / "hair.png").convert("RGBA").save(d / "Tex" / "hair.dds")
    Image.new("RGB", (8, 8), (200, 200, 255)).save(d / "Tex" / "light.bmp")
    (d / "Tex" / "light.bmp").rename(d / "Tex" / "light.spa")         # a sphere map is a BMP by another name
    textures = ("TEX\\SKIN.BMP", ".\\tex\\Face.TGA", "C:\\Users\\author\\Desktop\\model\\Tex\\cloth.jpg",
                "Tex\\hair.dds", "tex\\light.spa", "toon03.bmp", "Tex\\missing.png")
    mats = []
    for i, mat in enumerate(m.materials):
        kw = {}
        if i == 0:
            kw = dict(sphere_index=4, sphere_mode=2, toon_shared=False, toon_index=5)   # shared toon by name
        if i == len(m.materials) - 1:
            kw = dict(sphere_index=6, sphere_mode=1)                                    # one missing file
        mats.append(dataclasses.replace(mat, **kw))
    return dataclasses.replace(m, textures=textures, materials=tuple(mats))


def write_corpus(folder: str | Path) -> dict[str, Entry]:
    """Write the zoo into ``folder`` (models at the top, motions in ``motions/``); returns {relative path: Entry}."""
    folder = Path(folder)
    (folder / "motions").mkdir(parents=True, exist_ok=True)
    _copy_textures(folder)
    m = _sample()
    out: dict[str, Entry] = {}
    for name, (model, keys) in _oddities(m).items():
        write_pmx(model, folder / f"{name}.pmx")
        out[f"{name}.pmx"] = Entry("model", repairs=keys)
    write_pmx(m, folder / "utf8.pmx", encoding="utf-8")
    out["utf8.pmx"] = Entry("model")
    write_pmx(_texture_zoo(folder, m), folder / "texzoo" / "texzoo.pmx")
    out["texzoo/texzoo.pmx"] = Entry("model")
    write_pmx(skeleton_only(m), folder / "skeleton.pmx")
    out["skeleton.pmx"] = Entry("model", False, error="no vertices")
    write_pmx(_box(), folder / "accessory.pmx")                              # 1-byte indices everywhere
    out["accessory.pmx"] = Entry("model", False, error="humanoid")
    write_pmx(_box(("全ての親", "床", "壁"), size=200.0, materials=3), folder / "stage.pmx", index_size=4)
    out["stage.pmx"] = Entry("model", False, error="humanoid")
    pmd = full_spec()                 # a PMD accessory whose skin list holds a second base morph
    pmd["morphs"].append(("base2", 0, [(1, (0, 0, 1))]))
    pmd["english"]["morphs"].append("base2")
    (folder / "accessory_extra_base.pmd").write_bytes(build(pmd))
    out["accessory_extra_base.pmd"] = Entry("model", False, repairs=("extra_base_morph",), error="humanoid")
    data = (SAMPLE / "sample.pmx").read_bytes()
    (folder / "truncated.pmx").write_bytes(data[: len(data) // 2])
    out["truncated.pmx"] = Entry("model", False, False, error="truncated.pmx")
    (folder / "empty.pmd").write_bytes(b"")
    out["empty.pmd"] = Entry("model", False, False, error="empty")
    (folder / "garbage.pmx").write_bytes(np.random.default_rng(0).bytes(4096))
    out["garbage.pmx"] = Entry("model", False, False, error="garbage.pmx")

    shutil.copy(SAMPLE / "wave.vmd", folder / "motions" / "wave.vmd")
    out["motions/wave.vmd"] = Entry("motion")
    wave = (SAMPLE / "wave.vmd").read_bytes()
    (folder / "motions" / "broken.vmd").write_bytes(wave[: len(wave) // 3])
    out["motions/broken.vmd"] = Entry("motion", False, False, error="broken.vmd")
    cam = CameraKeys(frame=np.array([0, 30], np.uint32), distance=np.array([-45, -30], F),
                     target=np.zeros((2, 3), F), rotation=np.zeros((2, 3), F),
                     interpolation=np.full((2, 24), 20, np.uint8), fov=np.array([30, 30], np.uint32),
                     orthographic=np.zeros(2, bool))
    write_vmd(Motion(cameras=cam), folder / "motions" / "camera_only.vmd")
    out["motions/camera_only.vmd"] = Entry("motion", False)
    morphs = MorphKeys(names=("まばたき".encode("cp932"),), name_index=np.zeros(2, np.int32),
                       frame=np.array([0, 10], np.uint32), weight=np.array([0, 1], F))
    write_vmd(Motion(morphs=morphs), folder / "motions" / "morph_only.vmd")
    out["motions/morph_only.vmd"] = Entry("motion", False)
    return out
