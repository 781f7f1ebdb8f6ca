"""pipelines.demo: the one-command demo (train on a generated family, animate a held-out character) end to end on a short budget (slow), resumed by a rerun, and its
refusal of --gpu without CUDA (fast)."""
from __future__ import annotations

import json
import tarfile

import cv2
import pytest
import torch


@pytest.mark.slow
def test_demo_end_to_end_and_resume(gl, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    from pipelines.demo import main

    args = ["--out", str(tmp_path), "--minutes", "1", "--steps", "40"]
    assert main(args) == 0
    report = json.loads((tmp_path / "demo.json").read_text())
    assert report["train"]["last"]["step"] == 40 and not report["train"]["stopped_by_clock"]
    sheet = cv2.imread(report["animate"]["contact_sheet"])
    assert sheet.shape[1] == 4 * (128 + 4) + 4 and sheet.shape[0] > 13 * 128       # 4 columns, sheet + 12 rows
    wave, novel = report["animate"]["wave"], report["animate"]["novel"]
    assert wave["count"] == len(list((tmp_path / "wave").glob("frame_*.png"))) > 60
    assert novel["count"] == len(list((tmp_path / "novel").glob("frame_*.png"))) == 12
    assert (tmp_path / "wave" / "video.mp4").stat().st_size > 0 and (tmp_path / "wave" / "video.webm").is_file()
    # the animated character is one the training never saw: the by-character val split
    held = report["heldout"]
    assert held == report["animate"]["heldout"]
    from udpgen.shards.schema import split_of
    assert split_of(held["character"]) == "val" and held["frames"] == wave["count"] + novel["count"]
    train_keys = [n for t in tmp_path.glob("data/train-*.tar") for n in tarfile.open(t).getnames()]
    assert train_keys and not any(n.startswith(held["character"] + "-") for n in train_keys)
    # CoNR draws the unseen character better than copying the sheet image nearest to the target's UDP (40
    # steps do not beat the flat mean-colour baseline yet: it is reported, not asserted)
    assert held["photo_conr"] < held["photo_nearest_ref"], held
    assert 0 < held["photo_mean_colour"] < 1
    # a rerun resumes: the shards are kept, the training continues from its checkpoint (already done here)
    assert main(args) == 0
    again = json.loads((tmp_path / "demo.json").read_text())
    assert again["data"]["shards_written"] == 0 and again["data"]["shards_skipped_complete"] > 0
    assert again["train"]["last"]["step"] == 40


def test_demo_gpu_flag_needs_cuda(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from pipelines.demo import main

    assert main(["--gpu", "--out", str(tmp_path)]) == 1
    assert "CUDA is not available" in capsys.readouterr().err
