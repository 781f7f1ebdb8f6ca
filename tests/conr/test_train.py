"""conr.train and `conr train`: the loss goes down, a killed + resumed run equals an uninterrupted one,
DDP on two CPU processes equals one process with the same global batch, checkpoints load with
weights_only=True, and bad input (config typos, data folders, checkpoints) is one clear line."""
from __future__ import annotations

import io
import json
import os
import socket
import sys
import tarfile

import pytest
import torch
import torch.multiprocessing as mp
from click.testing import CliRunner

from conr.cli import main
from conr.config import load_config
from conr.checkpoint import CheckpointError
from conr.data import train_loader
from conr.errors import ConfigError
from conr.toy import write_toy_shards
from conr.train import lr_at, train

FAST = ["data.num_workers=0", "train.progress=false", "train.tensorboard=false", "train.val_at_start=false",
        "train.val_every=0", "train.log_every=1", "train.batch_size=4", "train.warmup_steps=2"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy")
    write_toy_shards(d, characters=10, views=5, size=64, val_characters=2, per_shard=2)
    return d


def tiny(*overrides):
    return load_config("tiny", [*FAST, *overrides])


def records(run, split="train"):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def quiet(*_):
    pass


def test_training_lowers_the_loss(shards, tmp_path):
    result = CliRunner().invoke(main, ["train", "--config", "tiny", "--data", str(shards), "--out", str(tmp_path),
                                       "--steps", "30", "--json", *sum((["--set", o] for o in FAST), []),
                                       "--set", "train.val_every=30"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["step"] == 30 and summary["val"]["samples"] == 2
    losses = [r["loss"] for r in records(tmp_path)]
    photo = [r["photo"] for r in records(tmp_path)]
    assert len(losses) == 30
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5]) and sum(photo[-5:]) < 0.8 * sum(photo[:5])
    assert (tmp_path / "config.yaml").is_file() and (tmp_path / "ckpt" / "last.pt").is_file()


def test_kill_and_resume_equals_uninterrupted(shards, tmp_path):
    # checkpoints every 3 steps, data segments of 4: the resume from step 6 re-creates the segment of
    # step 4 and skips its first two batches
    cfg = tiny("train.steps=9", "train.ckpt_every=3", "data.segment_steps=4", "train.val_every=4")
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    train(cfg, shards, whole, log=quiet)
    train(cfg, shards, cut, log=quiet, _stop_after=7)               # "killed" after step 7, last ckpt at 6
    assert [r["step"] for r in records(cut)] == list(range(1, 8))
    train(cfg, shards, cut, resume=True, log=quiet)
    assert [r["step"] for r in records(cut)] == list(range(1, 10))  # steps 7.. were dropped and redone
    for a, b in zip(records(whole), records(cut)):
        assert {k: a[k] for k in ("loss", "udp", "mask", "cons", "photo", "lr", "grad_norm")} == \
               {k: b[k] for k in ("loss", "udp", "mask", "cons", "photo", "lr", "grad_norm")}
    assert [r["photo"] for r in records(whole, "val")] == [r["photo"] for r in records(cut, "val")]
    sa = torch.load(whole / "ckpt" / "last.pt", weights_only=True)
    sb = torch.load(cut / "ckpt" / "last.pt", weights_only=True)
    assert sa["step"] == sb["step"] == 9
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])


def test_checkpoint_is_plain_and_resume_refuses_another_config(shards, tmp_path):
    cfg = tiny("train.steps=2")
    train(cfg, shards, tmp_path, log=quiet)
    ck = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    assert ck["config"] == cfg.to_dict() and ck["step"] == 2
    assert set(ck["rng"]) == {"python", "numpy", "torch", "cuda"}
    assert {"optimizer", "scaler", "scheduler", "data"} <= set(ck)
    with pytest.raises(CheckpointError, match="already holds a checkpoint"):
        train(cfg, shards, tmp_path, log=quiet)
    with pytest.raises(CheckpointError, match="train.lr: checkpoint 0.001, config 0.0005"):
        train(tiny("train.steps=3", "train.lr=5e-4"), shards, tmp_path, resume=True, log=quiet)
    with pytest.raises(CheckpointError, match="model.views"):
        train(tiny("train.steps=3", "model.views=3"), shards, tmp_path, resume=True, log=quiet)
    summary = train(tiny("train.steps=3"), shards, tmp_path, resume=True, log=quiet)  # steps may grow
    assert summary["step"] == 3
    (tmp_path / "ckpt" / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="cannot be read as a conr checkpoint"):
        train(cfg, shards, tmp_path, resume=True, log=quiet)


