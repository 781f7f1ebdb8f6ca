"""VMD reader/writer: the real Gene motions, hand-built files of every section, and bad input."""
from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

from udpgen.errors import FormatError
from udpgen.mmd.binary import decode_cp932, encode_cp932
from udpgen.mmd.model import (BoneKeys, CameraKeys, IKKey, LightKeys, MorphKeys, Motion, ShadowKeys,
                              vmd_name_bytes)
from udpgen.mmd.vmd import (MAGIC_V1, MAGIC_V2, SECTIONS, bone_curves, camera_curves, normalize_quaternions,
                            parse_vmd, read_vmd, vmd_bytes, write_vmd)

# (bones, morphs, cameras, lights, shadows, ik keys, distinct bone names, distinct morph names, frame range)
GENE_MOTIONS = {
    "00_normal.vmd": (0, 449, 0, 0, 0, 0, 0, 214, (0, 10)),
    "02_laugh.vmd": (548, 393, 0, 0, 0, 1, 222, 178, (0, 300)),
    "16_thinking.vmd": (373, 258, 0, 0, 0, 1, 222, 111, (0, 300)),
    "22_apology.vmd": (718, 398, 0, 0, 0, 1, 222, 178, (0, 300)),
    "26_mortifying.vmd": (1043, 406, 0, 0, 0, 1, 222, 178, (0, 300)),
    "32_frustrated.vmd": (659, 710, 0, 0, 0, 1, 222, 178, (0, 300)),
    "33_angry.vmd": (828, 335, 0, 0, 0, 1, 222, 111, (0, 300)),
    "stand.vmd": (470, 184, 0, 0, 0, 1, 222, 178, (0, 120)),
}

# MMD's default (linear) bone interpolation as the Gene motions store it: row k holds the four curves
# shifted left by k; bytes 2 and 3 of row 0 are 0 rather than the Z/rotation x1 values.
LINEAR = bytes([20, 20, 0, 0] + [20] * 4 + [107] * 8 + [20] * 7 + [107] * 8 + [0]
               + [20] * 6 + [107] * 8 + [0] * 2 + [20] * 5 + [107] * 8 + [0] * 3)
assert len(LINEAR) == 64


# --- helpers ----------------------------------------------------------------------------------------

def header(version: int = 2, model: bytes = b"model") -> bytes:
    magic = MAGIC_V2 if version == 2 else MAGIC_V1
    return magic.ljust(30, b"\0") + model.ljust(10 * version, b"\0")


def bone_rec(name: bytes, frame: int, pos=(0, 0, 0), rot=(0, 0, 0, 1), interp: bytes = LINEAR) -> bytes:
    return name.ljust(15, b"\0") + struct.pack("<I3f4f", frame, *pos, *rot) + interp


def morph_rec(name: bytes, frame: int, weight: float) -> bytes:
    return name.ljust(15, b"\0") + struct.pack("<If", frame, weight)


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def assert_motion_equal(a: Motion, b: Motion) -> None:
    assert (a.model_name, a.version, a.sections) == (b.model_name, b.version, b.sections)
    for part in ("bones", "morphs", "cameras", "lights", "shadows"):
        ka, kb = getattr(a, part), getattr(b, part)
        for f in ka.__dataclass_fields__:
            va, vb = getattr(ka, f), getattr(kb, f)
            if isinstance(va, np.ndarray):
                assert va.dtype == vb.dtype and np.array_equal(va, vb), f"{part}.{f}"
            else:
                assert va == vb, f"{part}.{f}"
    assert [(k.frame, k.visible, k.ik_enabled) for k in a.ik] == [(k.frame, k.visible, k.ik_enabled) for k in b.ik]


def section_ends(m: Motion) -> list[int]:
    """Byte offsets where a file holding the first j sections of ``m`` would end, j = 0..6."""
    ends = [30 + 10 * m.version]
    sizes = {"bones": 111 * len(m.bones), "morphs": 23 * len(m.morphs), "cameras": 61 * len(m.cameras),
             "lights": 28 * len(m.lights), "shadows": 9 * len(m.shadows),
             "ik": sum(9 + 21 * len(k.ik_enabled) for k in m.ik)}
    for s in SECTIONS:
        ends.append(ends[-1] + 4 + sizes[s])
    return ends


