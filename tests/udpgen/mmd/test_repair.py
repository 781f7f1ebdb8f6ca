"""Tolerances of the readers (udpgen.mmd.repair) and MMD's texture lookup, on files the project's writer makes."""
import os
import warnings

import numpy as np
import pytest

from udpgen.mmd import load
from udpgen.mmd.model import BoneFlag, resolve_relative, shared_toon_index
from udpgen.mmd.repair import TOLERANCES, _standard_name, repair
from udpgen.rig.skeleton import Skeleton

from robustness_corpus import write_corpus
from paths import SAMPLE


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return root, write_corpus(root)


def _read(path):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        model = load(path)
    return model, [str(w.message) for w in rec]


def test_every_tolerance_is_reported_once_per_file_with_its_count(corpus):
    root, entries = corpus
    seen = set()
    for name, e in entries.items():
        if e.kind != "model" or not e.readable:
            continue
        model, messages = _read(root / name)
        keys = tuple(k for k, _ in model.repairs)
        assert keys == e.repairs, name
        seen.update(keys)
        if keys:
            assert len(messages) == 1 and str(root / name) in messages[0], (name, messages)
            for k, n in model.repairs:
                assert f"{n} {TOLERANCES[k]}" in messages[0]
        else:
            assert messages == [], (name, messages)
    assert seen == set(TOLERANCES) - {"ik_bad_link"}    # covered below


def test_clean_real_models_need_no_repair():
    for path in [SAMPLE / "sample.pmx"]:
        model, messages = _read(path)
        assert model.repairs == () and messages == []


def test_repairs_give_what_the_docs_promise(corpus):
    root, _ = corpus
    sample = load(SAMPLE / "sample.pmx")
    head, neck = sample.bone_index("頭"), sample.bone_index("首")

    m, _ = _read(root / "grant_self.pmx")
    grants = BoneFlag.APPEND_ROTATE | BoneFlag.APPEND_TRANSLATE
    assert not m.bones[head].flags & grants and not m.bones[neck].flags & grants

    m, _ = _read(root / "ik_zero_links.pmx")
    assert m.bones[head].ik is None and not m.bones[head].flags & BoneFlag.IK

    m, _ = _read(root / "cyclic_parents.pmx")
    assert m.bones[neck].parent == -1 and m.bones[head].parent == neck       # cut at the upward edge
    world = Skeleton(m).pose().world                                          # used to raise ModelError
    assert np.isfinite(world).all()

    m, _ = _read(root / "nan_vertices.pmx")
    for arr in (m.positions, m.normals, m.uvs, m.bone_weights):
        assert np.isfinite(arr).all()
    assert np.abs(m.positions).max() < 1e5
    first = m.bone_indices[0, 0]
    assert np.allclose(m.positions[0], m.bones[first].position)               # the vertex sits on its bone
    assert np.array_equal(m.positions[3:], sample.positions[3:])              # the others are untouched

    m, _ = _read(root / "nan_bone.pmx")
    arm = sample.bone_index("左腕")
    assert np.allclose(m.bones[arm].position, m.bones[m.bones[arm].parent].position)

    m, _ = _read(root / "negative_edges.pmx")
    assert (m.edge_scale >= 0).all() and m.materials[0].edge_size == 0

    m, _ = _read(root / "english_bones.pmx")
    assert m.bone_index("左腕") >= 0 and m.bones[m.bone_index("左腕")].name_en == "arm_L"


def test_ik_links_naming_no_bone_or_the_target_are_dropped():
    import dataclasses

    from udpgen.mmd.model import IK, IKLink

    m = load(SAMPLE / "sample.pmx")
    head, neck, upper = m.bone_index("頭"), m.bone_index("首"), m.bone_index("上半身")
    ik = IK(target=head, loop_count=5, limit_angle=1.0, links=(IKLink(-1), IKLink(head), IKLink(neck)))
    bones = list(m.bones)
    bones[upper] = dataclasses.replace(bones[upper], flags=int(bones[upper].flags | BoneFlag.IK), ik=ik)
    out = repair(dataclasses.replace(m, bones=tuple(bones)))
    assert dict(out.repairs) == {"ik_bad_link": 2}
    assert [l.bone for l in out.bones[upper].ik.links] == [neck]


@pytest.mark.parametrize("english, japanese", [
    ("arm_L", "左腕"), ("Left Arm", "左腕"), ("LeftUpperArm", "左腕"), ("elbow.R", "右ひじ"),
    ("center", "センター"), ("upper body", "上半身"), ("leg IK_L", "左足ＩＫ"), ("RightFoot", "右足首"),
    ("wrist", None), ("hair_L", None), ("leg_L_D", None), ("", None)])
def test_english_standard_names(english, japanese):
    assert _standard_name(english) == japanese


def test_texture_lookup_as_mmd_on_windows(corpus):
    root, _ = corpus
    m = load(root / "texzoo" / "texzoo.pmx")
    found = [m.resolve_texture(i) for i in range(len(m.textures))]
    tex = root / "texzoo" / "Tex"
    assert found == [str(tex / "Skin.bmp"), str(tex / "face.tga"), str(tex / "cloth.jpg"), str(tex / "hair.dds"),
                     str(tex / "light.spa"), None, None]
    assert shared_toon_index(m.textures[5]) == 2 and shared_toon_index("Tex\\TOON10.BMP") == 9
    assert shared_toon_index("toon11.bmp") is None and shared_toon_index("mytoon01.bmp") is None
    from udpgen.render.texture import load_rgba
    for path in found[:5]:
        rgba, _ = load_rgba(path, 1024)
        assert rgba.ndim == 3 and rgba.shape[2] == 4 and rgba.dtype == np.uint8


def test_names_garbled_by_a_cp932_zip_still_match(tmp_path):
    # what `unzip` on Linux makes of a cp932 name: the raw bytes (or their cp437 reading) as the file name
    raw = "テクスチャ".encode("cp932")
    os.mkdir(os.fsencode(tmp_path) + b"/" + raw)
    (tmp_path / "肌.png").write_bytes(b"x")
    garbled = "肌2.png".encode("cp932").decode("cp437")
    (tmp_path / os.fsdecode(raw) / garbled).write_bytes(b"x")
    assert resolve_relative(str(tmp_path), "テクスチャ\\肌2.png") == str(tmp_path / os.fsdecode(raw) / garbled)
    assert resolve_relative(str(tmp_path), "肌.PNG") == str(tmp_path / "肌.png")
    assert resolve_relative(str(tmp_path), "D:\\mmd\\models\\肌.png") == str(tmp_path / "肌.png")
    assert resolve_relative(str(tmp_path), "..\\肌.png") is None
