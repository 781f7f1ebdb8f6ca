"""Benchmark one CoNR training step (forward + backward) of each config against the plain U-Net baseline.

A training sample is the paper's: m = 4 reference views and k = 4 composites at 256 px; the UDP detector
runs on the k composites, their fused detection drives the renderer over the m views (CoNR.forward_train);
the loss is a stand-in touching every output (no VGG feature loss, no optimizer step).

Reported per model, per training sample: median wall time (and min / max) of the timed steps, peak memory,
FLOPs (FlopCounterMode: convolutions and matrix products), achieved GFLOP/s, and ratios to the baseline.

Peak memory:
  cuda: torch.cuda.max_memory_allocated() during the timed steps minus the memory allocated before them
        (activations, gradients and workspaces of a step; weights and inputs excluded).
  cpu:  tracemalloc does not see torch's allocator, so each model is measured in a fresh process and the
        figure is that process's peak RSS (getrusage ru_maxrss) minus its RSS just before the first step.
        It includes allocator caching and the gradients of the first backward, and is per step (batch),
        not divided by the batch.

Configs: ``paper`` and ``paper-wide`` (the paper at the official CINN's ~96M-parameter renderer capacity)
by default (--config takes a comma-separated list), each beside --baseline.

Usage:
  python bench/model.py --quick                               # CPU smoke run (1 warm-up + 2 timed steps)
  python bench/model.py --device cuda --amp bf16 --channels-last --batch 6
Writes bench/results/model.json (see --out).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(job: dict) -> dict:
    """Run in a fresh process: build the model of job['config'], time forward+backward steps."""
    import torch

    from conr.config import load_config
    from conr.nn import CoNR
    from conr.stats import flops_per_sample, sample_inputs, training_loss

    torch.manual_seed(0)
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    cfg = load_config(job["config"]).model.replace(image_size=job["size"])
    device = torch.device(job["device"])
    model = CoNR(cfg).to(device).train()
    if job["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    refs, composites = sample_inputs(cfg, batch=job["batch"], device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=job["amp"] == "bf16")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step():
        model.zero_grad(set_to_none=False)  # gradients stay allocated between steps, as in training
        with autocast:
            out = model.forward_train(refs, composites)
        training_loss(out).float().backward()

    rss0 = rss_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        mem0 = torch.cuda.memory_allocated()
    for _ in range(job["warmup"]):
        step()
    sync()
    times = []
    for _ in range(job["steps"]):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - mem0
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0  # ru_maxrss is KiB on Linux
    flops = flops_per_sample(cfg)
    return {
        "name": job["name"], "config": job["config"], "model": cfg.to_dict(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "renderer_parameters": sum(p.numel() for p in model.renderer.parameters()),
        "flops_per_sample": flops["total"], "forward_flops_per_sample": flops["forward"],
        "step_times_s": times,
        "median_s_per_sample": statistics.median(times) / job["batch"],
        "min_s_per_sample": min(times) / job["batch"], "max_s_per_sample": max(times) / job["batch"],
        "peak_memory_bytes_per_step": peak,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        # other work on a shared machine shows here first: 1/5/15-minute load averages after the steps
        "load_average": os.getloadavg(),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="paper,paper-wide",
                   help="model configs (presets or files, comma-separated) to measure")
    p.add_argument("--baseline", default="unet-baseline", help="config measured beside it")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--amp", default="none", choices=("none", "bf16"), help="autocast dtype")
    p.add_argument("--channels-last", action="store_true", help="channels-last weights (NHWC convolutions)")
    p.add_argument("--batch", type=int, default=1, help="training samples per step")
    p.add_argument("--size", type=int, default=256, help="image side in px (multiple of 32)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quick", action="store_true", help="1 warm-up step and 2 timed steps")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "model.json")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.steps = 1, 2

    common = {k: getattr(args, k) for k in ("device", "amp", "channels_last", "batch", "size", "warmup",
                                             "steps", "threads")}
    ctx = mp.get_context("spawn")  # a fresh process per model: clean peak RSS / CUDA peak
    results = []
    configs = [c for c in args.config.split(",") if c]
    for name, config in [(c, c) for c in configs] + [("baseline", args.baseline)]:
        with ctx.Pool(1) as pool:
            results.append(pool.apply(measure, ({"name": name, "config": config, **common},)))
    base = results[-1]
    for r in results:
        r["ratio_to_baseline"] = {
            "time": r["median_s_per_sample"] / base["median_s_per_sample"],
            "memory": r["peak_memory_bytes_per_step"] / max(base["peak_memory_bytes_per_step"], 1),
            "flops": r["flops_per_sample"] / base["flops_per_sample"],
        }

    cfg = results[0]["model"]
    print(f"forward+backward per training sample: {args.size} px, m = {cfg['views']} views, "
          f"k = {cfg['composites']} composites, batch {args.batch}, "
          f"{args.device} ({results[0]['device_name'] or 'cpu'}, "
          f"{results[0]['threads']} threads), amp {args.amp}, channels-last {args.channels_last}, "
          f"{args.steps} timed steps")
    header = (f"{'model':<12}{'config':<16}{'params M':>9}{'rend. M':>8}{'GFLOP':>9}{'median ms':>11}{'min-max ms':>15}"
              f"{'GFLOP/s':>9}{'peak MiB':>10}{'x time':>8}{'x mem':>7}{'x flop':>8}")
    print(header)
    print("-" * len(header))
    for r in results:
        rr = r["ratio_to_baseline"]
        print(f"{r['name']:<12}{r['config']:<16}{r['parameters'] / 1e6:>9.1f}{r['renderer_parameters'] / 1e6:>8.1f}"
              f"{r['flops_per_sample'] / 1e9:>9.1f}{r['median_s_per_sample'] * 1e3:>11.0f}"
              f"{r['min_s_per_sample'] * 1e3:>7.0f}-{r['max_s_per_sample'] * 1e3:<7.0f}"
              f"{r['flops_per_sample'] / r['median_s_per_sample'] / 1e9:>9.1f}"
              f"{r['peak_memory_bytes_per_step'] / 2**20:>10.0f}"
              f"{rr['time']:>8.2f}{rr['memory']:>7.2f}{rr['flops']:>8.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "sample": {"image_size": args.size, "views": cfg["views"], "composites": cfg["composites"]},
              "memory_method": "cuda: max_memory_allocated minus allocated before the steps; cpu: peak RSS "
                               "(ru_maxrss) of a fresh process minus its RSS before the first step",
              "results": results}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}; load average after each model: "
          + ", ".join(f"{r['name']} {r['load_average'][0]:.1f}" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
