"""Train/eval output gap of the shared encoder's normalisation: BatchNorm (before) vs InstanceNorm (now).

Issue #15, defect 1. In render_udp 'ground_truth' training the encoder runs twice per step, on the k
composites (detector) and on the references on black (renderer). BatchNorm normalises each pass by its own
batch in train mode but by running statistics blending both passes in eval mode (validation, inference);
InstanceNorm (conr.nn.backbones.InstanceNorm) has no state and computes the same in both modes.

Both variants start from the same initialisation (the BatchNorm one is the project's model with every
InstanceNorm swapped for a BatchNorm2d holding the same weight and bias) and train the same N steps on the
same toy shards (conr.toy, written to a temporary folder) with AdamW and the project's loss. Then, on
training batches they did not see, each model runs once in train mode and once in eval mode (no gradient;
a train-mode pass updates BatchNorm's running statistics, so a copy of the model runs it). Reported per
variant: the mean and max |rgba_eval - rgba_train| (premultiplied RGBA in [0, 1]), the same for the
detector's xyz and L_photo of either mode against the target (InstanceNorm's gap is 0 up to float noise,
so no ratio is formed). For BatchNorm also the issue's figure: at the encoder's first BatchNorm, how many
running sigmas the batch mean of the held-out composites (and of the references on black) sits from the
running mean that eval mode uses (mean over channels).

Usage:
  python bench/norm.py                 # tiny preset, 30 steps (about a minute on one core)
  python bench/norm.py --steps 60 --preset tiny
Writes bench/results/norm.json.
"""
from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from bench.common import pin_one_core, report  # noqa: E402


def to_batchnorm(model: nn.Module) -> nn.Module:
    """Swap every InstanceNorm of ``model`` for a BatchNorm2d with the same weight and bias (in place)."""
    from conr.nn.backbones import InstanceNorm

    for name, child in list(model.named_children()):
        if isinstance(child, InstanceNorm):
            bn = nn.BatchNorm2d(child.num_features)
            bn.weight.data.copy_(child.weight.data)
            bn.bias.data.copy_(child.bias.data)
            setattr(model, name, bn)
        else:
            to_batchnorm(child)
    return model


def gap(model: nn.Module, batches: list[dict], render_udp: str) -> dict:
    from conr.losses import photo_loss
    from conr.train import _TrainStep

    sums = {"rgba_gap_mean": 0.0, "rgba_gap_max": 0.0, "xyz_gap_mean": 0.0, "photo_train": 0.0, "photo_eval": 0.0}
    for b in batches:
        args = (b["refs"], b["target_composites"], b["target_udp"], b["labelled"])
        with torch.no_grad():
            det_t, _, rgba_t = _TrainStep(copy.deepcopy(model), render_udp).train()(*args)
            det_e, _, rgba_e = _TrainStep(model, render_udp).eval()(*args)
        d = (rgba_e - rgba_t).abs()
        sums["rgba_gap_mean"] += float(d.mean()) / len(batches)
        sums["rgba_gap_max"] = max(sums["rgba_gap_max"], float(d.max()))
        sums["xyz_gap_mean"] += float((det_e[:, :, :3] - det_t[:, :, :3]).abs().mean()) / len(batches)
        sums["photo_train"] += float(photo_loss(rgba_t, b["target_rgba"])) / len(batches)
        sums["photo_eval"] += float(photo_loss(rgba_e, b["target_rgba"])) / len(batches)
    return sums


def first_bn_offset(model: nn.Module, images: torch.Tensor) -> float:
    """Mean over channels of |batch mean - running mean| / running std at the input of the encoder's first
    BatchNorm for ``images`` (B, 3, H, W): how far eval mode's statistics sit from that input's own."""
    bn = next(m for m in model.encoder.modules() if isinstance(m, nn.BatchNorm2d))
    seen = {}
    hook = bn.register_forward_pre_hook(lambda _m, inp: seen.setdefault("x", inp[0].detach()))
    with torch.no_grad():
        model.encoder.eval()(images)
    hook.remove()
    mean = seen["x"].mean((0, 2, 3))
    return float(((mean - bn.running_mean).abs() / (bn.running_var + bn.eps).sqrt()).mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--eval-batches", type=int, default=4)
    args = ap.parse_args(argv)
    pin_one_core()
    torch.set_num_threads(1)

    from conr.config import load_config
    from conr.data import check_shards, train_loader
    from conr.losses import CoNRLoss
    from conr.nn import CoNR
    from conr.nn.conr import TrainOutput
    from conr.toy import write_toy_shards
    from conr.train import _TrainStep, to_device

    cfg = load_config(args.preset, ["data.num_workers=0", f"train.batch_size={args.batch}"])
    render_udp = cfg.train.render_udp
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        write_toy_shards(Path(tmp), characters=10, views=5, size=cfg.model.image_size, val_characters=2, per_shard=2)
        shards = check_shards(Path(tmp))
        stream = iter(train_loader(shards, cfg, batch=args.batch, segment=0, rank=0, world=1))
        train_batches = [to_device(next(stream), cpu, False) for _ in range(args.steps)]
        held = [to_device(next(stream), cpu, False) for _ in range(args.eval_batches)]  # not trained on

    torch.manual_seed(cfg.train.seed)
    base = CoNR(cfg.model)
    rows = {}
    for variant, model in (("batchnorm", to_batchnorm(copy.deepcopy(base))), ("instancenorm", copy.deepcopy(base))):
        step, criterion = _TrainStep(model, render_udp).train(), CoNRLoss(cfg.loss)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        torch.manual_seed(cfg.train.seed)
        for b in train_batches:
            det, udp, rgba = step(b["refs"], b["target_composites"], b["target_udp"], b["labelled"])
            loss = criterion(TrainOutput(det, udp, rgba), b)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rows[variant] = {"variant": variant, "steps": args.steps, "final_loss": float(loss.detach()),
                         **gap(model, held, render_udp)}
        if variant == "batchnorm":  # the figure: composites vs references on black at the first BN
            rows[variant]["bn1_offset_composites"] = first_bn_offset(
                model, torch.cat([b["target_composites"].flatten(0, 1) for b in held]))
            rows[variant]["bn1_offset_refs"] = first_bn_offset(
                model, torch.cat([b["refs"][:, :, :3].flatten(0, 1) for b in held]))
        else:
            rows[variant]["bn1_offset_composites"] = rows[variant]["bn1_offset_refs"] = "n/a"
    report("norm", list(rows.values()), {"preset": args.preset, "render_udp": render_udp, "batch": args.batch,
                                         "eval_batches": args.eval_batches})


if __name__ == "__main__":
    main()
