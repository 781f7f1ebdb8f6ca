"""PMX reader/writer: real files, synthetic models covering every feature, and bad input."""
from __future__ import annotations

import struct

import numpy as np
import pytest

from mmd_fixtures import assert_same, make_model
from udpgen.errors import FormatError
from udpgen.mmd import load
from udpgen.mmd.binary import BinaryReader
from udpgen.mmd.model import BoneFlag, MorphKind
from udpgen.mmd.pmx import _read_header, _read_vertices, parse_pmx, read_pmx, read_vertices_reference
from udpgen.mmd.pmx_writer import header_for, pmx_bytes, write_pmx


# --- the real model ------------------------------------------------------------------------------

def test_gene_counts(gene_dir):
    m = read_pmx(gene_dir / "Gene_light.pmx", strict=True)     # strict: consumed to the last byte
    assert (m.version, m.encoding) == (2.0, "utf-16-le")
    assert (m.vertex_count, m.face_count) == (28646, 47106)
    assert (len(m.materials), len(m.textures), len(m.bones), len(m.morphs)) == (13, 10, 224, 184)
    assert (len(m.rigid_bodies), len(m.joints), m.soft_body_count) == (87, 92, 0)
    assert np.bincount(m.weight_types, minlength=5).tolist() == [13552, 10178, 4916, 0, 0]
    assert sum(mat.face_count for mat in m.materials) == m.face_count
    iks = {b.name: b.ik for b in m.bones if b.ik is not None}
    knee = m.bone_index("左ひざ")
    leg_ik = iks["左足ＩＫ"]
    assert leg_ik.loop_count == 40 and m.bones[leg_ik.target].name == "左足首"
    assert leg_ik.links[0].bone == knee and leg_ik.links[0].lower is not None
    assert np.all(np.abs(m.bone_weights.sum(1) - 1) < 1e-4)
    assert {MorphKind(x.kind) for x in m.morphs} >= {MorphKind.VERTEX, MorphKind.GROUP}


def test_gene_textures_resolve(gene_dir):
    m = read_pmx(gene_dir / "Gene_light.pmx")
    found = [m.resolve_texture(i) for i in range(len(m.textures))]
    assert all(found), [t for t, f in zip(m.textures, found) if not f]


def test_gene_reference_path_agrees(gene_dir):
    data = (gene_dir / "Gene_light.pmx").read_bytes()
    assert_same(parse_pmx(data), parse_pmx(data, reference=True))


@pytest.mark.parametrize("version", [2.0, 2.1])
def test_reference_path_agrees_on_every_feature(version):
    data = pmx_bytes(make_model(version=version, n_vertices=60), index_size=2)
    assert_same(parse_pmx(data), parse_pmx(data, reference=True))


def test_gene_round_trip_is_byte_identical(gene_dir):
    data = (gene_dir / "Gene_light.pmx").read_bytes()
    assert pmx_bytes(parse_pmx(data)) == data


def test_gene_fast_vertices_equal_reference(gene_dir):
    data = (gene_dir / "Gene_light.pmx").read_bytes()
    fast_r, ref_r = BinaryReader(data), BinaryReader(data)
    for r in (fast_r, ref_r):
        h = _read_header(r)
        for _ in range(4):
            r.text(h.encoding, "text")
    fast = _read_vertices(fast_r, h)
    ref = read_vertices_reference(ref_r, h)
    assert fast_r.pos == ref_r.pos
    for key in ref:
        assert np.array_equal(fast[key], ref[key]), key


# --- synthetic models: every feature, every index width, both encodings ------------------------------

@pytest.mark.parametrize("version", [2.0, 2.1])
@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-8"])
@pytest.mark.parametrize("index_size", [1, 2, 4])
def test_round_trip_synthetic(version, encoding, index_size):
    model = make_model(version=version, encoding=encoding, n_vertices=200)
    data = pmx_bytes(model, index_size=index_size)
    back = parse_pmx(data, strict=True)
    assert_same(model, back)
    assert pmx_bytes(back, index_size=index_size) == data
    assert back.weight_types.max() == (4 if version >= 2.1 else 3)


