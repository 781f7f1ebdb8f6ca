"""What a CPU machine cannot measure, in one unattended run on any machine with an NVIDIA GPU (< 8 minutes).

    bash bench/gpu.sh                      # the same as: python3 bench/gpu.py
    python3 bench/gpu.py --cpu-smoke       # the whole script, tiny and on the CPU (checks its plumbing)

Steps, each timed out on its own, results in one JSON (bench/results/gpu.json):

1. the network: bench/model.py on cuda, bf16 autocast, channels-last, the paper preset beside the U-Net
   baseline: samples/s, peak memory, and MFU = achieved FLOP/s / the device's dense bf16 peak (a table
   of known devices; unknown devices report MFU as null with their name);
2. the data: ``udpgen characters`` + ``udpgen synth`` at 256 px with one worker per core on the GPU's EGL
   (UDPGEN_GL=egl): views/s with PNG encoding and tar writing in the workers;
3. training: 200 steps of the paper preset on those shards (``conr train``, bf16, channels-last, validation
   and TensorBoard off): steps/s, samples/s and the share of step time spent waiting on the loader
   (``data_wait_share`` in metrics.jsonl), median over the logged windows after the first.

A missing piece (no NVIDIA driver, a CPU-only torch, no EGL device, the project not installed) ends the
run at once with one line saying what is missing and how to get it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# dense bf16 tensor-core peak, FLOP/s (vendor data sheets; SXM parts unless named)
PEAK_BF16 = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12),
             ("L4", 121e12), ("A10", 125e12), ("RTX 4090", 165e12), ("RTX 3090", 71e12))


def fail(msg: str) -> None:
    print(f"bench/gpu: {msg}", file=sys.stderr)
    sys.exit(1)


def peak_flops(name: str) -> float | None:
    return next((p for key, p in PEAK_BF16 if key.lower() in name.lower()), None)


def run(cmd: list[str], timeout: float, env: dict | None = None, what: str = "") -> subprocess.CompletedProcess:
    t = time.perf_counter()
    try:
        res = subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(f"{what or cmd[2]} ran past {timeout:.0f} s")
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        fail(f"{what or ' '.join(cmd[:4])} failed (exit {res.returncode}): {' | '.join(tail)}")
    print(f"  {what}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return res


def check_machine(smoke: bool) -> str:
    try:
        import conr  # noqa: F401
        import torch
        import udpgen  # noqa: F401
    except ImportError as e:
        fail(f"the project is not installed ({e}): run bash scripts/install.sh")
    if smoke:
        return "cpu"
    if shutil.which("nvidia-smi") is None:
        fail("no nvidia-smi: this benchmark needs an NVIDIA GPU and its driver")
    if not torch.cuda.is_available():
        fail(f"torch {torch.__version__} sees no CUDA device: install a CUDA build (pip install torch)")
    from udpgen.render.platform import probe_egl

    why = probe_egl(0)
    if why is not None:
        fail(f"no EGL device for the renderer ({why}): the NVIDIA driver's EGL (libEGL_nvidia) is missing")
    return torch.cuda.get_device_name(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU: test the script itself")
    ap.add_argument("--batch", type=int, default=8, help="training samples per step in the network benchmark")
    ap.add_argument("--steps", type=int, default=200, help="training steps of the paper preset")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu.json")
    args = ap.parse_args()
    smoke = args.cpu_smoke
    device = check_machine(smoke)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    out: dict = {"device": device, "cores": cores, "smoke": smoke}
    try:
        print(f"bench/gpu on {device}, {cores} cores", file=sys.stderr)
        # 1. the network
        size, batch = (64, 1) if smoke else (256, args.batch)
        cmd = [py, "bench/model.py", "--size", str(size), "--batch", str(batch), "--out", str(work / "model.json")]
        cmd += ["--quick"] if smoke else ["--device", "cuda", "--amp", "bf16", "--channels-last", "--steps", "20"]
        run(cmd, 60 if smoke else 150, what="network (bench/model.py)")
        peak = peak_flops(device)
        out["model"] = []
        for r in json.loads((work / "model.json").read_text())["results"]:
            achieved = r["flops_per_sample"] / r["median_s_per_sample"]
            out["model"].append({"config": r["config"], "parameters": r["parameters"],
                                 "samples_per_s": 1.0 / r["median_s_per_sample"],
                                 "peak_memory_mib": r["peak_memory_bytes_per_step"] / 2 ** 20,
                                 "tflops": achieved / 1e12, "mfu": achieved / peak if peak else None})
        # 2. the data, on EGL with encoding in the workers
        gl = {} if smoke else {"UDPGEN_GL": "egl"}
        chars, shards = work / "chars", work / "shards"
        count, size, poses = (8, 64, 2) if smoke else (32, 256, 8)
        run([py, "-m", "udpgen.cli", "characters", "--count", str(count), "--out", str(chars)], 120,
            what="characters")
        t = time.perf_counter()
        res = run([py, "-m", "udpgen.cli", "synth", "--models", str(chars), "--out", str(shards), "--size",
                   str(size), "--poses", str(poses), "--views", "2", "--workers", str(max(1, min(cores, 16))),
                   "--samples-per-shard", "4", "--json"], 180, env=gl, what="synth")
        summary = json.loads(res.stdout)
        out["synth"] = {"views": summary["views_written"], "seconds": time.perf_counter() - t,
                        "views_per_s": summary["views_written"] / (time.perf_counter() - t),
                        "workers": max(1, min(cores, 16)), "size": size}
        # 3. training
        steps = 10 if smoke else args.steps
        sets = ["train.val_every=0", "train.val_at_start=false", "train.tensorboard=false", "train.lpips=false",
                "train.progress=false", "train.log_every=10", "train.ckpt_every=0", f"train.steps={steps}",
                f"data.num_workers={0 if smoke else min(8, cores)}"]
        sets += ["model.image_size=64", "train.batch_size=2", "train.device=cpu"] if smoke else \
            ["train.amp=bf16", "train.channels_last=true", "train.device=cuda"]
        config = "tiny" if smoke else "paper"
        cmd = [py, "-m", "conr.cli", "train", "--config", config, "--data", str(shards), "--out", str(work / "run")]
        for s in sets:
            cmd += ["--set", s]
        t = time.perf_counter()
        run(cmd, 120 if smoke else 300, what=f"train ({steps} steps of {config})")
        wall = time.perf_counter() - t
        recs = [json.loads(ln) for ln in (work / "run" / "metrics.jsonl").read_text().splitlines()
                if ln.strip() and json.loads(ln).get("split") == "train"]
        steady = recs[1:] or recs
        out["train"] = {"config": config, "steps": steps, "wall_s": wall,
                        "samples_per_s_median": statistics.median(r["samples_per_s"] for r in steady),
                        "data_wait_share_median": statistics.median(r["data_wait_share"] for r in steady),
                        "final_loss": recs[-1]["loss"] if recs else None}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    m = out["model"][0]
    print(f"{'what':<28}{'figure':>14}")
    print(f"{'network samples/s (' + m['config'] + ')':<28}{m['samples_per_s']:>14.2f}")
    print(f"{'network MFU':<28}{(m['mfu'] if m['mfu'] is not None else float('nan')):>14.3f}")
    print(f"{'network peak MiB':<28}{m['peak_memory_mib']:>14.0f}")
    print(f"{'synth views/s':<28}{out['synth']['views_per_s']:>14.1f}")
    print(f"{'train samples/s':<28}{out['train']['samples_per_s_median']:>14.2f}")
    print(f"{'train loader wait share':<28}{out['train']['data_wait_share_median']:>14.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
