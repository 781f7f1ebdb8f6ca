"""udpgen.io.udp: the UDP image contract (DESIGN 3.4): PNG16 / npz / EXR round trips, channel order, checks."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from udpgen.io import udp
from udpgen.io.sheet import contact_sheet
from udpgen.errors import FormatError


def make_udp(h: int = 12, w: int = 10, seed: int = 0) -> np.ndarray:
    """A valid UDP: a random-landmark rectangle on a zero background."""
    rng = np.random.default_rng(seed)
    a = np.zeros((h, w, 4), np.float32)
    a[2:h - 2, 3:w - 2, :3] = rng.random((h - 4, w - 5, 3), dtype=np.float32)
    a[2:h - 2, 3:w - 2, 3] = 1.0
    return a


def raw_png(h: int, w: int, depth: int, color_type: int, pixels: bytes) -> bytes:
    """A minimal PNG written by hand (filter 0 on every row), independent of OpenCV's channel order."""
    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    row = len(pixels) // h
    data = b"".join(b"\x00" + pixels[r * row:(r + 1) * row] for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b"")


def idat_pixels(png: bytes) -> bytes:
    """Filtered pixel bytes of a PNG (for a 1x1 image every filter type leaves them unchanged)."""
    out, pos = b"", 8
    while pos < len(png):
        n, tag = struct.unpack(">I4s", png[pos:pos + 8])
        if tag == b"IDAT":
            out += png[pos + 8:pos + 8 + n]
        pos += 12 + n
    return zlib.decompress(out)[1:]   # drop the row's filter byte


def test_png16_round_trip_error_below_1e5():
    rng = np.random.default_rng(1)
    a = rng.random((17, 23, 4), dtype=np.float32)
    b = udp.decode_png16(udp.encode_png16(a))
    assert b.dtype == np.float32 and b.shape == a.shape
    assert np.abs(a - b).max() <= 1e-5
    grid = (np.arange(4 * 5 * 4, dtype=np.float64).reshape(5, 4, 4) * 797 % 65536 / 65535).astype(np.float32)
    assert np.abs(udp.decode_png16(udp.encode_png16(grid)) - grid).max() < 1e-7   # exact 16-bit levels


def test_png16_file_is_rgba_x_in_red():
    red = np.zeros((1, 1, 4), np.float32)
    red[0, 0] = (1.0, 0.0, 0.0, 1.0)          # landmark x = 1, y = z = 0, occupied
    png = udp.encode_png16(red)
    h, w, depth, channels = udp.png_header(png)
    assert (h, w, depth, channels) == (1, 1, 16, 4) and png[25] == 6          # colour type 6 = RGBA
    assert idat_pixels(png) == b"\xff\xff\x00\x00\x00\x00\xff\xff"           # R=65535 G=0 B=0 A=65535 big-endian
    # Decoding a file written without OpenCV: red stays x, blue stays z.
    hand = raw_png(1, 2, 16, 6, struct.pack(">8H", 65535, 0, 0, 65535, 0, 0, 65535, 65535))
    got = udp.decode_png16(hand)
    np.testing.assert_array_equal(got[0, 0], [1, 0, 0, 1])
    np.testing.assert_array_equal(got[0, 1], [0, 0, 1, 1])


def test_decode_png16_rejects_other_pngs():
    rgba8 = raw_png(2, 2, 8, 6, bytes(16))
    with pytest.raises(FormatError) as e:
        udp.decode_png16(rgba8, "a.udp.png")
    assert e.value.field == "header.bit_depth" and "a.udp.png" in str(e.value)
    rgb16 = raw_png(2, 2, 16, 2, bytes(24))
    with pytest.raises(FormatError) as e:
        udp.decode_png16(rgb16)
    assert e.value.field == "header.channels" and "3 channel" in e.value.reason
    with pytest.raises(FormatError) as e:
        udp.decode_png16(b"not a png at all, just some bytes...")
    assert e.value.field == "header.magic"
    broken = udp.encode_png16(make_udp())[:60]
    with pytest.raises(FormatError):
        udp.decode_png16(broken)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint16),
                                 np.full((4, 4, 4), 1.5, np.float32), np.full((4, 4, 4), np.nan, np.float32)])
def test_encoders_reject_bad_arrays(bad, tmp_path):
    with pytest.raises(ValueError):
        udp.encode_png16(bad)
    with pytest.raises(ValueError):
        udp.to_npz(bad, tmp_path / "x.npz")


