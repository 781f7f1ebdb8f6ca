"""Data-loader throughput against what the model consumes: `python -m bench.loader [--data SHARDS]`.

Measures, on one pinned core (one DataLoader worker's share of a machine), how many training samples
conr.data makes per second at the paper preset (256 px, m = 4 references, k = 4 composites): shard read,
sample shuffle, PNG decode (m + 1 views of 8-bit RGBA, the target's 16-bit UDP), the appendix's random
crop + resize, premultiplication, k composites (udpgen.backgrounds.composite), batching. A "training view" is one of
the m + 1 images decoded and augmented per sample; composites are counted separately. Stage rows time
the pieces alone (median of repeats) to show where a worker's time goes.

Beside it: the model's appetite at the paper preset, from FLOPs per training sample (conr.stats; the VGG19
feature loss counted on top, forward on prediction and target plus the backward through the prediction)
at an assumed model FLOP utilisation (--mfu) of an A100 and an H100 (dense bf16 peaks 312 and 989
TFLOP/s), giving samples/s per GPU and the loader workers one GPU needs.

Without --data, toy shards (conr.toy.write_toy_shards, paper-preset size) are generated in a temporary
folder; real shards from `udpgen synth` decode larger PNGs (textured characters compress worse).
Writes bench/results/loader.json.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # run from a checkout
from bench.common import median_seconds, pin_one_core, report  # noqa: E402

PEAK_TFLOPS = {"A100 bf16": 312.0, "H100 SXM bf16": 989.0}


def vgg_loss_flops(size: int) -> int:
    """FLOPs of L_vgg for one sample at ``size`` px: VGG19 up to relu5_2 on the target (no grad) and on the
    prediction (forward + backward to the image)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from conr.losses import VGGLoss
    from conr.nn.backbones import VGG19

    with torch.device("meta"):
        loss = VGGLoss(VGG19())
        x = torch.rand(1, 3, size, size, requires_grad=True)
        y = torch.rand(1, 3, size, size)
    with FlopCounterMode(display=False) as counter:
        loss(x, y).backward()
    return counter.get_total_flops()


def stage_rows(shards, cfg, repeats: int) -> list[dict]:
    """Median time of each piece of one sample, alone."""
    import tarfile

    from conr.data import _crop_box, _crop_resize, _square
    from udpgen.backgrounds.sets import iter_backgrounds
    from udpgen.backgrounds.composite import composite
    from udpgen.shards import decode_rgba
    from udpgen.io.udp import decode_png16

    with tarfile.open(shards.train[0]) as t:
        names = t.getnames()
        rgba_b = t.extractfile(next(n for n in names if n.endswith(".rgba.png"))).read()
        udp_b = t.extractfile(next(n for n in names if n.endswith(".udp.png"))).read()
    S, k, m = cfg.model.image_size, cfg.model.composites, cfg.model.views
    rng = np.random.default_rng(0)
    img = _square(decode_rgba(rgba_b))
    udp = _square(decode_png16(udp_b))
    bgs = [b for _, b in iter_backgrounds(None, int(S * 1.5), 0)]
    target = _crop_resize(img, _crop_box(rng, img.shape[0], cfg.data.crop_min), S, premultiply=True)
    crop = cfg.data.crop_min
    pieces = {
        "decode 8-bit RGBA PNG": (lambda: decode_rgba(rgba_b), m + 1),
        "decode 16-bit UDP PNG": (lambda: decode_png16(udp_b), 1),
        "crop + premultiply + resize (RGBA)": (
            lambda: _crop_resize(img, _crop_box(rng, img.shape[0], crop), S, premultiply=True), m + 1),
        "random crop + resize (UDP, nearest)": (lambda: _crop_resize(udp, _crop_box(rng, udp.shape[0], crop), S, True),
                                                1),
        f"composite k={k} (udpgen.backgrounds.composite)": (lambda: composite(target, bgs, k, rng, premultiplied=True), 1),
    }
    rows = []
    for name, (fn, per_sample) in pieces.items():
        t, _ = median_seconds(fn, repeats)
        rows.append({"what": name, "ms_each": t * 1e3, "per_sample": per_sample, "ms_per_sample": t * 1e3 * per_sample})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="shard folder (default: toy shards generated at --size)")
    ap.add_argument("--config", default="paper", help="run config (preset or file) whose model/data settings apply")
    ap.add_argument("--size", type=int, default=None, help="side of generated toy shards (default: model.image_size)")
    ap.add_argument("--samples", type=int, default=120, help="samples timed through the pipeline")
    ap.add_argument("--batch", type=int, default=6, help="items per batch (paper: 24 over 4 GPUs)")
    ap.add_argument("--mfu", type=float, default=0.3, help="assumed model FLOP utilisation of a GPU")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    args = ap.parse_args()
    if not args.no_pin:
        pin_one_core()
    import torch

    torch.set_num_threads(1)
    from conr.config import load_config
    from conr.data import check_shards, train_loader
    from conr.toy import write_toy_shards
    from conr.stats import flops_per_sample

    cfg = load_config(args.config, ["data.num_workers=0"])
    S, m, k = cfg.model.image_size, cfg.model.views, cfg.model.composites
    tmp = None
    if args.data:
        shards, source = check_shards(args.data), args.data
    else:
        tmp = tempfile.TemporaryDirectory()
        size = args.size or S
        shards = write_toy_shards(tmp.name, characters=24, views=8, size=size, per_shard=6, val_characters=1)
        source = f"toy shards ({size} px, generated)"

    it = iter(train_loader(shards, cfg, batch=args.batch, segment=0))
    next(it)  # warm-up: background pool, first shard, shuffle buffer
    n, t0 = 0, time.perf_counter()
    while n < args.samples:
        n += len(next(it)["key"])
    dt = time.perf_counter() - t0
    sps = n / dt
    rows = [{"what": "pipeline (one worker)", "ms_each": dt / n * 1e3, "per_sample": 1, "ms_per_sample": dt / n * 1e3}]
    rows += stage_rows(shards, cfg, args.repeats)

    model = flops_per_sample(cfg.model)["total"]
    vgg = vgg_loss_flops(S)
    need = {}
    for gpu, peak in PEAK_TFLOPS.items():
        gpu_sps = args.mfu * peak * 1e12 / (model + vgg)
        need[gpu] = {"samples_per_s": gpu_sps, "workers_per_gpu": gpu_sps / sps}
    extra = {"source": source, "config": args.config, "image_size": S, "views": m, "composites": k,
             "samples_per_s_per_worker": sps, "training_views_per_s_per_worker": sps * (m + 1),
             "composites_per_s_per_worker": sps * k, "model_flops_per_sample": model,
             "vgg_loss_flops_per_sample": vgg, "mfu_assumed": args.mfu, "gpu_consumption": need}
    report("loader", rows, extra)
    print(f"\none worker: {sps:.1f} samples/s = {sps * (m + 1):.0f} training views/s (+ {sps * k:.0f} composites/s) "
          f"at {S} px, m = {m}, k = {k}; source: {source}")
    print(f"model: {model / 1e9:.0f} GFLOP per sample + {vgg / 1e9:.0f} GFLOP L_vgg")
    for gpu, v in need.items():
        print(f"  {gpu} at {args.mfu:.0%} MFU: {v['samples_per_s']:.0f} samples/s -> "
              f"{v['workers_per_gpu']:.1f} loader workers (cores) per GPU")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