def test_tensorboard_events_image_grid_and_its_absence(shards, tmp_path, monkeypatch):
    from conr.train import image_grid

    grid = image_grid({"refs": torch.rand(2, 4, 4, 8, 8), "target_rgba": torch.rand(2, 4, 8, 8),
                       "pred": torch.rand(2, 4, 8, 8), "target_udp": torch.rand(2, 4, 8, 8),
                       "pred_udp": torch.rand(2, 4, 8, 8)})
    assert grid.shape == (3, 2 * 8, (4 + 4) * 8) and 0 <= float(grid.min()) and float(grid.max()) <= 1
    lines = []
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # as if tensorboard were not installed
    train(tiny("train.steps=1", "train.tensorboard=true"), shards, tmp_path / "none", log=lines.append)
    assert any("TensorBoard off: the tensorboard package is not installed" in ln for ln in lines)
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard")
    pytest.importorskip("torch.utils.tensorboard")
    train(tiny("train.steps=1", "train.tensorboard=true", "train.val_at_start=true"), shards, tmp_path / "tb",
          log=quiet)
    assert list((tmp_path / "tb" / "tb").glob("events.out.tfevents.*"))


def test_lr_schedule_warms_up_then_decays():
    cfg = tiny("train.steps=100", "train.warmup_steps=10", "train.lr=1e-3", "train.min_lr=1e-5").train
    lrs = [lr_at(s, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lr_at(100, cfg) == pytest.approx(1e-5)


@pytest.mark.parametrize("args,needle", [
    (["--set", "train.lrr=1"], "train.lrr=1: unknown train field"),
    (["--set", "data.crop_min=2"], "data.crop_min=2.0: expected a number in (0, 1]"),
    (["--set", "model.warp=false"], "model.warp=False: unknown model field"),
    (["--set", "train.batch_size=3"], "train.batch_size=3: must be a multiple of"),
    (["--set", "lr=1"], "expected SECTION.FIELD=VALUE"),
])
def test_config_errors_name_the_key(shards, tmp_path, args, needle):
    result = CliRunner().invoke(main, ["train", "--config", "tiny", "--data", str(shards), "--out",
                                       str(tmp_path), "--set", "train.grad_accum=2", *args])
    assert result.exit_code == 1 and result.output.strip().count("\n") == 0, result.output
    assert needle in result.output


def test_yaml_off_is_a_string_for_a_choice_and_false_for_a_switch(tmp_path):
    # YAML 1.1 reads off/on as booleans: train.amp is a choice whose values include 'off'
    (tmp_path / "c.yaml").write_text("preset: tiny\ntrain:\n  amp: off\n  compile: off\n  tensorboard: yes\n"
                                     "  lr: 1e-4\n")
    cfg = load_config(tmp_path / "c.yaml", ["train.progress=off"])
    assert (cfg.train.amp, cfg.train.compile, cfg.train.tensorboard, cfg.train.progress) == ("off", False, True, False)
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)


def test_config_files_toml_and_yaml(tmp_path):
    (tmp_path / "a.toml").write_text('preset = "tiny"\n[train]\nlr = 3e-4\n[data]\nnum_workers = 1\n')
    (tmp_path / "b.yaml").write_text("preset: tiny\ntrain:\n  lr: 3e-4\ndata:\n  num_workers: 1\n")
    a, b = load_config(tmp_path / "a.toml"), load_config(tmp_path / "b.yaml", ["model.views=2"])
    assert a.train.lr == b.train.lr == 3e-4 and a.data.num_workers == 1 and b.model.views == 2
    (tmp_path / "c.yaml").write_text("preset: tiny\ntrain:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match="train.stepz"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("preset: tiny\nextra: 1\n")
    with pytest.raises(ConfigError, match="extra=1: unknown top-level key"):
        load_config(tmp_path / "d.yaml")


def test_bad_data_folders_are_one_line(shards, tmp_path):
    other = tmp_path / "other"                                   # a shard of another schema (images + labels)
    other.mkdir()
    with tarfile.open(other / "train-000000.tar", "w") as t:
        for name, data in (("a0.jpg", b"\xff\xd8\xff"), ("a0.cls", b"3")):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    (other / "train-000000.stats.json").write_text("{}")
    for data, needle in ((tmp_path / "absent", "no such shard directory"), (tmp_path, "no committed train-"),
                         (other, "not of the udpgen shard schema"),
                         (shards, "shard_mode 'split' needs at least world_size x workers = 5 train shards")):
        extra = ["--set", "data.shard_mode=split", "--set", "data.num_workers=5"] if data is shards else []
        result = CliRunner().invoke(main, ["train", "--config", "tiny", "--data", str(data), "--out",
                                           str(tmp_path / "run"), *extra])
        assert result.exit_code == 1 and needle in result.output, result.output
        assert result.output.strip().count("\n") == 0
        assert not (tmp_path / "run").exists()                   # nothing written for bad input


# ---------------------------------------------------------------------------------------------------------
# DDP: two CPU processes (gloo), per-rank batch 2, equal one process with batch 4 in two micro-batches.
# The encoders normalise per instance and L_udp / L_mask divide by the whole step's sample count
# (losses.ddp_counts) in both, so the two runs compute the same thing; each micro-batch is the stream of
# "virtual rank" rank * grad_accum + micro.


def interleaved(shards_dir, cfg):
    from conr.data import check_shards

    s = check_shards(shards_dir)

    def loader_fn(segment, rank, world, micro):
        accum = cfg.train.grad_accum
        its = [iter(train_loader(s, cfg, batch=micro, segment=segment, rank=rank * accum + j,
                                 world=world * accum)) for j in range(accum)]
        while True:
            for it in its:
                yield next(it)

    return loader_fn


def _ddp_worker(rank, port, shards_dir, out, overrides):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = tiny(*overrides)
    train(cfg, None, out, loader_fn=interleaved(shards_dir, cfg), log=quiet)
    # train started the group from torchrun's variables, so it destroys it: left to interpreter exit, gloo
    # aborts the process now and then, and torchrun would call the run failed
    assert not torch.distributed.is_initialized()


def test_ddp_two_cpu_processes_equal_one_process(shards, tmp_path):
    steps = ["train.steps=4", "train.ckpt_every=0"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, str(shards), str(tmp_path / "ddp"), steps), nprocs=2, join=True)
    torch.set_num_threads(1)
    cfg = tiny(*steps, "train.grad_accum=2")
    train(cfg, None, tmp_path / "one", loader_fn=interleaved(shards, cfg), log=quiet)
    ddp, one = records(tmp_path / "ddp"), records(tmp_path / "one")
    assert len(ddp) == len(one) == 4
    for a, b in zip(ddp, one):
        for k in ("loss", "photo", "udp", "mask", "grad_norm"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), (a["step"], k)
    ck = torch.load(tmp_path / "ddp" / "ckpt" / "last.pt", weights_only=True)
    assert ck["world_size"] == 2
    pa = ck["model"]
    pb = torch.load(tmp_path / "one" / "ckpt" / "last.pt", weights_only=True)["model"]
    for k, v in pa.items():
        assert torch.allclose(v, pb[k], rtol=1e-4, atol=1e-5), k


@pytest.mark.slow  # ~17 s on 2 cores (fp16 on CPU)
def test_fp16_non_finite_loss_is_skipped_by_the_scaler_and_a_streak_stops(shards, tmp_path, monkeypatch):
    from conr.data import check_shards
    from conr.train import TrainingError

    cfg = tiny("train.amp=fp16", "train.device=cpu", "train.steps=4", "train.ckpt_every=4")
    s = check_shards(shards)

    def poisoned(bad_steps):
        def loader_fn(segment, rank, world, micro):
            for i, batch in enumerate(train_loader(s, cfg, batch=micro, segment=segment, rank=rank, world=world)):
                if i in bad_steps:
                    batch["target_rgba"] = torch.full_like(batch["target_rgba"], float("nan"))
                yield batch
        return loader_fn

    summary = train(cfg, None, tmp_path / "one", loader_fn=poisoned({1}), log=quiet)
    assert summary["step"] == 4                                    # step 2 was skipped by GradScaler, not fatal
    plain = tiny("train.amp='off'", "train.steps=4")
    with pytest.raises(TrainingError, match="not finite at step 2"):
        train(plain, None, tmp_path / "two", loader_fn=poisoned({1}), log=quiet)
    monkeypatch.setattr("conr.train.MAX_NONFINITE_STEPS", 2)
    with pytest.raises(TrainingError, match="not finite at step 3 .3 steps in a row"):
        train(cfg, None, tmp_path / "three", loader_fn=poisoned(set(range(100))), log=quiet)


def test_photo_loss_of_an_unlabelled_target_does_not_train_the_detector():
    from conr.config import PRESETS
    from conr.nn import CoNR
    from conr.train import _TrainStep

    torch.manual_seed(0)
    cfg = PRESETS["tiny"]
    model = CoNR(cfg).train()
    B, S = 2, 64
    refs = torch.rand(B, cfg.views, 4, S, S)
    comps = torch.rand(B, cfg.composites, 3, S, S)
    det, udp, rgba = _TrainStep(model, "ground_truth")(refs, comps, torch.zeros(B, 4, S, S),
                                                       torch.tensor([False, False]))
    rgba.abs().mean().backward()                                   # L_photo's path only
    detector = [p.grad for p in model.detector_decoder.parameters()]
    assert all(g is None or float(g.abs().max()) == 0 for g in detector)
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in model.parameters())


