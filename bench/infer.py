"""Speed of `conr render`: frames per second at 256 px with a sheet of n = 4 views, with the sheet encoded
once (the paper's inference) and encoded again for every frame, in the same run; plus the demo's wall time.

    python bench/infer.py [--presets paper,tiny] [--frames 16] [--batch 8] [--demo-json demo_out/demo.json]

For every preset (randomly initialised weights: speed does not depend on them) and device (CPU, and CUDA
when there is one) the real command runs in-process (`conr render --poses DIR --no-video --json`) on toy
UDP files of 256 x 256 px and a toy sheet of 4 cut-outs; its summary's frames_per_s counts from the sheet's
encoding to the last PNG written (checkpoint loading and sheet reading excluded: they happen once per
call). ``--per-frame-encode`` is the same command with the encoder run for every frame. The network alone
(sheet encoding + renderer on inputs already cropped in memory, median of --repeats) is timed beside it:
at small networks file I/O dominates the command. The tiny preset is run at 256 px too (the networks take
any side that is a multiple of 32).

The demo's wall time is read from a demo.json (``python -m pipelines.demo`` writes it) or measured now with
``--run-demo`` (about 10 minutes on a 2-core CPU). Writes bench/results/infer.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from bench.common import median_seconds, pin_one_core, report  # noqa: E402

SIZE, VIEWS = 256, 4


def toy_inputs(root: Path, frames: int) -> tuple[Path, Path]:
    """A sheet of VIEWS cut-outs and ``frames`` UDP files of SIZE px (a walking ellipse)."""
    import cv2

    from udpgen.io import udp as udp_io
    from udpgen.io.images import write_png_atomic

    sheet, poses = root / "sheet", root / "poses"
    sheet.mkdir(parents=True)
    poses.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(VIEWS):
        img = np.zeros((SIZE, SIZE, 4), np.uint8)
        colour = tuple(int(c) for c in rng.integers(40, 255, 3))
        cv2.ellipse(img, (SIZE // 2, SIZE // 2), (SIZE // 5, SIZE * 2 // 5), 10 * i, 0, 360, (*colour, 255), -1)
        write_png_atomic(sheet / f"view{i}.png", img)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    for t in range(frames):
        cx = SIZE / 2 + 30 * np.sin(t / 5)
        u, v = (xx - cx) / (SIZE / 6), (yy - SIZE / 2) / (SIZE * 0.4)
        occ = (u ** 2 + v ** 2 <= 1).astype(np.float32)
        udp = np.stack([(u + 1) / 2, (v + 1) / 2, np.full_like(u, 0.5), occ], -1) * occ[..., None]
        udp_io.save(poses / f"p{t:04d}.udp.png", np.clip(udp, 0, 1).astype(np.float32))
    return sheet, poses


def checkpoint(preset: str, path: Path) -> Path:
    from conr.config import run_preset
    from conr.infer import save_model_checkpoint
    from conr.nn.conr import CoNR

    cfg = run_preset(preset)
    cfg = dataclasses.replace(cfg, model=cfg.model.replace(image_size=SIZE))
    torch.manual_seed(0)
    return save_model_checkpoint(CoNR(cfg.model), cfg, path)


def render_fps(ck: Path, sheet: Path, poses: Path, out: Path, device: str, batch: int, per_frame: bool) -> dict:
    from click.testing import CliRunner

    from conr.cli import main

    args = ["render", "--checkpoint", str(ck), "--sheet", str(sheet), "--poses", str(poses), "--out", str(out),
            "--no-video", "--json", "--device", device, "--batch", str(batch)]
    res = CliRunner().invoke(main, args + (["--per-frame-encode"] if per_frame else []))
    if res.exit_code != 0:
        raise SystemExit(f"conr render failed: {res.output}")
    return json.loads(res.stdout[res.stdout.index("{"):])


def network_fps(ck: Path, sheet: Path, poses: Path, device: str, batch: int, repeats: int) -> tuple[float, float]:
    """Frames/s of the network alone (median of ``repeats``): the sheet encoding and the renderer over all
    targets, inputs already cropped in memory (no file I/O, no crop/paste)."""
    from conr.infer import Animator, box_around, crop, list_pose_files, load_sheet, model_from_checkpoint
    from udpgen.io import udp as udp_io

    model, cfg = model_from_checkpoint(ck, device)
    refs = load_sheet(sheet, SIZE).refs
    udps = [udp_io.load(f) for f in list_pose_files(poses)]
    x = torch.from_numpy(np.stack([crop(u, box_around(u[..., 3] > 0), SIZE, nearest=True) for u in udps]))
    x = x.permute(0, 3, 1, 2).contiguous()

    def run(encode_once: bool):
        anim = Animator(model, refs, device, batch, encode_once=encode_once)     # encodes the sheet (or not)
        for i in range(0, len(x), batch):
            anim.render_crops(x[i:i + batch])
        if device == "cuda":
            torch.cuda.synchronize()

    once, _ = median_seconds(lambda: run(True), repeats)
    each, _ = median_seconds(lambda: run(False), repeats)
    return len(x) / once, len(x) / each


def demo_seconds(args) -> dict | None:
    path = Path(args.demo_json)
    if args.run_demo:
        out = path.parent
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pipelines.demo", "--out", str(out)], check=True,
                       cwd=Path(__file__).resolve().parents[1])
        print(f"demo ran in {time.perf_counter() - t:.0f} s")
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    return {"file": str(path), "device": d.get("device"), "minutes_budget": d.get("minutes"), **d.get("seconds", {})}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="paper,tiny")
    ap.add_argument("--frames", type=int, default=24, help="target poses per measurement")
    ap.add_argument("--batch", type=int, default=8, help="targets per network call")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the network-only timing (median)")
    ap.add_argument("--all-cores", action="store_true",
                    help="use every core (default: one core and one thread, as the other benchmarks: on a shared "
                         "machine two busy-waiting OpenMP threads make CPU figures swing several-fold)")
    ap.add_argument("--demo-json", default="demo_out/demo.json")
    ap.add_argument("--run-demo", action="store_true", help="run `python -m pipelines.demo` first (minutes)")
    args = ap.parse_args(argv)
    if not args.all_cores:
        pin_one_core()
        torch.set_num_threads(1)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sheet, poses = toy_inputs(root, args.frames)
        for preset in args.presets.split(","):
            ck = checkpoint(preset, root / f"{preset}.pt")
            for dev in devices:
                render_fps(ck, sheet, poses, root / "warm", dev, args.batch, False)   # warm-up (first-call costs)
                once = render_fps(ck, sheet, poses, root / "once", dev, args.batch, False)
                each = render_fps(ck, sheet, poses, root / "each", dev, args.batch, True)
                net_once, net_each = network_fps(ck, sheet, poses, dev, args.batch, args.repeats)
                rows.append({"preset": preset, "device": dev, "threads": torch.get_num_threads(), "size": SIZE,
                             "n": VIEWS, "batch": args.batch, "frames": once["frames"],
                             "fps_encode_once": once["frames_per_s"], "fps_per_frame_encode": each["frames_per_s"],
                             "speedup": round(once["frames_per_s"] / each["frames_per_s"], 2),
                             "net_fps_encode_once": round(net_once, 2), "net_fps_per_frame_encode": round(net_each, 2),
                             "net_speedup": round(net_once / net_each, 2)})
    demo = demo_seconds(args)
    if demo:
        print(f"demo ({demo['device']}, --minutes {demo['minutes_budget']:g}): " +
              ", ".join(f"{k} {demo[k]:.0f} s" for k in ("data", "train", "animate", "total") if k in demo))
    else:
        print(f"demo wall time: not measured ({args.demo_json} not found; pass --run-demo)")
    report("infer", rows, {"demo_seconds": demo, "note": "fps_*: the whole `conr render` command (sheet encoding, "
                                                         "network, crop/paste, PNG reading and writing); net_fps_*: "
                                                         "the network alone (median); random-init weights, toy 256 "
                                                         "px inputs, shared machine"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
