"""``udpgen render``: files, formats, errors as one line."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from udpgen.errors import UdpgenError



def run(*args):
    from udpgen.cli.main import main

    return CliRunner().invoke(main, ["render", *map(str, args)])


def test_parse_frames():
    from udpgen.rig.motion import parse_frames

    assert parse_frames("5", (0, 100)) == [5.0]
    assert parse_frames("0:30:10", (0, 100)) == [0.0, 10.0, 20.0]
    assert parse_frames("90:", (0, 92)) == [90.0, 91.0, 92.0]
    assert parse_frames("0:1:0.5", (0, 9)) == [0.0, 0.5]
    for bad in ("a:b", "3:1", "0:10:0", "0:1:2:3", "0:1e9:0.0001"):
        with pytest.raises(UdpgenError):
            parse_frames(bad, (0, 100))


def test_render_png(gl, sample_dir, tmp_path):
    from udpgen.io.udp import decode_png16, validate

    res = run(sample_dir / "sample.pmx", "--motion", sample_dir / "wave.vmd", "--frames", "0:20:10", "--views", 2,
              "--size", 64, "--seed", 3, "--out", tmp_path, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output[res.output.index("{"):])
    assert summary["written"] == 4 and summary["poses"] == 2
    for p in range(2):
        for v in range(2):
            stem = tmp_path / f"sample_{p:04d}_{v:02d}"
            udp = decode_png16((stem.parent / (stem.name + ".udp.png")).read_bytes())
            validate(udp)
            import cv2

            rgba = cv2.imread(str(stem.parent / (stem.name + ".rgba.png")), cv2.IMREAD_UNCHANGED)
            assert rgba.shape == (64, 64, 4)
            np.testing.assert_array_equal(udp[..., 3] > 0, rgba[..., 3] > 0)
            meta = json.loads((stem.parent / (stem.name + ".json")).read_text())
            assert meta["camera"]["intrinsics"]["fx"] > 0 and len(meta["camera"]["world_to_camera"]) == 4
    assert (tmp_path / "preview.png").is_file() and (tmp_path / "render.json").is_file()
    assert not list(tmp_path.glob("*.tmp"))
    # same arguments, same cameras
    again = tmp_path / "again"
    run(sample_dir / "sample.pmx", "--motion", sample_dir / "wave.vmd", "--frames", "0:20:10", "--views", 2,
        "--size", 64, "--seed", 3, "--out", again)
    assert (again / "sample_0001_01.json").read_text() == (tmp_path / "sample_0001_01.json").read_text()


def test_render_npz_random_poses(gl, sample_dir, tmp_path):
    from udpgen.io.udp import from_npz

    res = run(sample_dir / "sample.pmx", "--random-poses", 2, "--size", 48, "--out", tmp_path, "--format", "npz")
    assert res.exit_code == 0, res.output
    udp = from_npz(tmp_path / "sample_0001_00.udp.npz")
    assert udp.shape == (48, 48, 4) and udp[..., 3].any()


def test_random_poses_without_sampler(gl, sample_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "udpgen.rig.sampler", None)     # import fails
    res = run(sample_dir / "sample.pmx", "--random-poses", 2, "--size", 48, "--out", tmp_path)
    assert res.exit_code == 1 and "PoseSampler" in res.output


@pytest.mark.parametrize("args, code, text", [
    (["--size", 0], 1, "size"),
    (["--frames", "0:10"], 2, "--frames needs --motion"),
    (["--random-poses", 2, "--motion", "x.vmd"], 2, "not both"),
])
def test_errors(gl, sample_dir, tmp_path, args, code, text):
    res = run(sample_dir / "sample.pmx", "--out", tmp_path, *args)
    assert res.exit_code == code, res.output
    assert text in res.output and "Traceback" not in res.output


def test_missing_model(tmp_path):
    res = run(tmp_path / "nope.pmx", "--out", tmp_path)
    assert res.exit_code == 1 and "Traceback" not in res.output