@pytest.mark.parametrize("additional_uvs", [0, 1, 4])
def test_additional_uvs(additional_uvs):
    model = make_model(additional_uvs=additional_uvs, n_vertices=40)
    back = parse_pmx(pmx_bytes(model))
    assert back.additional_uvs.shape == (40, additional_uvs, 4)
    assert_same(model, back)


def test_unsigned_vertex_indices():
    """Vertex indices of width 1 and 2 are unsigned: 200 vertices fit in one byte, 40,000 in two."""
    for n, width in ((200, 1), (40000, 2)):
        model = make_model(n_vertices=n, n_bones=4, additional_uvs=0)
        assert header_for(model).vertex == width
        back = parse_pmx(pmx_bytes(model))
        assert back.faces.max() == n - 1
        assert np.array_equal(back.faces, model.faces)
        assert back.morphs[0].offsets["index"].max() <= n - 1


def test_bone_fields(tmp_path):
    model = make_model()
    write_pmx(model, tmp_path / "m.pmx")
    back = load(tmp_path / "m.pmx")
    b = back.bones
    assert b[5].is_ik and b[5].ik.links[0].upper[0] == np.float32(-0.01) and b[5].ik.links[1].lower is None
    assert b[6].append_rotate and b[6].append_translate and b[6].local_append and b[6].append_ratio == -0.5
    assert np.array_equal(b[7].fixed_axis, [1, 0, 0]) and b[8].after_physics and b[9].external_key == 7
    assert b[1].flags & BoneFlag.TAIL_IS_BONE and b[1].tail_index == 2
    assert not (tmp_path / "m.pmx.tmp").exists()


def _soft_body_section(h) -> bytes:
    """One PMX 2.1 soft body with two anchors and three pins, in the header's index widths."""
    def idx(size, v):
        return np.array([v], {1: "i1", 2: "<i2", 4: "<i4"}[size]).tobytes()
    def vidx(v):
        return np.array([v], {1: "u1", 2: "<u2", 4: "<i4"}[h.vertex]).tobytes()
    def text(s):
        b = s.encode(h.encoding)
        return struct.pack("<i", len(b)) + b
    body = text("ソフト") + text("soft") + b"\x00" + idx(h.material, 0)
    body += struct.pack("<BHBiiffi12f6f4i3f", 1, 0xFFFF, 0, 2, 0, 1.0, 0.1, 1, *range(12), *range(6), 1, 2, 3, 4,
                        0.5, 0.5, 0.5)
    body += struct.pack("<i", 2) + (idx(h.rigid, 0) + vidx(1) + b"\x01") * 2
    body += struct.pack("<i", 3) + vidx(0) + vidx(1) + vidx(2)
    return struct.pack("<i", 1) + body


def test_soft_bodies_are_skipped():
    model = make_model(version=2.1)
    data = pmx_bytes(model)
    assert data[-4:] == b"\0\0\0\0"          # the writer's empty soft body section
    data = data[:-4] + _soft_body_section(header_for(model))
    back = parse_pmx(data, strict=True)
    assert back.soft_body_count == 1
    with pytest.raises(FormatError, match=r"soft_bodies\[0\]"):
        parse_pmx(data[:-3])


def test_21_file_may_end_after_joints():
    data = pmx_bytes(make_model(version=2.1))
    assert parse_pmx(data[:-4], strict=True).soft_body_count == 0


# --- bad input --------------------------------------------------------------------------------------

def _err(data: bytes) -> FormatError:
    with pytest.raises(FormatError) as e:
        parse_pmx(data, "bad.pmx")
    return e.value


