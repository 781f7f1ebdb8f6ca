"""udpgen.drawn.masks and `udpgen matte --masks`: label maps a user has, as watershed markers."""
from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from udpgen.cli.main import main
from udpgen.io.images import read_image

from tests.udpgen.drawn.test_matting import gapped_white_shirt

SHIRT = (int(0.6 * 256), 128)


def _cli(tmp_path, *extra):
    return CliRunner().invoke(main, ["matte", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                                     "--gap-px", "0", *extra])


def test_label_maps_png_and_npz_seed_the_matte(tmp_path):
    truth, img = gapped_white_shirt()
    (tmp_path / "in").mkdir()
    (tmp_path / "m").mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(img).save(tmp_path / "in" / f"{name}.png")
    lab = np.where(truth[..., 3] > 127, 3, 1).astype(np.uint8)        # background label 1, as in CoNR_Dataset's 1..9
    Image.fromarray(lab, "L").save(tmp_path / "m" / "a.png")
    np.savez(tmp_path / "m" / "b.png.npz", label=lab.astype(np.int32), other=np.zeros(2))  # CoNR_Dataset naming
    np.savez(tmp_path / "m" / "c.npz", np.zeros((10, 10), np.int32))   # does not match its image
    res = _cli(tmp_path, "--masks", str(tmp_path / "m"), "--mask-background", "1")
    assert res.exit_code == 1 and "c.npz" in res.output and "10x10" in res.output, res.output
    for name in ("a", "b"):
        # --gap-px 0 alone floods the shirt (see test_matting); the label map keeps it.
        assert read_image(tmp_path / "out" / f"{name}.png")[SHIRT][3] > 127
    assert not (tmp_path / "out" / "c.png").exists()
    plain = _cli(tmp_path)
    assert read_image(tmp_path / "out" / "a.png")[SHIRT][3] < 128 and plain.exit_code == 0


def test_bad_label_files_fail_per_image(tmp_path):
    from udpgen.drawn.masks import read_label_map
    from udpgen.errors import UdpgenError
    import pytest
    (tmp_path / "x.npz").write_bytes(b"nope")
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 4), int), b=np.zeros((4, 4), int))
    np.savez(tmp_path / "f.npz", np.zeros((4, 4), np.float32))
    for name, words in (("x.npz", "readable"), ("two.npz", "one array"), ("f.npz", "integer")):
        with pytest.raises(UdpgenError, match=words):
            read_label_map(tmp_path / name)


def test_bad_inputs_are_per_image_failures_never_a_stopped_run(tmp_path):
    from tests.udpgen.drawn.test_matting import character, on
    src, marks = tmp_path / "in", tmp_path / "marks"
    src.mkdir(), marks.mkdir()
    good = on(character(), (255, 255, 255))
    Image.fromarray(good).save(src / "good.png")
    Image.fromarray(np.full((64, 64, 3), 255, np.uint8)).save(src / "blank.png")        # no character
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(src / "tiny.png")            # too small
    Image.fromarray(good).convert("CMYK").save(src / "cmyk.jpg")
    Image.fromarray(good).convert("P").save(src / "palette.png")
    import cv2
    cv2.imwrite(str(src / "deep.png"), np.ascontiguousarray(good[..., ::-1].astype(np.uint16) * 257))  # 16-bit
    Image.fromarray(good).save(src / "scribbled.png")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(marks / "scribbled.png")    # wrong size
    res = CliRunner().invoke(main, ["matte", str(src), "--out", str(tmp_path / "out"), "--markers", str(marks),
                                    "--json"])
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    for name in ("tiny.png", "scribbled.png"):
        assert f"{name}" in res.output
    for name in ("good.png", "cmyk.png", "palette.png", "deep.png"):
        rgba = read_image(tmp_path / "out" / name)
        assert rgba.shape == (128, 128, 4) and rgba[64, 64, 3] == 255   # the character's middle is kept
    # no character: a counted failure with its message (as in handdrawn), no empty cut-out; the review
    # page lists it with that message
    rows = {r["rel"]: r for r in json.loads(res.stdout)["results"]}
    assert rows["blank.png"]["output"] is None and "no character found" in rows["blank.png"]["error"]
    assert rows["blank.png"]["target"] == "blank.png" and not (tmp_path / "out" / "blank.png").exists()
    assert json.loads(res.stdout)["failed"] == 3  # tiny, scribbled, blank
