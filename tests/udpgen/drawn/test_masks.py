"""udpgen.drawn.masks and `udpgen matte --masks`: label maps a user has, as watershed markers."""
from __future__ import annotations

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
