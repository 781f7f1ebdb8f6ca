"""conr.matte: the segmentation network for busy backgrounds, `conr train-matte`, `conr matte-masks` and
`udpgen matte --model`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conr.cli import main as conr_cli
from conr.matte import MatteError, _views, composites, load_matte, predict, train_matte
from conr.toy import write_toy_shards
from udpgen.backgrounds.sets import iter_backgrounds
from udpgen.cli.main import main as udpgen_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("matte")
    write_toy_shards(d / "data", characters=8, views=4, size=64, val_characters=1, per_shard=4)
    result = train_matte(d / "data", d / "m.pt", steps=60, size=32, batch=8, seed=0)
    return d, result


def test_it_learns_cut_outs_on_busy_backgrounds(trained):
    d, result = trained
    assert result["loss_last"] < 0.8 * result["loss_first"]
    net, size = load_matte(d / "m.pt")
    bgs = [img for _, img in iter_backgrounds(None, 64, 5)]            # photos and noise it saw other crops of
    x, a = composites(_views(d / "data"), 64, np.random.default_rng(9), 16, bgs)
    ious, cover = [], []
    for img, gt in zip((x.numpy().transpose(0, 2, 3, 1) * 255).astype(np.uint8), a[:, 0].numpy() > 0.5):
        p = predict(net, size, img) >= 0.5
        assert p.shape == gt.shape
        ious.append((p & gt).sum() / max(1, (p | gt).sum()))
        cover.append(gt.mean())
    # far better than calling everything the character (IoU = its coverage, about 0.1)
    assert np.mean(ious) > 0.4 > 2 * np.mean(cover)


def test_label_maps_feed_udpgen_matte(trained, tmp_path):
    d, _ = trained
    src = tmp_path / "in"
    (src / "alice").mkdir(parents=True)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (80, 60, 3), dtype=np.uint8)            # a busy background ...
    img[20:60, 20:40] = (240, 60, 60)                                  # ... and a figure on it
    Image.fromarray(img).save(src / "alice" / "a.png")
    r = CliRunner().invoke(conr_cli, ["matte-masks", str(src), "--model", str(d / "m.pt"), "--out",
                                      str(tmp_path / "masks"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["written"] == 1
    lab = np.asarray(Image.open(tmp_path / "masks" / "alice" / "a.png"))
    assert lab.shape == (80, 60) and set(np.unique(lab)) <= {0, 1}
    for extra in (["--masks", str(tmp_path / "masks")], ["--model", str(d / "m.pt")]):
        out = tmp_path / ("cut" + extra[0])
        r = CliRunner().invoke(udpgen_cli, ["matte", str(src), "--out", str(out), *extra])
        assert r.exit_code == 0, r.output
        assert np.asarray(Image.open(out / "alice" / "a.png")).shape == (80, 60, 4)


def test_bad_inputs_are_one_line(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MatteError, match="junk.pt: not a readable matte checkpoint"):
        load_matte(tmp_path / "junk.pt")
    r = CliRunner().invoke(udpgen_cli, ["matte", str(tmp_path), "--out", str(tmp_path / "o"), "--model",
                                        str(tmp_path / "junk.pt")])
    assert r.exit_code == 1 and "junk.pt: not a readable matte checkpoint" in r.output and "Traceback" not in r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(conr_cli, ["train-matte", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "m.pt")])
    assert r.exit_code == 1 and "no train-/val-*.tar shards" in r.output
    assert not (tmp_path / "m.pt").exists()
