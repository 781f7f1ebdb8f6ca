"""VPD reader/writer: MMD's layout, round trips, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from udpgen.errors import FormatError
from udpgen.mmd.model import Pose
from udpgen.mmd.vpd import HEADER, parse_vpd, read_vpd, vpd_bytes, vpd_text, write_vpd

# As MMD saves a pose (CRLF, cp932, MMD's comments): the centre moved, the right arm turned 30 degrees
# about Z, and a morph block as newer MMD / MikuMikuMoving write them.
MMD_SAMPLE = "\r\n".join([
    "Vocaloid Pose Data file",
    "",
    "ジェネ.osm;\t\t// 親ファイル名",
    "2;\t\t\t\t// 総ポーズボーン数",
    "",
    "Bone0{センター",
    "  0.000000,1.000000,-2.500000;\t\t\t\t// trans x,y,z",
    "  0.000000,0.000000,0.000000,1.000000;\t\t// Quaternion x,y,z,w",
    "}",
    "",
    "Bone1{右腕",
    "  0.000000,0.000000,0.000000;\t\t\t\t// trans x,y,z",
    "  0.000000,0.000000,0.258819,0.965926;\t\t// Quatanion x,y,z,w",
    "}",
    "",
    "Morph0{まばたき",
    "  0.750000;\t\t\t\t// weight",
    "}",
    "",
]).encode("cp932")


def make_pose() -> Pose:
    rng = np.random.default_rng(0)
    bones = []
    for name in ("センター", "上半身", "左腕捩れ補助用骨", "右ひじ"):
        q = rng.normal(size=4)
        bones.append((name, rng.normal(size=3).astype(np.float32), (q / np.linalg.norm(q)).astype(np.float32)))
    return Pose(model_name="gene.osm", bones=tuple(bones), morphs=(("まばたき", 0.5), ("あ", 1.0)))


def assert_pose_close(a: Pose, b: Pose, atol: float = 2e-6) -> None:
    assert a.model_name == b.model_name
    assert [n for n, _, _ in a.bones] == [n for n, _, _ in b.bones]
    for (_, ta, qa), (_, tb, qb) in zip(a.bones, b.bones):
        assert ta.dtype == np.float32 and qa.dtype == np.float32 and ta.shape == (3,) and qa.shape == (4,)
        assert np.allclose(ta, tb, atol=atol) and np.allclose(qa, qb, atol=atol)
    assert [n for n, _ in a.morphs] == [n for n, _ in b.morphs]
    assert np.allclose([w for _, w in a.morphs], [w for _, w in b.morphs], atol=atol)


def bad_vpd(*lines: str) -> bytes:
    return "\r\n".join(lines).encode("cp932")


def expect_error(data: bytes, field: str, line: int) -> FormatError:
    with pytest.raises(FormatError) as e:
        parse_vpd(data, "bad.vpd")
    err = e.value
    assert (err.path, err.offset, err.field) == ("bad.vpd", None, field), str(err)
    assert f"line {line}:" in err.reason, err.reason
    return err


# --- reading ---------------------------------------------------------------------------------------

def test_mmd_sample():
    p = parse_vpd(MMD_SAMPLE, "pose.vpd")
    assert (p.path, p.model_name) == ("pose.vpd", "ジェネ.osm")
    assert [b[0] for b in p.bones] == ["センター", "右腕"]
    assert p.bones[0][1].tolist() == [0, 1, -2.5] and p.bones[0][2].tolist() == [0, 0, 0, 1]
    angle = 2 * np.degrees(np.arctan2(p.bones[1][2][2], p.bones[1][2][3]))
    assert abs(angle - 30) < 1e-3
    assert np.isclose(np.linalg.norm(p.bones[1][2]), 1, atol=1e-6)     # renormalised from 6 decimals
    assert p.morphs == (("まばたき", 0.75),)


def test_layout_variants_are_accepted():
    text = "\n".join([                                          # LF only, extra comments and spacing
        "Vocaloid Pose Data file",
        "// a comment line",
        "model.osm ;",
        "1 ;",
        "Bone0 {頭  ",
        "0 , 0.5 , 1e-3 ;  // trans",
        "",
        "0,0,0,2;",                                             # not unit: normalised
        "  }",
    ]).encode("cp932")
    p = parse_vpd(text)
    assert p.model_name == "model.osm"
    name, t, q = p.bones[0]
    assert name == "頭" and np.allclose(t, [0, 0.5, 1e-3]) and q.tolist() == [0, 0, 0, 1]


def test_empty_pose():
    p = parse_vpd(bad_vpd(HEADER, "", "x.osm;", "0;", ""))
    assert p.bones == () and p.morphs == ()


# --- writing ---------------------------------------------------------------------------------------

def test_writer_matches_mmd_layout():
    p = parse_vpd(MMD_SAMPLE)
    text = vpd_text(p)
    assert text.startswith(HEADER + "\r\n\r\nジェネ.osm;\t\t// 親ファイル名\r\n2;\t\t\t\t// 総ポーズボーン数\r\n")
    assert "\n" not in text.replace("\r\n", "")              # CRLF only
    assert "Bone1{右腕\r\n  0.000000,0.000000,0.000000;" in text
    assert "Morph0{まばたき\r\n  0.750000;" in text
    assert vpd_bytes(p) == text.encode("cp932")


def test_round_trip():
    pose = make_pose()
    back = parse_vpd(vpd_bytes(pose))
    assert_pose_close(back, pose)
    assert vpd_bytes(back) == vpd_bytes(pose)               # stable after the first write


def test_write_vpd_is_atomic_and_reads_back(tmp_path):
    pose = make_pose()
    path = tmp_path / "pose.vpd"
    write_vpd(pose, path)
    assert not (tmp_path / "pose.vpd.tmp").exists()
    assert path.read_bytes() == vpd_bytes(pose)
    back = read_vpd(path)
    assert back.path == str(path)
    assert_pose_close(back, pose)


@pytest.mark.parametrize("name", ["", " 頭", "頭\r\n", "a//b", "\u00e9\u00e8"])
def test_writer_rejects_unwritable_names(name):
    pose = Pose(model_name="m.osm", bones=((name, np.zeros(3, np.float32), np.array([0, 0, 0, 1], np.float32)),))
    with pytest.raises(ValueError):
        vpd_bytes(pose)


def test_model_name_round_trips():
    for model in ("a;b", "", "モデル.osm"):
        assert parse_vpd(vpd_bytes(Pose(model_name=model))).model_name == model
    with pytest.raises(ValueError):
        vpd_text(Pose(model_name="x.osm // y"))


def test_writer_rejects_non_finite():
    pose = Pose(bones=(("頭", np.array([0, np.nan, 0], np.float32), np.array([0, 0, 0, 1], np.float32)),))
    with pytest.raises(ValueError):
        vpd_text(pose)


# --- bad input ---------------------------------------------------------------------------------------

def test_not_a_vpd():
    expect_error(b"", "header", 1)
    expect_error(b"Vocaloid Motion Data 0002\0\0\0", "header", 1)


def test_invalid_cp932():
    err = expect_error(HEADER.encode() + b"\r\nmodel.osm;\r\n1;\r\nBone0{\x82\r\n", "text", 4)
    assert "cp932" in err.reason


def test_bad_header_lines():
    expect_error(bad_vpd(HEADER, "model.osm"), "model_name", 2)
    expect_error(bad_vpd(HEADER, "model.osm;", "two;"), "bone_count", 3)
    expect_error(bad_vpd(HEADER, "model.osm;"), "bone_count", 2)


def test_nan_rotation_names_the_bone():
    data = bad_vpd(HEADER, "m.osm;", "2;",
                   "Bone0{センター", "0,0,0;", "0,0,0,1;", "}",
                   "Bone1{右腕", "0,0,0;", "nan,0,0,1;", "}")
    err = expect_error(data, "bones[1].rotation", 10)
    assert "右腕" in err.reason


def test_zero_rotation_names_the_bone():
    data = bad_vpd(HEADER, "m.osm;", "1;", "Bone0{頭", "0,0,0;", "0,0,0,0;", "}")
    err = expect_error(data, "bones[0].rotation", 6)
    assert "頭" in err.reason and "zero" in err.reason


@pytest.mark.parametrize("value", ["1,2;", "1,2,3,4;", "1,2,3", "1,x,3;", "1e999,0,0;", "inf,0,0;"])
def test_bad_translation(value):
    expect_error(bad_vpd(HEADER, "m.osm;", "1;", "Bone0{頭", value, "0,0,0,1;", "}"), "bones[0].position", 5)


def test_bad_blocks():
    expect_error(bad_vpd(HEADER, "m.osm;", "1;", "Bone0{頭", "0,0,0;", "0,0,0,1;"), "bones[0]", 6)
    expect_error(bad_vpd(HEADER, "m.osm;", "1;", "Bone0{頭", "0,0,0;", "0,0,0,1;", "0;"), "bones[0]", 7)
    expect_error(bad_vpd(HEADER, "m.osm;", "1;", "Bone0{頭", "0,0,0;"), "bones[0].rotation", 5)
    expect_error(bad_vpd(HEADER, "m.osm;", "1;", "Bone0{", "0,0,0;", "0,0,0,1;", "}"), "bones[0].name", 4)
    expect_error(bad_vpd(HEADER, "m.osm;", "0;", "Skin0{x", "0;", "}"), "blocks", 4)
    expect_error(bad_vpd(HEADER, "m.osm;", "0;", "Morph0{あ", "one;", "}"), "morphs[0].weight", 5)
    expect_error(bad_vpd(HEADER, "m.osm;", "3;", "Bone0{頭", "0,0,0;", "0,0,0,1;", "}"), "bone_count", 3)


def test_truncation_anywhere_only_raises_format_error():
    for cut in range(len(MMD_SAMPLE)):
        try:
            parse_vpd(MMD_SAMPLE[:cut])
        except FormatError as e:
            assert e.offset is None and "line " in e.reason