def test_loss_weights_of_zero_skip_the_network_parts_they_alone_need(shards, tmp_path, monkeypatch):
    from conr.nn.renderer import CollaborativeRenderer

    calls = {"render": 0}
    real = CollaborativeRenderer.forward

    def counted(self, *a, **kw):
        calls["render"] += torch.is_grad_enabled()               # training, not the final validation
        return real(self, *a, **kw)

    monkeypatch.setattr(CollaborativeRenderer, "forward", counted)
    cfg = tiny("train.steps=2", "train.ckpt_every=2", "loss.photo=0", "loss.vgg=0", "train.vgg_weights=random")
    lines = []
    train(cfg, shards, tmp_path / "det", log=lines.append)
    assert calls["render"] == 0 and any("renderer not trained" in ln for ln in lines)
    assert any("L_vgg off" in ln for ln in lines)                 # no VGG19 built though weights were named
    start = torch.load(tmp_path / "det" / "ckpt" / "last.pt", weights_only=True)
    rec = records(tmp_path / "det")
    assert all(r["photo"] == 0 and r["vgg"] == 0 and r["udp"] > 0 for r in rec)
    assert rec[0]["loss"] == pytest.approx(rec[0]["udp"] + rec[0]["mask"] + rec[0]["cons"], rel=1e-5)
    torch.manual_seed(cfg.train.seed)
    from conr.nn import CoNR

    init = CoNR(cfg.model).state_dict()                           # the renderer kept its initialisation
    assert all(torch.equal(v, init[k]) for k, v in start["model"].items() if k.startswith("renderer."))
    assert any(not torch.equal(v, init[k]) for k, v in start["model"].items() if k.startswith("detector_decoder."))
    # L_mask off: left out of the total, still logged
    train(tiny("train.steps=1", "loss.mask=0"), shards, tmp_path / "nomask", log=quiet)
    r = records(tmp_path / "nomask")[0]
    assert r["mask"] > 0 and r["loss"] == pytest.approx(r["udp"] + r["cons"] + r["photo"], rel=1e-5)
    # L_udp, L_mask, L_cons off: the detector's decoder is frozen (the renderer draws from the ground truth)
    train(tiny("train.steps=1", "train.ckpt_every=1", "loss.udp=0", "loss.mask=0", "loss.cons=0"), shards,
          tmp_path / "ren", log=quiet)
    ren = torch.load(tmp_path / "ren" / "ckpt" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(v, init[k]) for k, v in ren.items() if k.startswith("detector_decoder."))
    assert any(not torch.equal(v, init[k]) for k, v in ren.items() if k.startswith("renderer."))