def full_motion() -> Motion:
    """A motion with every section filled, including 15-byte names and an orthographic camera key."""
    rng = np.random.default_rng(1)
    k = 5
    q = rng.normal(size=(k, 4)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    bones = BoneKeys(names=(vmd_name_bytes("センター"), vmd_name_bytes("左腕捩れ補助用骨")),
                     name_index=np.array([0, 1, 0, 1, 1], np.int32), frame=np.array([0, 0, 10, 5, 30], np.uint32),
                     position=rng.normal(size=(k, 3)).astype(np.float32), rotation=q,
                     interpolation=rng.integers(0, 128, (k, 64)).astype(np.uint8))
    morphs = MorphKeys(names=(vmd_name_bytes("まばたき"),), name_index=np.zeros(3, np.int32),
                       frame=np.array([0, 4, 8], np.uint32), weight=np.array([0, 1, 0.25], np.float32))
    cameras = CameraKeys(frame=np.array([0, 60], np.uint32), distance=np.array([-45, -30], np.float32),
                         target=np.array([[0, 10, 0], [1, 12, -2]], np.float32),
                         rotation=np.array([[0, 0, 0], [0.1, 3.1, 0]], np.float32),
                         interpolation=rng.integers(0, 128, (2, 24)).astype(np.uint8),
                         fov=np.array([30, 45], np.uint32), orthographic=np.array([False, True]))
    lights = LightKeys(frame=np.array([0], np.uint32), color=np.array([[0.6, 0.6, 0.6]], np.float32),
                       direction=np.array([[-0.5, -1, 0.5]], np.float32))
    shadows = ShadowKeys(frame=np.array([0, 9], np.uint32), mode=np.array([1, 2], np.uint8),
                         distance=np.array([0.0088, 0.005], np.float32))
    ik = (IKKey(frame=0, visible=True, ik_enabled=((vmd_name_bytes("左足ＩＫ", 20), True),
                                                   (vmd_name_bytes("右足ＩＫ", 20), False))),
          IKKey(frame=15, visible=False, ik_enabled=()))
    return Motion(model_name=vmd_name_bytes("ジェネ / Gene", 20), bones=bones, morphs=morphs, cameras=cameras,
                  lights=lights, shadows=shadows, ik=ik)


# --- the real Gene motions ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(GENE_MOTIONS))
def test_gene_counts(gene_dir, name):
    nb, nm, nc, nl, ns, nik, nbn, nmn, frames = GENE_MOTIONS[name]
    m = read_vmd(gene_dir / "motion" / name)
    assert m.path.endswith(name) and m.version == 2 and m.sections == SECTIONS
    assert (len(m.bones), len(m.morphs), len(m.cameras), len(m.lights), len(m.shadows), len(m.ik)) == \
        (nb, nm, nc, nl, ns, nik)
    assert (len(m.bones.names), len(m.morphs.names)) == (nbn, nmn)
    assert m.frame_range == frames
    assert m.bones.name_index.dtype == np.int32 and m.bones.rotation.dtype == np.float32
    assert m.bones.interpolation.shape == (nb, 64) and m.bones.interpolation.dtype == np.uint8
    if nb:
        assert np.allclose(np.linalg.norm(m.bones.rotation, axis=1), 1, atol=1e-4)
        assert m.bones.name_index.min() == 0 and m.bones.name_index.max() == nbn - 1
    assert all(0 < len(n) <= 15 for n in m.bones.names + m.morphs.names)
    if name != "00_normal.vmd":
        assert decode_cp932(m.model_name) == "ジェネ / Gene"
        key = m.ik[0]
        assert (key.frame, key.visible, len(key.ik_enabled)) == (0, True, 6)
        assert (vmd_name_bytes("左足ＩＫ", 20), True) in key.ik_enabled


def test_gene_other_model_name_is_cut_mid_character(gene_dir):
    # 00_normal.vmd was made for another model: its 20-byte name has no NUL and ends in half a character
    m = read_vmd(gene_dir / "motion" / "00_normal.vmd")
    assert len(m.model_name) == 20
    assert decode_cp932(m.model_name, truncated=True) == "ニルヴァ / Nirva デ"


@pytest.mark.parametrize("name", sorted(GENE_MOTIONS))
def test_gene_round_trip_is_byte_identical(gene_dir, name):
    # The Gene motions pad names with NUL only and store unit quaternions, so nothing is lost
    data = (gene_dir / "motion" / name).read_bytes()
    m = parse_vmd(data)
    assert vmd_bytes(m) == data
    assert_motion_equal(parse_vmd(vmd_bytes(m)), m)


def test_gene_curves_read_by_row(gene_dir):
    m = read_vmd(gene_dir / "motion" / "stand.vmd")
    it = m.bones.interpolation
    # bytes 2 and 3 (row 0's copies of the Z and rotation x1) are 0 in every key of these files ...
    assert np.all(it[:, 2:4] == 0)
    c = bone_curves(it)
    assert c.shape == (len(m.bones), 4, 4) and c.dtype == np.float32
    # ... yet every curve's x1 is a real value, read from its own row
    assert np.all(c[:, :, 0] > 0)
    assert np.allclose(c[0], np.array([20, 20, 107, 107]) / 127)
    assert 0 <= c.min() and c.max() <= 1


def test_gene_bone_names_match_the_model(gene_dir):
    from udpgen.mmd.pmx import read_pmx

    model = read_pmx(gene_dir / "Gene_light.pmx")
    model_names = {vmd_name_bytes(b.name) for b in model.bones}
    m = read_vmd(gene_dir / "motion" / "stand.vmd")
    assert set(m.bones.names) <= model_names
    ik_names = {vmd_name_bytes(b.name, 20) for b in model.bones if b.ik is not None}
    assert {n for n, _ in m.ik[0].ik_enabled} <= ik_names


def test_gene_truncation_only_raises_format_error(gene_dir):
    data = (gene_dir / "motion" / "stand.vmd").read_bytes()
    ends = section_ends(parse_vmd(data))
    assert ends[-1] == len(data)
    cuts = set(np.linspace(0, len(data) - 1, 200).astype(int).tolist())
    cuts |= {e + d for e in ends for d in (-1, 0, 1, 2) if 0 <= e + d < len(data)}
    for cut in sorted(cuts):
        piece = data[:cut]
        if cut in ends:                       # a file may end after any section
            m = parse_vmd(piece)
            assert m.sections == SECTIONS[:ends.index(cut)]
            assert vmd_bytes(m) == piece
            continue
        with pytest.raises(FormatError) as e:
            parse_vmd(piece, "cut.vmd")
        assert e.value.path == "cut.vmd" and e.value.field
        assert e.value.offset is not None and 0 <= e.value.offset <= cut


def test_gene_byte_flips_only_raise_format_error(gene_dir):
    data = (gene_dir / "motion" / "stand.vmd").read_bytes()
    ends = section_ends(parse_vmd(data))
    rng = np.random.default_rng(7)
    positions = rng.integers(0, len(data), 300).tolist()
    positions += [e + i for e in ends[:-1] for i in range(4)]            # every count field
    for pos in positions:
        for value in (data[pos] ^ 0xFF, int(rng.integers(0, 256))):
            bad = bytearray(data)
            bad[pos] = value
            try:
                m = parse_vmd(bytes(bad))
            except FormatError as e:
                assert e.offset is None or 0 <= e.offset < len(data)
                continue
            # whatever still parses must survive a write/read cycle
            assert_motion_equal(parse_vmd(vmd_bytes(m)), m)


def test_gene_nan_anywhere_names_the_key(gene_dir):
    data = (gene_dir / "motion" / "stand.vmd").read_bytes()
    m = parse_vmd(data)
    morph_base = 54 + 111 * len(m.bones) + 4
    rng = np.random.default_rng(3)
    nan = struct.pack("<f", float("nan"))
    cases = []
    for k in rng.integers(0, len(m.bones), 10).tolist():
        cases.append((f"bone_keys[{k}].position", 54 + 111 * k + 19, int(rng.integers(0, 3))))
        cases.append((f"bone_keys[{k}].rotation", 54 + 111 * k + 31, int(rng.integers(0, 4))))
    for k in rng.integers(0, len(m.morphs), 10).tolist():
        cases.append((f"morph_keys[{k}].weight", morph_base + 23 * k + 19, 0))
    for field, offset, component in cases:
        bad = bytearray(data)
        bad[offset + 4 * component:offset + 4 * component + 4] = nan
        with pytest.raises(FormatError) as e:
            parse_vmd(bytes(bad))
        assert (e.value.field, e.value.offset) == (field, offset)


# --- hand-built files ---------------------------------------------------------------------------

def test_old_format_file():
    data = (header(1, b"oldmodel") + u32(2) + bone_rec(b"center", 0, (1, 2, 3)) + bone_rec(b"arm", 5)
            + u32(1) + morph_rec(b"blink", 7, 0.5))
    m = parse_vmd(data)
    assert (m.version, m.model_name, m.sections) == (1, b"oldmodel", ("bones", "morphs"))
    assert m.bones.names == (b"arm", b"center")              # distinct names, sorted by np.unique
    assert m.bones.name_index.tolist() == [1, 0]
    assert m.bones.frame.tolist() == [0, 5] and m.bones.position[0].tolist() == [1, 2, 3]
    assert m.morphs.names == (b"blink",) and m.morphs.weight.tolist() == [0.5]
    assert m.frame_range == (0, 7)
    assert vmd_bytes(m) == data


def test_file_ending_after_bones():
    data = header() + u32(1) + bone_rec(b"center", 3, (0, 1, 0))
    m = parse_vmd(data)
    assert m.sections == ("bones",) and len(m.bones) == 1 and len(m.morphs) == 0
    assert vmd_bytes(m) == data


def test_header_only_file():
    m = parse_vmd(header())
    assert m.sections == () and m.frame_range is None
    assert vmd_bytes(m) == header()


def test_every_section_round_trips():
    m = full_motion()
    data = vmd_bytes(m)
    assert len(data) == section_ends(m)[-1]
    back = parse_vmd(data)
    assert_motion_equal(back, m)
    assert vmd_bytes(back) == data
    assert back.frame_range == (0, 60)


def test_camera_record_layout():
    interp = bytes(range(24))
    rec = struct.pack("<If3f3f", 12, -45.0, 0, 10, 0, 0.5, 1.0, 0) + interp + struct.pack("<IB", 30, 1)
    data = header() + u32(0) + u32(0) + u32(1) + rec + u32(0) + u32(0)
    m = parse_vmd(data)
    c = m.cameras
    assert m.sections == SECTIONS[:5]
    assert (c.frame.tolist(), c.distance.tolist(), c.fov.tolist()) == ([12], [-45.0], [30])
    assert c.target.tolist() == [[0, 10, 0]] and c.rotation.tolist() == [[0.5, 1.0, 0]]
    assert c.orthographic.tolist() == [True]                 # the byte is "perspective off"
    assert bytes(c.interpolation[0]) == interp
    assert vmd_bytes(m) == data


def test_light_shadow_ik_record_layout():
    ik = u32(2) + struct.pack("<IBI", 3, 0, 2) + b"leftIK".ljust(20, b"\0") + b"\1" \
        + b"rightIK".ljust(20, b"\0") + b"\0" + struct.pack("<IBI", 9, 1, 0)
    data = (header() + u32(0) * 3 + u32(1) + struct.pack("<I6f", 4, .1, .2, .3, -1, -2, -3)
            + u32(1) + struct.pack("<IBf", 6, 2, 0.25) + ik)
    m = parse_vmd(data)
    assert m.lights.frame.tolist() == [4]
    assert np.allclose(m.lights.color, [[.1, .2, .3]]) and m.lights.direction.tolist() == [[-1, -2, -3]]
    assert (m.shadows.frame.tolist(), m.shadows.mode.tolist(), m.shadows.distance.tolist()) == ([6], [2], [0.25])
    assert [(k.frame, k.visible, k.ik_enabled) for k in m.ik] == \
        [(3, False, ((b"leftIK", True), (b"rightIK", False))), (9, True, ())]
    assert m.frame_range == (3, 9)
    assert vmd_bytes(m) == data


def test_name_cut_mid_character_matches_vmd_name_bytes():
    full = "左腕捩れ補助用骨"                                   # 16 bytes in cp932
    assert len(full.encode("cp932")) == 16
    stored = encode_cp932(full, 15)                          # MMD keeps the first 15 bytes: half a character
    data = header() + u32(1) + bone_rec(stored, 0)
    m = parse_vmd(data)
    assert m.bones.names == (vmd_name_bytes(full),) and len(m.bones.names[0]) == 15
    assert decode_cp932(m.bones.names[0], truncated=True) == "左腕捩れ補助用"
    assert vmd_bytes(m) == data


def test_garbage_after_nul_is_dropped():
    a = b"abc\0" + b"\xfd" * 11
    data = header() + u32(3) + bone_rec(a, 0) + bone_rec(b"abc", 1) + bone_rec(b"abd\0\xfd", 2) \
        + u32(1) + morph_rec(b"m\0\xfd\xfd", 0, 1)
    m = parse_vmd(data)
    assert m.bones.names == (b"abc", b"abd") and m.bones.name_index.tolist() == [0, 0, 1]
    assert m.morphs.names == (b"m",)
    out = vmd_bytes(m)
    assert out != data and len(out) == len(data)             # the garbage cannot come back ...
    assert_motion_equal(parse_vmd(out), m)                   # ... but the motion does


# --- quaternions --------------------------------------------------------------------------------

def test_nan_rotation_is_rejected_with_key_and_offset():
    data = header() + u32(2) + bone_rec(b"a", 0) + bone_rec(b"b", 1, rot=(0, float("nan"), 0, 1))
    with pytest.raises(FormatError) as e:
        parse_vmd(data, "nan.vmd")
    assert e.value.field == "bone_keys[1].rotation"
    assert e.value.offset == 54 + 111 + 15 + 4 + 12
    assert "nan.vmd" in str(e.value)


def test_inf_position_and_weight_are_rejected():
    data = header() + u32(1) + bone_rec(b"a", 0, pos=(0, float("inf"), 0))
    with pytest.raises(FormatError) as e:
        parse_vmd(data)
    assert (e.value.field, e.value.offset) == ("bone_keys[0].position", 54 + 19)
    data = header() + u32(0) + u32(2) + morph_rec(b"m", 0, 1) + morph_rec(b"m", 1, float("nan"))
    with pytest.raises(FormatError) as e:
        parse_vmd(data)
    assert (e.value.field, e.value.offset) == ("morph_keys[1].weight", 58 + 23 + 19)


def test_zero_and_non_unit_rotations_are_normalised():
    near = np.array([0, 0, 0.6, 0.8000001], np.float32)     # float32 rounding, within QUAT_TOLERANCE
    data = header() + u32(3) + bone_rec(b"a", 0, rot=(0, 0, 0, 0)) + bone_rec(b"a", 1, rot=(1, 1, 1, 1)) \
        + bone_rec(b"a", 2, rot=tuple(near.tolist()))
    m = parse_vmd(data)
    assert m.bones.rotation[0].tolist() == [0, 0, 0, 1]     # zero: "no rotation data" -> identity
    assert np.allclose(m.bones.rotation[1], 0.5)
    assert m.bones.rotation[2].tobytes() == near.tobytes()  # left exactly as stored


def test_normalize_quaternions_helper():
    q = np.array([[0, 0, 0, 2], [0, 0, 0, 0], [np.nan, 0, 0, 1], [3, 0, 4, 0]], np.float32)
    out, bad = normalize_quaternions(q, zero_to_identity=False)
    assert bad.tolist() == [1, 2] and out.dtype == np.float32
    assert out[0].tolist() == [0, 0, 0, 1] and np.allclose(out[3], [0.6, 0, 0.8, 0])
    out, bad = normalize_quaternions(q)
    assert bad.tolist() == [2] and out[1].tolist() == [0, 0, 0, 1]
    out, bad = normalize_quaternions(q[0])                   # a single (4,) quaternion keeps its shape
    assert out.shape == (4,) and bad.size == 0


# --- interpolation curves ---------------------------------------------------------------------------

def test_bone_curves_layout():
    it = np.full(64, 99, np.uint8)
    for k in range(4):
        for j in range(4):
            it[16 * k + 4 * j] = 10 * k + j + 1              # curve k, parameter j (x1, y1, x2, y2)
    c = bone_curves(it)
    assert c.shape == (4, 4)
    assert np.allclose(c * 127, [[10 * k + j + 1 for j in range(4)] for k in range(4)])
    assert bone_curves(np.full((2, 64), 200, np.uint8)).max() == 1.0          # clamped
    assert np.allclose(bone_curves(np.frombuffer(LINEAR, np.uint8)), np.array([20, 20, 107, 107]) / 127)
    with pytest.raises(ValueError):
        bone_curves(np.zeros((2, 24), np.uint8))


def test_camera_curves_layout():
    c = camera_curves(np.arange(24, dtype=np.uint8)[None])
    assert c.shape == (1, 6, 4) and c.dtype == np.float32
    # stored per curve as (x1, x2, y1, y2), returned as (x1, y1, x2, y2)
    assert np.allclose(c[0] * 127, [[4 * i, 4 * i + 2, 4 * i + 1, 4 * i + 3] for i in range(6)])
    with pytest.raises(ValueError):
        camera_curves(np.zeros(64, np.uint8))


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [b"", b"Vocaloid", b"Vocaloid Pose Data file\r\n" + b"\0" * 40,
                                  b"Vocaloid Motion Data 0003".ljust(60, b"\0")])