@pytest.mark.parametrize("axes", ["xyz", "xzy", "zyx"])
def test_npz_round_trip_and_official_layout(tmp_path, axes):
    a = make_udp()
    path = tmp_path / "pose.npz"
    udp.to_npz(a, path, axes=axes)
    with np.load(path) as z:                  # what the official loader does: np.load(f)['i'].astype(float32)
        assert z.files == ["i"]
        i = z["i"]
    assert i.dtype == np.float32 and i.shape == a.shape
    for k, axis in enumerate(axes):
        np.testing.assert_array_equal(i[..., k], a[..., "xyz".index(axis)])
    np.testing.assert_array_equal(i[..., 3], a[..., 3])
    np.testing.assert_array_equal(udp.from_npz(path, axes=axes), a)


def test_from_npz_errors(tmp_path):
    np.savez(tmp_path / "nokey.npz", x=make_udp())
    with pytest.raises(FormatError) as e:
        udp.from_npz(tmp_path / "nokey.npz")
    assert e.value.field == "i"
    np.savez(tmp_path / "shape.npz", i=np.zeros((4, 4, 3), np.float32))
    with pytest.raises(FormatError, match="expected"):
        udp.from_npz(tmp_path / "shape.npz")
    np.savez(tmp_path / "range.npz", i=np.full((2, 2, 4), 2.0, np.float32))
    with pytest.raises(FormatError, match="outside"):
        udp.from_npz(tmp_path / "range.npz")
    np.savez(tmp_path / "pickle.npz", i=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FormatError):
        udp.from_npz(tmp_path / "pickle.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(FormatError):
        udp.from_npz(tmp_path / "junk.npz")
    with pytest.raises(ValueError):
        udp.from_npz(tmp_path / "junk.npz", axes="xxy")


def test_exr_round_trip_or_clear_error():
    a = make_udp()
    if not udp.exr_supported():
        with pytest.raises(FormatError, match="EXR is not available"):
            udp.encode_exr(a)
        pytest.skip(f"this OpenCV {cv2.__version__} cannot write EXR (see udpgen.io.udp docstring)")
    data = udp.encode_exr(a, axes="xzy")
    raw = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    np.testing.assert_array_equal(raw[..., 1], a[..., 2])       # the official reader's view: channel 1 = z
    np.testing.assert_array_equal(udp.decode_exr(data, axes="xzy"), a)


def test_save_load_by_extension(tmp_path):
    a = make_udp()
    udp.save(tmp_path / "a.png", a)
    udp.save(tmp_path / "a.npz", a, axes="xzy")
    assert np.abs(udp.load(tmp_path / "a.png") - a).max() <= 1e-5
    np.testing.assert_array_equal(udp.load(tmp_path / "a.npz", axes="xzy"), a)
    with pytest.raises(ValueError):
        udp.save(tmp_path / "a.jpg", a)
    with pytest.raises(FormatError):
        udp.load(tmp_path / "missing.png")


def test_validate():
    a = make_udp()
    udp.validate(a, "ok")
    udp.validate(udp.decode_png16(udp.encode_png16(a)), "decoded")   # 16-bit occupancy stays exactly 0/1
    cases = {"shape": a[..., :3], "dtype": a.astype(np.float64), "values": a * 2}
    soft = a.copy()
    soft[5, 5, 3] = 0.5
    bg = a.copy()
    bg[0, 0, 1] = 0.25
    cases.update(occupancy=soft, background=bg)
    for field, bad in cases.items():
        with pytest.raises(FormatError) as e:
            udp.validate(bad, "view3")
        assert e.value.field == field and "view3" in str(e.value)


def test_visualise_and_contact_sheet():
    a = make_udp()
    vis = udp.visualise(a)
    assert vis.shape == (12, 10, 3) and vis.dtype == np.uint8
    np.testing.assert_array_equal(vis[5, 5], np.rint(a[5, 5, :3] * 255))
    assert vis[0, 0, 0] == vis[0, 0, 1] == vis[0, 0, 2]         # neutral grey background
    rgba_vis = udp.visualise(a, alpha=True)
    np.testing.assert_array_equal(rgba_vis[..., :3][a[..., 3] > 0], vis[a[..., 3] > 0])
    np.testing.assert_array_equal(rgba_vis[..., 3], (a[..., 3] * 255).astype(np.uint8))
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 255
    sheet = contact_sheet([vis, rgba, vis], columns=2, labels=["a", "b", ""], pad=2)
    assert sheet.dtype == np.uint8 and sheet.shape == (2 * (20 + 2) + 2, 2 * (30 + 2) + 2, 3)
    np.testing.assert_array_equal(sheet[2 + 15, 34 + 25], [255, 0, 0])   # opaque red cell, below its label
    small = contact_sheet([rgba], columns=3, cell=(10, 10), pad=0)
    assert small.shape == (10, 10, 3)
    with pytest.raises(ValueError):
        contact_sheet([], 2)
    with pytest.raises(ValueError):
        contact_sheet([vis], 1, labels=["a", "b"])
