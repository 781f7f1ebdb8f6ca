"""conr.infer / conr.video / conr.evaluate and `conr render|detect|evaluate`: a tiny randomly initialised
checkpoint renders from UDP files (16-bit PNG, the official .npz) and from an MMD model + motion, the
encode-once path equals per-frame encoding, detection writes valid UDP files, evaluation prints the
n = 1..k table, and bad input is one line with exit code 1."""
from __future__ import annotations

import dataclasses
import json
import subprocess

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from conr.cli import main
from conr.config import run_preset
from conr.infer import Animator, box_around, crop, load_sheet, model_from_checkpoint, paste, save_model_checkpoint
from conr.nn.conr import CoNR
from udpgen.io import udp as udp_io
from udpgen.io.images import write_png_atomic

S = 64


def toy_udp(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """(h, w, 4) float32 UDP: an ellipse whose landmarks are its own normalised coordinates."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    v, u = (yy - cy) / ry, (xx - cx) / rx
    occ = (u ** 2 + v ** 2 <= 1).astype(np.float32)
    out = np.stack([(u + 1) / 2, (v + 1) / 2, np.full_like(u, 0.5), occ], -1) * occ[..., None]
    return np.clip(out, 0, 1).astype(np.float32)


def toy_rgba(h: int, w: int, colour=(220, 60, 90)) -> np.ndarray:
    """(h, w, 4) uint8 cut-out: a striped ellipse on transparency."""
    img = np.zeros((h, w, 4), np.uint8)
    cv2.ellipse(img, (w // 2, h // 2), (w // 3, h * 2 // 5), 0, 0, 360, (*colour, 255), -1)
    img[::6, :, :3] //= 2
    img[img[..., 3] == 0] = 0
    return img


def run(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    return res


def assert_one_line_error(res, *fragments):
    assert res.exit_code == 1, res.output
    bars = ("conr render:", "conr evaluate:")
    lines = [ln for ln in res.output.splitlines() if ln.strip() and not any(b in ln for b in bars)]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    cfg = run_preset("tiny")
    return save_model_checkpoint(CoNR(cfg.model), cfg, tmp_path_factory.mktemp("ck") / "tiny.pt")


@pytest.fixture(scope="module")
def sheet_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("sheet")
    write_png_atomic(d / "a.png", toy_rgba(64, 48))
    write_png_atomic(d / "b.png", toy_rgba(100, 130, (40, 160, 220)))      # another size: cropped alike
    rgb = np.full((80, 80, 3), 255, np.uint8)                              # no alpha: matted
    cv2.circle(rgb, (40, 40), 22, (30, 120, 40), -1)
    cv2.imwrite(str(d / "c.jpg"), rgb[..., ::-1])
    return d


@pytest.fixture(scope="module")
def pose_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("poses")
    udp_io.save(d / "p1.udp.png", toy_udp(64, 64, 30, 32, 20, 10))
    udp_io.save(d / "p2.udp.png", toy_udp(80, 48, 40, 20, 30, 12))         # another resolution
    np.savez(d / "p10.npz", i=toy_udp(64, 64, 34, 30, 16, 14))             # the official layout, key 'i'
    return d


def test_crop_and_paste_round_trip():
    mask = np.zeros((50, 70), bool)
    mask[5:45, 60:69] = True                                               # near the right border
    box = box_around(mask, 0.1)
    assert box.side == 44 and box.x0 + box.side > 70                       # leaves the image: zero padded
    img = np.random.default_rng(0).random((50, 70, 4)).astype(np.float32) * mask[..., None]
    back = paste(crop(img, box, box.side), box)
    np.testing.assert_array_equal(back[mask], img[mask])


def test_render_from_udp_files(ckpt, sheet_dir, pose_dir, tmp_path):
    out = tmp_path / "out"
    res = run("render", "--checkpoint", ckpt, "--sheet", sheet_dir, "--poses", pose_dir, "--out", out,
              "--no-video", "--batch", 2, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout[res.stdout.index("{"):])
    assert summary["frames"] == 3 and summary["poses"] == ["p1", "p2", "p10"]      # natural order
    assert set(summary["matted"]) == {"c.jpg"} and summary["sheet"] == ["a.png", "b.png", "c.jpg"]
    shapes = [cv2.imread(str(out / f"frame_{i:05d}.png"), cv2.IMREAD_UNCHANGED).shape for i in range(3)]
    assert shapes == [(64, 64, 4), (80, 48, 4), (64, 64, 4)]                       # each pose's own size
    frame = cv2.imread(str(out / "frame_00000.png"), cv2.IMREAD_UNCHANGED)
    box = box_around(toy_udp(64, 64, 30, 32, 20, 10)[..., 3] > 0)
    outside = np.ones((64, 64), bool)
    outside[max(box.y0, 0):box.y0 + box.side, max(box.x0, 0):box.x0 + box.side] = False
    assert frame[outside, 3].max() == 0                                            # pasted into its crop only
    assert (out / "render.json").is_file()


def test_encode_once_equals_per_frame_encoding(ckpt, sheet_dir, pose_dir):
    from conr.infer import list_pose_files, read_pose_files

    model, cfg = model_from_checkpoint(ckpt)
    sheet = load_sheet(sheet_dir, cfg.model.image_size)
    assert sheet.refs.shape == (3, 4, S, S) and 0 <= float(sheet.refs.min()) <= float(sheet.refs.max()) <= 1
    poses = list(read_pose_files(list_pose_files(pose_dir)))
    once = list(Animator(model, sheet.refs, batch=2).frames(poses))
    each = list(Animator(model, sheet.refs, batch=3, encode_once=False).frames(poses))
    for a, b in zip(once, each):
        np.testing.assert_allclose(a.crop, b.crop, atol=1e-5)
        assert np.abs(a.rgba.astype(int) - b.rgba.astype(int)).max() <= 1


def test_render_from_mmd_model_and_motion(gl, ckpt, sheet_dir, sample_dir, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    from conr.video import ffmpeg_exe

    out = tmp_path / "out"
    res = run("render", "--checkpoint", ckpt, "--sheet", sheet_dir, "--model", sample_dir / "sample.pmx",
              "--motion", sample_dir / "wave.vmd", "--frames", "0:6:2", "--frame-size", 96, "--out", out,
              "--save-poses", "--alpha-video", out / "anim.webm", "--fps", 10)
    assert res.exit_code == 0, res.output
    for i in range(3):
        assert cv2.imread(str(out / f"frame_{i:05d}.png"), cv2.IMREAD_UNCHANGED).shape == (96, 96, 4)
        udp_io.validate(udp_io.load(out / "poses" / f"frame_{i:05d}.udp.png"))
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-c:v", "libvpx-vp9", "-i", str(out / "anim.webm"), "-f",
                          "rawvideo", "-pix_fmt", "rgba", "-"], capture_output=True, check=True).stdout
    video = np.frombuffer(raw, np.uint8).reshape(-1, 96, 96, 4)
    assert len(video) == 3 and video[..., 3].min() == 0                           # the alpha plane survives
    assert (out / "video.mp4").stat().st_size > 0


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".apng", ".mov"])
def test_video_kinds_and_letterbox(ext, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    from conr.video import KINDS, VideoWriter, ffmpeg_exe

    frames = [toy_rgba(63, 45), toy_rgba(90, 90)]                                 # odd sides; another size
    with VideoWriter(tmp_path / f"v{ext}", fps=5) as w:
        for f in frames:
            w.write(f)
    decode = ["-c:v", "libvpx-vp9"] if ext == ".webm" else []          # the native vp9 decoder drops alpha
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", *decode, "-i", str(tmp_path / f"v{ext}"), "-fps_mode",
                          "passthrough", "-f", "rawvideo", "-pix_fmt", "rgba", "-"], capture_output=True,
                         check=True).stdout
    video = np.frombuffer(raw, np.uint8).reshape(-1, 64, 46, 4)
    assert len(video) == 2
    corner = video[0, 0, 0]
    assert (corner[3] == 0) if KINDS[ext][4] else corner[:3].min() >= 250        # transparent / white (yuv)
    assert not list(tmp_path.glob(".*tmp*"))


def test_an_interrupted_video_leaves_neither_file_nor_temp_and_two_writers_do_not_collide(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    from conr.video import VideoWriter

    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(tmp_path / "v.mp4") as w:
            w.write(toy_rgba(32, 32))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    # two writers of one path in one process (a pid-named temp would be shared): each finishes whole
    a, b = VideoWriter(tmp_path / "v.mp4"), VideoWriter(tmp_path / "v.mp4")
    a.write(toy_rgba(32, 32))
    b.write(toy_rgba(32, 32))
    assert a._tmp != b._tmp
    a.close()
    b.close()
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_detect_writes_valid_udp_files(ckpt, sheet_dir, tmp_path):
    out = tmp_path / "det"
    res = run("detect", "--checkpoint", ckpt, sheet_dir, "--out", out, "--npz", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["images"] == 3
    for stem, shape in (("a", (64, 48)), ("b", (100, 130)), ("c", (80, 80))):
        udp = udp_io.load(out / f"{stem}.udp.png")
        udp_io.validate(udp)
        assert udp.shape[:2] == shape
        np.testing.assert_allclose(udp_io.from_npz(out / f"{stem}.udp.npz"), udp, atol=1e-5)
        assert (out / "vis" / f"{stem}.png").is_file()
    alpha = cv2.imread(str(sheet_dir / "a.png"), cv2.IMREAD_UNCHANGED)[..., 3]
    np.testing.assert_array_equal(udp_io.load(out / "a.udp.png")[..., 3] > 0, alpha >= 128)  # cut-out: its alpha


def test_evaluate_prints_the_n_table(ckpt, tmp_path):
    from conr.toy import write_toy_shards

    write_toy_shards(tmp_path, characters=6, views=5, size=64, val_characters=2, per_shard=2, backgrounds=2)
    res = run("evaluate", "--checkpoint", ckpt, "--data", tmp_path, "--views", 3, "--samples", 4)
    assert res.exit_code == 0, res.output
    assert "L_photo" in res.stdout and "nearest-ref" in res.stdout and "LPIPS skipped" in res.stdout
    res = run("evaluate", "--checkpoint", ckpt, "--data", tmp_path, "--views", 3, "--samples", 4, "--json")
    result = json.loads(res.stdout[res.stdout.index("{"):])
    assert [r["n"] for r in result["rows"]] == [1, 2, 3] and result["samples"] == 2   # 2 val characters
    assert all(0 < r["photo"] < 1 and 0 < r["photo_gt"] < 1 and 0 <= r["nearest_ref"] < 1 for r in result["rows"])
    res = run("evaluate", "--checkpoint", ckpt, "--data", tmp_path, "--source", "holdout", "--holdout", 1,
              "--views", 2, "--samples", 3, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[res.stdout.index("{"):])["source"] == "holdout"


def test_bad_inputs_are_one_line(ckpt, sheet_dir, pose_dir, sample_dir, tmp_path):
    out = tmp_path / "out"
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["render", "--checkpoint", ckpt, "--out", out, "--no-video"]
    assert_one_line_error(run(*base, "--sheet", empty, "--poses", pose_dir), "no character images")
    assert_one_line_error(run(*base, "--sheet", sheet_dir, "--poses", empty), "no UDP files")
    bad_poses = tmp_path / "bad_poses"
    bad_poses.mkdir()
    cv2.imwrite(str(bad_poses / "x.png"), np.zeros((8, 8, 3), np.uint8))                 # 8-bit: not a UDP
    assert_one_line_error(run(*base, "--sheet", sheet_dir, "--poses", bad_poses), "x.png", "bit depth 8")
    assert_one_line_error(run(*base, "--sheet", sheet_dir, "--poses", pose_dir, "--size", 50), "multiple of 32")
    # checkpoints of another architecture: a bare state dict, and weights that do not fit the stored config
    bare = tmp_path / "bare.pt"
    torch.save(CoNR(run_preset("tiny").model).state_dict(), bare)
    assert_one_line_error(run(*base, "--checkpoint", bare, "--sheet", sheet_dir, "--poses", pose_dir),
                          "not a conr-train/2", "another architecture")
    cfg = run_preset("tiny")
    other = dataclasses.replace(cfg, model=cfg.model.replace(renderer_widths=(16, 16, 8, 8)))
    mixed = save_model_checkpoint(CoNR(other.model), cfg, tmp_path / "mixed.pt")
    assert_one_line_error(run(*base, "--checkpoint", mixed, "--sheet", sheet_dir, "--poses", pose_dir),
                          "another architecture", "shape mismatches")
    # a motion for another skeleton
    from udpgen.mmd import load
    from udpgen.mmd.vmd import write_vmd

    wave = load(sample_dir / "wave.vmd")
    names = tuple(b"bone%d" % i for i in range(len(wave.bones.names)))
    write_vmd(dataclasses.replace(wave, bones=dataclasses.replace(wave.bones, names=names)), tmp_path / "other.vmd")
    assert_one_line_error(run(*base, "--sheet", sheet_dir, "--model", sample_dir / "sample.pmx", "--motion",
                              tmp_path / "other.vmd"), "another skeleton")
    assert_one_line_error(run("detect", "--checkpoint", ckpt, empty, "--out", out), "no images")
    assert_one_line_error(run("evaluate", "--checkpoint", ckpt, "--data", empty), "no committed")