def test_trained_model_gives_the_same_output_in_train_and_eval_mode(shards, tmp_path):
    # issue #15 defect 1: the shared encoder sees the composites and the references on black in one step;
    # BatchNorm normalised each pass by its batch in train mode but by blended running statistics in eval,
    # so validation and inference drew something else than training did. InstanceNorm has no such state.
    from conr.data import check_shards
    from conr.infer import model_from_checkpoint
    from conr.train import _TrainStep, to_device

    cfg = tiny("train.steps=6")
    train(cfg, shards, tmp_path, log=quiet)
    model, _ = model_from_checkpoint(tmp_path / "ckpt" / "last.pt")
    step = _TrainStep(model, cfg.train.render_udp)
    b = to_device(next(iter(train_loader(check_shards(shards), cfg, batch=4, segment=0, rank=0, world=1))),
                  torch.device("cpu"), False)
    args = (b["refs"], b["target_composites"], b["target_udp"], b["labelled"])
    with torch.no_grad():
        det_t, _, rgba_t = step.train()(*args)
        det_e, _, rgba_e = step.eval()(*args)
    assert rgba_t.std() > 0.01 and det_t.std() > 0.01                   # a real output, not a constant
    torch.testing.assert_close(rgba_e, rgba_t, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(det_e, det_t, rtol=1e-4, atol=1e-4)


def test_checkpoint_of_the_batchnorm_format_is_refused_in_one_line(tmp_path):
    from conr.checkpoint import CKPT_FORMAT, load_checkpoint

    assert CKPT_FORMAT == "conr-train/2"
    old = tmp_path / "old.pt"
    torch.save({"format": "conr-train/1", "model": {}}, old)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(old)
    msg = str(e.value)
    assert msg.startswith(str(old)) and "conr-train/1" in msg and "InstanceNorm" in msg and "\n" not in msg