def test_bad_magic(data):
    with pytest.raises(FormatError) as e:
        parse_vmd(data)
    assert e.value.field == "header.magic" and e.value.offset == 0


def test_truncated_model_name():
    with pytest.raises(FormatError) as e:
        parse_vmd(header()[:40])
    assert (e.value.field, e.value.offset) == ("header.model_name", 30)


def test_huge_counts_fail_fast():
    with pytest.raises(FormatError) as e:
        parse_vmd(header() + b"\xff\xff\xff\xff" + b"\0" * 200)
    assert (e.value.field, e.value.offset) == ("bone_keys.count", 50)
    ik = u32(1) + struct.pack("<IBI", 0, 1, 0xFFFFFFF0) + b"\0" * 30
    with pytest.raises(FormatError) as e:
        parse_vmd(header() + u32(0) * 5 + ik)
    assert e.value.field == "ik_keys[0].ik_enabled.count"


def test_partial_count_and_trailing_bytes():
    with pytest.raises(FormatError) as e:
        parse_vmd(header() + u32(0) + b"\0\0")               # 2 bytes cannot be a count
    assert e.value.field == "morph_keys.count"
    with pytest.warns(UserWarning, match="1 unexpected bytes"):        # complete data: warn, as PMX/PMD do
        assert parse_vmd(vmd_bytes(Motion()) + b"\0").sections == Motion().sections
    with pytest.raises(FormatError) as e:
        parse_vmd(vmd_bytes(Motion()) + b"\0", strict=True)
    assert e.value.field == "trailing"