def test_bad_header():
    data = pmx_bytes(make_model(n_vertices=20))
    assert _err(b"").field == "header.magic"
    assert "not a PMX file" in str(_err(b"PMD " + data[4:]))
    e = _err(data[:4] + struct.pack("<f", 3.0) + data[8:])
    assert (e.field, e.offset) == ("header.version", 4) and "3.0" in e.reason
    e = _err(data[:11] + b"\x07" + data[12:])           # vertex index size 7
    assert (e.field, e.offset) == ("header.vertex_index_size", 11) and "got 7" in e.reason
    e = _err(data[:9] + b"\x02" + data[10:])            # encoding 2
    assert e.field == "header.encoding"


def test_bad_counts_and_indices():
    model = make_model(n_vertices=20, version=2.0)
    data = bytearray(pmx_bytes(model))
    h = header_for(model)
    r = BinaryReader(bytes(data))
    _read_header(r)
    for _ in range(4):
        r.text(h.encoding, "t")
    count_at = r.pos
    huge = data[:count_at] + struct.pack("<i", 2**31 - 1) + data[count_at + 4:]
    e = _err(bytes(huge))
    assert e.field == "vertices.count" and e.offset == count_at and str(2**31 - 1) in e.reason
    neg = data[:count_at] + struct.pack("<i", -5) + data[count_at + 4:]
    assert "negative" in _err(bytes(neg)).reason
    # a face index past the vertex count
    faces = model.faces.copy()
    faces[3, 1] = 200
    bad = pmx_bytes(type(model)(**{**model.__dict__, "faces": faces, "positions": model.positions}))
    e = _err(bad)
    assert e.field == "faces[3]" and "200" in e.reason


def test_invalid_text_and_weight_type():
    model = make_model(n_vertices=20, version=2.0)
    data = pmx_bytes(model)
    # the model name: odd byte length is invalid UTF-16
    name = "テスト".encode("utf-16-le")
    i = data.index(name)
    bad = data[:i - 4] + struct.pack("<i", 5) + data[i:]
    e = _err(bad)
    assert e.field == "header.name" and "utf-16-le" in e.reason
    # the first vertex's weight type byte
    r = BinaryReader(data)
    h = _read_header(r)
    for _ in range(4):
        r.text(h.encoding, "t")
    tpos = r.pos + 4 + 32 + 16 * h.additional_uvs
    e = _err(data[:tpos] + b"\x09" + data[tpos + 1:])
    assert (e.field, e.offset) == ("vertices[0].weight_type", tpos) and "got 9" in e.reason


@pytest.mark.parametrize("version", [2.0, 2.1])
def test_every_truncation_is_a_format_error(version):
    data = pmx_bytes(make_model(n_vertices=8, n_bones=10, additional_uvs=1, version=version))
    valid_ends = {len(data) - 4} if version >= 2.1 else set()     # 2.1 may end without soft bodies
    for cut in range(len(data)):
        if cut in valid_ends:
            continue
        with pytest.raises(FormatError):
            parse_pmx(data[:cut])


def test_trailing_bytes():
    data = pmx_bytes(make_model(n_vertices=8, version=2.0))
    with pytest.warns(UserWarning, match="unexpected bytes"):
        parse_pmx(data + b"junk")
    with pytest.raises(FormatError, match="4 unexpected bytes"):
        parse_pmx(data + b"junk", strict=True)


def test_files_that_are_not_files(tmp_path):
    with pytest.raises(FormatError, match="is a directory"):
        read_pmx(tmp_path)
    with pytest.raises(FormatError, match="cannot read"):
        read_pmx(tmp_path / "missing.pmx")
    (tmp_path / "empty.pmx").write_bytes(b"")
    with pytest.raises(FormatError, match="empty.pmx"):
        load(tmp_path / "empty.pmx")


def test_zero_vertex_skeleton_round_trips(sample_dir):
    from mmd_fixtures import skeleton_only

    bones = skeleton_only(load(sample_dir / "sample.pmx"))
    data = pmx_bytes(bones)
    back = parse_pmx(data, "bones.pmx")
    assert back.vertex_count == 0 and len(back.bones) == len(bones.bones)
    assert pmx_bytes(back) == data
