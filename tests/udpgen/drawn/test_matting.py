"""udpgen.drawn.matting, udpgen.io.images and `udpgen matte` on small synthetic flat-coloured characters."""
from __future__ import annotations

import io
import struct
import zlib

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from udpgen.errors import FormatError, UdpgenError
from udpgen.io.images import read_image, write_png_atomic
from udpgen.drawn.matting import MattingSettings, SettingsError, alpha_is_meaningful, matte

SS = 4  # supersampling: edge alpha is the exact pixel coverage


def character(size=128, fill_shirt=(200, 60, 60), outline=(30, 20, 40), skin=(250, 220, 200), touch=False):
    """A flat-coloured figure with dark outlines: head, torso, and an arm that closes an enclosed
    background pocket against the torso. Returns (H, W, 4) uint8 straight RGBA with exact alpha."""
    S = size * SS
    col = np.zeros((S, S, 3), np.uint8)
    cov = np.zeros((S, S), np.uint8)
    t = 2 * SS

    def shape(pts, fill):
        pts = np.int32(np.array(pts) * S).reshape(-1, 1, 2)
        for img, c in ((col, fill), (cov, 255)):
            cv2.fillPoly(img, [pts], c)
        for img, c in ((col, outline), (cov, 255)):
            cv2.polylines(img, [pts], True, c, t)

    if touch:  # a close crop: parts of several colours cut by every edge of the frame
        for (x0, y0), fill in zip([(-0.1, -0.1), (0.5, -0.1), (-0.1, 0.5), (0.5, 0.5)],
                                  [fill_shirt, skin, (60, 90, 200), (90, 200, 90)]):
            shape([(x0, y0), (x0 + 0.6, y0), (x0 + 0.6, y0 + 0.6), (x0, y0 + 0.6)], fill)
        shape([(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7)], skin)
    else:
        shape([(0.38, 0.35), (0.62, 0.35), (0.66, 0.85), (0.34, 0.85)], fill_shirt)       # torso
        shape([(0.62, 0.38), (0.85, 0.45), (0.85, 0.78), (0.64, 0.78), (0.64, 0.72),       # arm loop
               (0.78, 0.72), (0.78, 0.50), (0.62, 0.46)], skin)
        head = cv2.ellipse2Poly((S // 2, int(0.22 * S)), (int(0.12 * S), int(0.13 * S)), 0, 0, 360, 5)
        shape(head / S, skin)
    a = cov.astype(np.float32) / 255
    pre = cv2.resize(col.astype(np.float32) * a[..., None], (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)
    rgb = np.where(alpha[..., None] > 0, pre / np.maximum(alpha[..., None], 1e-6), 0)
    return np.dstack([np.clip(np.round(rgb), 0, 255), np.round(alpha * 255)]).astype(np.uint8)


def on(rgba, bg):
    a = rgba[..., 3:].astype(np.float32) / 255
    return np.round(a * rgba[..., :3] + (1 - a) * np.float32(bg)).astype(np.uint8)


def jpeg(rgb, q=85):
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=q)
    return np.asarray(Image.open(buf).convert("RGB"))


def iou(alpha, truth):
    p, g = alpha > 0.5, truth[..., 3] > 127
    return np.count_nonzero(p & g) / np.count_nonzero(p | g)


POCKET = (int(0.61 * 128), int(0.71 * 128))  # (y, x) inside the arm loop


@pytest.mark.parametrize("bg,encode", [((255, 255, 255), False), ((70, 140, 200), False),
                                       ((240, 230, 120), False), ((255, 255, 255), True), ((90, 30, 60), True)])
def test_flat_backgrounds_iou(bg, encode):
    truth = character()
    img = on(truth, bg)
    img = jpeg(img) if encode else img
    r = matte(img)
    assert r.rgba.shape == (128, 128, 4) and r.rgba.dtype == np.uint8
    assert r.alpha.dtype == np.float32 and 0 <= r.alpha.min() and r.alpha.max() <= 1
    assert iou(r.alpha, truth) >= 0.97
    assert r.alpha[POCKET] < 0.5, "the enclosed background pocket between arm and torso is background"
    assert any("pocket" in n for n in r.notes)
    assert 0.5 < r.confidence <= 1


def test_soft_edges_and_decontaminated_colour():
    truth = character(fill_shirt=(40, 160, 40))
    r = matte(on(truth, (255, 255, 255)))
    edge = (truth[..., 3] > 30) & (truth[..., 3] < 225)
    assert np.abs(r.alpha[edge] - truth[edge, 3] / 255).mean() < 0.15
    # The outline is dark: its half-covered pixels must not keep the white background's tint.
    half = edge & (r.alpha > 0.3)
    assert r.rgba[half, :3].astype(int).mean() < 120


def test_white_shirt_pocket_and_markers_override():
    truth = character(fill_shirt=(255, 255, 255))
    img = on(truth, (255, 255, 255))
    shirt = (int(0.6 * 128), 64)
    auto = matte(img)
    # The shirt is exactly the background colour, but only its own outline separates it from the
    # outside background: a garment, not a pocket. The pocket behind the arm is walled off by limbs.
    assert auto.alpha[shirt] > 0.5 and auto.alpha[POCKET] < 0.5
    assert iou(auto.alpha, truth) >= 0.97
    marks = np.zeros_like(img)
    marks[POCKET[0], POCKET[1] - 2:POCKET[1] + 3] = (0, 255, 0)   # "this pocket is the character" (override)
    r = matte(img, marks)
    assert r.alpha[shirt] > 0.5 and r.alpha[POCKET] > 0.5
    assert iou(r.alpha, truth) < 1 and any("markers" in n for n in r.notes)
    red = np.zeros((128, 128, 4), np.uint8)
    red[60:64, 62:66] = (255, 0, 0, 255)                          # "the shirt is background"
    assert matte(img, red).alpha[shirt] < 0.5
    with pytest.raises(UdpgenError):
        matte(img, np.zeros((10, 10, 3), np.uint8))


def gapped_white_shirt(size=256, gap=5):
    """The white-shirt character at ``size`` px with ``gap`` px breaks cut into the torso outline on
    both sides (the outline pixels there repainted with the shirt's white, alpha kept: the drawing is
    still the character there). Returns (straight RGBA truth, the composite on white)."""
    truth = character(size, fill_shirt=(255, 255, 255))
    for y, x in ((int(0.62 * size), int(0.358 * size) - 3), (int(0.8 * size), int(0.656 * size) - 3)):
        # left torso outline, right one below the arm (a break into the arm loop would join the pocket)
        patch = truth[y:y + gap, x:x + 6]
        patch[..., :3] = 255
    return truth, on(truth, (255, 255, 255))


def test_gapped_outline_keeps_the_white_shirt():
    truth, img = gapped_white_shirt()
    shirt = (int(0.6 * 256), 128)
    r = matte(img)
    assert r.alpha[shirt] > 0.5, "the ball cannot pass the 5 px breaks: the shirt is not background"
    assert iou(r.alpha, truth) >= 0.95
    plain = matte(img, settings=MattingSettings(gap_px=0))
    assert plain.alpha[shirt] < 0.5, "without the trapped ball the flood goes through the breaks"


def white_torso_between_pockets(size=256, gap=5):
    """A white torso on a white page whose sides are walled off by two arm loops (each closing a pocket
    against the torso), its hem by a skirt: only its shoulder line faces the outside background, cut by
    two ``gap`` px breaks (0: none). Returns (straight RGBA truth, the composite on white, a torso
    pixel (y, x), the two pocket pixels)."""
    S, t = size * SS, 2 * SS
    col = np.zeros((S, S, 3), np.uint8)
    cov = np.zeros((S, S), np.uint8)
    outline = (30, 20, 40)

    def shape(pts, fill):
        pts = np.int32(np.array(pts) * S).reshape(-1, 1, 2)
        cv2.fillPoly(col, [pts], fill)
        cv2.fillPoly(cov, [pts], 255)
        cv2.polylines(col, [pts], True, outline, t)
        cv2.polylines(cov, [pts], True, 255, t)

    shape([(0.36, 0.30), (0.64, 0.30), (0.64, 0.70), (0.36, 0.70)], (255, 255, 255))    # torso
    shape([(0.34, 0.70), (0.66, 0.70), (0.68, 0.92), (0.32, 0.92)], (60, 90, 200))      # skirt
    for m in (lambda x: x, lambda x: 1 - x):                                             # arm loops
        shape([(m(0.36), 0.30), (m(0.14), 0.34), (m(0.14), 0.70), (m(0.36), 0.70), (m(0.36), 0.62),
               (m(0.22), 0.62), (m(0.22), 0.42), (m(0.36), 0.40)], (250, 220, 200))
    for x in (0.45, 0.55):  # breaks in the shoulder line, repainted with the fill (alpha kept)
        y0, x0 = int(0.30 * S) - t, int(x * S)
        col[y0:y0 + 2 * t, x0:x0 + gap * SS] = 255
    a = cov.astype(np.float32) / 255
    pre = cv2.resize(col.astype(np.float32) * a[..., None], (size, size), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA)
    rgb = np.where(alpha[..., None] > 0, pre / np.maximum(alpha[..., None], 1e-6), 0)
    truth = np.dstack([np.clip(np.round(rgb), 0, 255), np.round(alpha * 255)]).astype(np.uint8)
    pockets = [(int(0.52 * size), int(0.29 * size)), (int(0.52 * size), int(0.71 * size))]
    return truth, on(truth, (255, 255, 255)), (int(0.5 * size), size // 2), pockets


@pytest.mark.parametrize("gap", [0, 5])
def test_white_torso_between_two_pockets_is_a_garment(gap):
    # Only the shoulder line separates the torso from the outside (too little of its boundary for the
    # garment rule alone); its sides face the pockets behind the arms, through a thin outline. Pockets
    # are taken innermost first and then count as background, so the torso is a garment.
    truth, img, torso, pockets = white_torso_between_pockets(gap=gap)
    r = matte(img)
    assert r.alpha[torso] > 0.5, "the white torso is the character"
    assert all(r.alpha[p] < 0.5 for p in pockets), "the pockets behind the arms are background"
    assert iou(r.alpha, truth) >= 0.97


def shaded_blouse():
    """The test character in a toon-shaded white blouse: lit at 250 grey (1.9 Delta E from paper white),
    a bluish grey shadow over its lower part, dark outlines as usual."""
    truth = character(fill_shirt=(250, 250, 250))
    shade = (truth[..., 3] == 255) & (np.abs(truth[..., :3].astype(int) - 250).max(axis=2) <= 1)
    shade[:int(0.7 * 128)] = False
    truth[shade, :3] = (226, 226, 236)
    return truth


@pytest.mark.parametrize("encode", [False, True])
def test_shaded_white_garment_on_white_is_not_a_pocket(encode):
    truth = shaded_blouse()
    img = on(truth, (255, 255, 255))
    r = matte(jpeg(img) if encode else img)
    assert iou(r.alpha, truth) >= 0.97
    assert r.alpha[int(0.6 * 128), 64] > 0.5 and r.alpha[int(0.8 * 128), 64] > 0.5  # lit and shaded parts
    assert r.alpha[POCKET] < 0.5, "the real pocket behind the arm is still background"
    assert r.confidence > 0.5


def test_light_region_walled_off_by_limbs_needs_the_exact_background_colour():
    # Fill the pocket behind the arm with near-white (a white shirt seen through the arm): it is walled
    # off from the outside like a pocket, but 250 grey is not the 255 background: foreground.
    truth = character()
    _, labels = cv2.connectedComponents((truth[..., 3] == 0).astype(np.uint8), connectivity=4)
    inside = labels == labels[POCKET]
    assert 0 < inside.sum() < 1000
    truth[inside] = (250, 250, 250, 255)
    r = matte(on(truth, (255, 255, 255)))
    assert r.alpha[POCKET] > 0.5 and iou(r.alpha, truth) >= 0.97
    assert not any("pocket" in n for n in r.notes)


def test_dark_outline_on_dark_background_keeps_its_alpha():
    # Unmixing the outline against the light fill behind it (the nearest interior pixel on a slanted
    # edge) gave alpha 0 all round the figure; the outline pixel beside it is the right pure colour.
    truth = character(fill_shirt=(230, 200, 120), outline=(20, 20, 30))
    r = matte(on(truth, (50, 50, 70)))
    assert iou(r.alpha, truth) >= 0.985
    edge = (truth[..., 3] > 0) & (truth[..., 3] < 255)
    assert np.abs(r.alpha - truth[..., 3] / 255).sum() < 20
    assert np.abs(r.alpha[edge] - truth[edge, 3] / 255).mean() < 0.15


@pytest.mark.parametrize("encode", [False, True])
def test_garment_lost_to_a_close_background_lowers_confidence(encode):
    bg = (40, 40, 110)
    img = on(character(), bg)
    clean = matte(jpeg(img) if encode else img)
    assert clean.factors["purity"] == 1 and clean.confidence > 0.5
    # A dark skirt without outline, 7 Delta E from the background: it goes to the background (the
    # colour model cannot tell), and the confidence says so.
    cv2.rectangle(img, (40, 100), (88, 124), (50, 50, 130), -1)
    r = matte(jpeg(img) if encode else img)
    assert r.alpha[112, 64] < 0.5
    assert r.factors["purity"] < 0.5 and r.confidence < 0.5 and any("purity" in n for n in r.notes)


def test_rgba_input_keeps_alpha_and_opaque_rgba_is_matted():
    truth = character()
    r = matte(truth)
    assert np.array_equal(r.rgba, truth) and r.confidence == 1.0 and alpha_is_meaningful(truth)
    opaque = np.dstack([on(truth, (255, 255, 255)), np.full((128, 128), 255, np.uint8)])
    assert not alpha_is_meaningful(opaque)
    assert iou(matte(opaque).alpha, truth) >= 0.97


def test_touching_all_edges_gives_low_confidence():
    r = matte(on(character(touch=True), (255, 255, 255)))
    assert r.confidence < 0.3 and r.rgba.shape == (128, 128, 4)


def test_degenerate_inputs_do_not_crash():
    for img in (np.full((32, 32, 3), 255, np.uint8), np.random.default_rng(0).integers(0, 256, (40, 30, 3), np.uint8)):
        r = matte(img)
        assert 0 <= r.confidence <= 1 and r.alpha.shape == img.shape[:2]
    assert matte(np.full((32, 32, 3), 255, np.uint8)).confidence == 0
    with pytest.raises(UdpgenError):
        matte(np.zeros((32, 32), np.uint8))


def test_textured_background_falls_back_and_is_deterministic():
    from skimage.data import chelsea

    truth = character()
    img = on(truth, cv2.resize(chelsea(), (128, 128)).astype(np.float32))
    a, b = matte(img), matte(img)
    assert np.array_equal(a.rgba, b.rgba) and a.confidence == b.confidence
    assert any("textured" in n for n in a.notes) and a.confidence <= 0.5
    assert 0 <= a.factors["edges"] <= 1 and a.factors["purity"] == 1


def test_prior_replaces_grabcut_on_textured_backgrounds_only():
    from skimage.data import chelsea

    truth = character()
    # a network's mask: right in the large, coarse at the edge (4x fewer pixels per side, as conr.matte's
    # 128 px output of a 512 px drawing)
    coarse = cv2.resize((truth[..., 3] > 127).astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    prior = cv2.resize(coarse, (128, 128), interpolation=cv2.INTER_LINEAR)
    img = on(truth, cv2.resize(chelsea(), (128, 128)).astype(np.float32))
    r = matte(img, prior=prior)
    assert any("network" in n for n in r.notes)
    assert iou(r.alpha, truth) >= 0.95 > iou(matte(img).alpha, truth)  # grabCut alone: 0.85
    flat = on(truth, (255, 255, 255))
    wrong = np.zeros((128, 128), np.float32)                 # a useless mask is not used on a flat background
    assert np.array_equal(matte(flat, prior=wrong).alpha, matte(flat).alpha)
    calls = []                                                # ... nor, given as a callable, computed
    assert np.array_equal(matte(flat, prior=lambda: calls.append(1) or wrong).alpha, matte(flat).alpha)
    assert not calls and np.array_equal(matte(img, prior=lambda: prior).alpha, r.alpha)
    with pytest.raises(UdpgenError, match="prior"):
        matte(img, prior=np.zeros((10, 10), np.float32))


@pytest.mark.parametrize("kw", [{"bg_threshold": -1}, {"margin_px": 0}, {"edge_px": 1.5}, {"min_border_share": 2.0},
                                {"texture_fallback": 1}, {"guided_eps": float("nan")}, {"pocket_max_hug": 1.5},
                                {"pocket_gap_px": 0.0}])
def test_bad_settings_name_field_and_value(kw):
    (name, value), = kw.items()
    with pytest.raises(SettingsError, match=name) as e:
        MattingSettings(**kw)
    assert repr(value) in str(e.value)


# --- images.py -----------------------------------------------------------------------------------

def test_read_image_modes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 20, 3), np.uint8)
    cases = {
        "grey.png": (Image.fromarray(rgb[..., 0]), (12, 20, 3)),
        "grey16.png": (Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), (12, 20, 3)),
        "palette.png": (Image.fromarray(rgb).convert("P"), (12, 20, 3)),
        "cmyk.jpg": (Image.fromarray(rgb).convert("CMYK"), (12, 20, 3)),
        "cmyk.tif": (Image.fromarray(rgb).convert("CMYK"), (12, 20, 3)),
        "la.png": (Image.fromarray(rgb[..., 0]).convert("LA"), (12, 20, 4)),
        "rgba.png": (Image.fromarray(np.dstack([rgb, rgb[..., 0]])), (12, 20, 4)),
    }
    for name, (im, shape) in cases.items():
        im.save(tmp_path / name)
        out = read_image(tmp_path / name)
        assert out.shape == shape and out.dtype == np.uint8, name
    assert np.array_equal(read_image(tmp_path / "grey16.png")[..., 0], rgb[..., 0])
    pal = Image.fromarray(rgb[..., 0] // 64).convert("P")
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal_t.png", transparency=0)
    assert read_image(tmp_path / "pal_t.png").shape == (12, 20, 4)
    cv2.imwrite(str(tmp_path / "rgb16.png"), (rgb.astype(np.uint16) * 257)[..., ::-1])
    assert np.abs(read_image(tmp_path / "rgb16.png").astype(int) - rgb).max() <= 1


def test_read_image_exif_orientation(tmp_path):
    im = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "o.jpg", exif=exif)
    assert read_image(tmp_path / "o.jpg").shape == (20, 10, 3)


def _png_claiming(w, h):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_and_broken_files_raise_format_error(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_claiming(100_000, 100_000))
    with pytest.raises(FormatError, match="bomb") as e:
        read_image(bomb)
    assert e.value.path == str(bomb) and e.value.field == "header.size"
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    (tmp_path / "trunc.png").write_bytes(_png_claiming(64, 64))  # IDAT far too short
    for name in ("junk.png", "trunc.png", "missing.png"):
        with pytest.raises(FormatError) as e:
            read_image(tmp_path / name)
        assert name in str(e.value)
    with pytest.raises(FormatError):
        read_image(tmp_path)


def test_write_png_atomic_round_trip(tmp_path):
    rgba = character(32)
    p = write_png_atomic(tmp_path / "sub" / "x.png", rgba)
    assert np.array_equal(read_image(p), rgba)
    assert [f.name for f in (tmp_path / "sub").iterdir()] == ["x.png"]  # no temp file left behind
    with pytest.raises(ValueError):
        write_png_atomic(tmp_path / "y.png", rgba.astype(np.float32))


# --- the command ---------------------------------------------------------------------------------

def test_cli_matte_folder_report_and_failures(tmp_path):
    from udpgen.cli.matting import register

    @click.group()
    def group():
        pass

    register(group)
    src = tmp_path / "in"
    (src / "alice").mkdir(parents=True)
    Image.fromarray(on(character(), (255, 255, 255))).save(src / "alice" / "a.png")
    Image.fromarray(character()).save(src / "alice" / "cut.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    out = tmp_path / "out"
    res = CliRunner().invoke(group, ["matte", str(src), "--out", str(out), "--report", "--json"])
    assert res.exit_code == 1, res.output
    assert "broken.jpg" in res.output
    assert read_image(out / "alice" / "a.png").shape == (128, 128, 4)
    assert np.array_equal(read_image(out / "alice" / "cut.png"), character())
    assert (out / "report.png").is_file() and (out / "report.html").is_file()
    page = (out / "report.html").read_text()
    assert page.index("broken.jpg") < page.index("a.png")  # failures and doubtful ones first
    ok = CliRunner().invoke(group, ["matte", str(src / "alice" / "a.png"), "--out", str(out)])
    assert ok.exit_code == 0, ok.output
    (src / "broken.jpg").unlink()
    inside = CliRunner().invoke(group, ["matte", str(src), "--out", str(src / "cut"), "--json"])
    assert inside.exit_code == 0, inside.output
    again = CliRunner().invoke(group, ["matte", str(src), "--out", str(src / "cut"), "--json"])
    assert again.output.count('"input"') == 2  # its own outputs inside INPUT are not inputs


def test_cli_matte_gap_px(tmp_path):
    from udpgen.cli.main import main
    _, img = gapped_white_shirt()
    Image.fromarray(img).save(tmp_path / "g.png")
    shirt = (int(0.6 * 256), 128)
    for gap, fg in (([], True), (["--gap-px", "0"], False)):
        res = CliRunner().invoke(main, ["matte", str(tmp_path / "g.png"), "--out", str(tmp_path / "o")] + gap)
        assert res.exit_code == 0, res.output
        assert (read_image(tmp_path / "o" / "g.png")[shirt][3] > 127) == fg
    bad = CliRunner().invoke(main, ["matte", str(tmp_path / "g.png"), "--out", str(tmp_path / "o"),
                                    "--gap-px", "-1"])
    assert bad.exit_code == 1 and "gap_px" in bad.output and "Traceback" not in bad.output