def test_read_vmd_os_errors(tmp_path):
    with pytest.raises(FormatError):
        read_vmd(tmp_path / "missing.vmd")
    with pytest.raises(FormatError):
        read_vmd(tmp_path)


# --- writer -----------------------------------------------------------------------------------------

def test_write_vmd_is_atomic_and_reads_back(tmp_path):
    m = full_motion()
    path = tmp_path / "out.vmd"
    write_vmd(m, path)
    assert path.read_bytes() == vmd_bytes(m)
    assert not (tmp_path / "out.vmd.tmp").exists()
    assert_motion_equal(read_vmd(path), m)


def test_writer_never_drops_data():
    m = full_motion()
    short = Motion(bones=m.bones, morphs=m.morphs, sections=("bones",))
    assert parse_vmd(vmd_bytes(short)).sections == ("bones", "morphs")
    # a section named after an absent one: the ones before it are written empty
    assert parse_vmd(vmd_bytes(Motion(sections=("lights",)))).sections == SECTIONS[:4]


def test_writer_rejects_what_vmd_cannot_hold():
    m = full_motion()
    long_name = dataclasses.replace(m.bones, names=(b"x" * 16, m.bones.names[1]))
    with pytest.raises(ValueError):
        vmd_bytes(dataclasses.replace(m, bones=long_name))
    bad_index = dataclasses.replace(m.bones, name_index=np.array([0, 1, 2, 0, 0], np.int32))
    with pytest.raises(ValueError):
        vmd_bytes(dataclasses.replace(m, bones=bad_index))
    with pytest.raises(ValueError):
        vmd_bytes(dataclasses.replace(m, sections=("bones", "sounds")))
    with pytest.raises(ValueError):
        vmd_bytes(dataclasses.replace(m, model_name=b"x" * 21))
    with pytest.raises(ValueError):
        vmd_bytes(dataclasses.replace(m, version=1))          # the 20-byte model name fits only version 2
    nan_rotation = m.bones.rotation.copy()
    nan_rotation[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"bone_keys\[3\]\.rotation"):
        vmd_bytes(dataclasses.replace(m, bones=dataclasses.replace(m.bones, rotation=nan_rotation)))
