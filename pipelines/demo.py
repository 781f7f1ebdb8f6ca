"""The one-command demo, the paper's task: CoNR draws a character it has never seen, from a sheet of its renders.

    python -m pipelines.demo [--out demo_out] [--minutes 8] [--gpu]

Steps (each prints its wall time; rerunning the same command resumes):

1. data: ``udpgen characters`` writes a family of generated characters (OUT/family, 32 on a CPU), and
   ``udpgen.synth.job`` renders them in random natural poses from random cameras into WebDataset shards,
   OUT/data, split by character (1 in 16 to val). Training reads only the train split; the held-out character
   is the first val character: it is never drawn in training. The wave motion is left out too.
   Resumes by itself (finished characters and committed shards are skipped).
2. train: ``conr train --config tiny`` for ``--minutes`` of wall clock, in a child process that gets SIGTERM
   at the deadline (the trainer finishes its step, writes OUT/run/ckpt/last.pt and exits); always run with
   ``--resume``, so a rerun continues the run. On a CPU the trainer gets one math thread (OMP_NUM_THREADS=1)
   and one data worker: on a small shared machine two busy-waiting OpenMP threads were 3-4x slower per step
   than one when another process wanted the cores too.
3. sheet: 4 renders of the held-out character in random poses and views (OUT/sheet).
4. animate: ``conr.infer`` encodes the sheet once and draws held-out random poses (OUT/novel) and the wave
   motion (OUT/wave: RGBA frames, video.mp4 on white and a transparent video.webm), from UDPs rendered by
   udpgen with the toon render of the same view kept as the ground truth.
5. report: OUT/contact_sheet.png (top row: the sheet; then per target: target UDP | CoNR | ground truth |
   nearest reference) and OUT/demo.json with L_photo (L1 of premultiplied RGBA in the network's crops) of
   CoNR against two baselines: the nearest reference (the sheet image whose UDP is closest to the target's)
   and the flat mean colour (the sheet's mean premultiplied colour painted into the target's silhouette);
   ``"heldout"`` (at the top level) sums them up over all of the held-out character's frames.

On a CPU (the default sizes): 96 px renders, the tiny network at 64 px, frames at 128 px; the whole demo
takes at most --minutes plus about half a minute (measured on a shared 2-core CPU with another job running:
7.4 minutes with the default --minutes 8, the 2400 steps done before the clock (4.6 min on 2026-12-07 with physics on), data 6 s for 32 characters,
training 424 s, sheet + animation 12 s; held-out L_photo CoNR 0.032 vs nearest reference 0.067 and flat mean
colour 0.041). With a GPU (``--gpu``, or found by
itself): 192 px renders, the tiny network at 128 px with batch 16, frames at 256 px (not measured yet).
A few minutes of tiny training give blurry results: colours in the right places, no fine detail.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "assets" / "sample"
FAMILY_SEED = 0
SHEET_SEED, NOVEL_SEED = 4242, 777          # PoseSampler seeds the training data never uses
SHEET_AZIMUTHS = (0.0, 150.0, 60.0, -100.0)  # front, back-ish, two sides


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


def settings(gpu: bool) -> dict:
    if gpu:
        return dict(characters=64, render=192, poses=32, image_size=128, batch=16, workers=4, frame=256,
                    steps_per_s=25.0)
    return dict(characters=32, render=96, poses=8, image_size=64, batch=4, workers=1, frame=128, steps_per_s=5.0)


def heldout_character(count: int) -> str:
    """The first family member that the by-character split sends to val (never in the train split)."""
    from udpgen.sample.family import character_name
    from udpgen.shards.schema import split_of

    for i in range(count):
        if split_of(character_name(FAMILY_SEED, i)) == "val":
            return character_name(FAMILY_SEED, i)
    raise DemoError(f"none of the {count} family characters falls in the val split; use more characters")


def model_path(out: Path, character: str) -> Path:
    return out / "family" / character / f"{character}.pmx"


def step_data(out: Path, s: dict, log) -> dict:
    from udpgen.sample.family import write_family
    from udpgen.synth.job import SynthConfig, synthesize

    fam = write_family(out / "family", s["characters"], FAMILY_SEED)
    log(f"data: {len(fam['written'])} family characters written, {len(fam['skipped'])} already there")
    # no motions: the wave motion stays unseen; 2 views per pose, 8 views per sample (chunks of a character)
    cfg = SynthConfig(size=s["render"], poses=s["poses"], motion_frames=0, views=2, views_per_sample=8,
                      samples_per_shard=16, seed=0)
    summary = synthesize(out / "family", None, out / "data", cfg, workers=1)
    log(f"data: {summary['views_written']} views written, {summary['shards_skipped_complete']} shards already there")
    return summary


def step_train(out: Path, s: dict, minutes: float, steps: int, device: str, log) -> dict:
    """Run `conr train` in a child process and stop it by SIGTERM at the deadline."""
    run = out / "run"
    sets = {"model.image_size": s["image_size"], "train.batch_size": s["batch"], "data.num_workers": s["workers"],
            "train.val_at_start": "false", "train.val_every": 0, "data.val_source": "none", "train.log_every": 50,
            "train.ckpt_every": 250, "train.device": device, "train.tensorboard": "false"}
    cmd = [sys.executable, "-m", "conr.cli", "train", "--config", "tiny", "--data", str(out / "data"),
           "--out", str(run), "--steps", str(steps), "--resume"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    env = dict(os.environ)
    if device == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    log(f"train: up to {steps} steps or {minutes:g} minutes: {' '.join(cmd[2:])}")
    proc = subprocess.Popen(cmd, env=env, cwd=REPO)
    stopped = False
    try:
        proc.wait(timeout=max(1.0, minutes * 60))
    except subprocess.TimeoutExpired:
        stopped = True
        proc.send_signal(signal.SIGTERM)       # the trainer finishes the step and writes a checkpoint
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        proc.wait()
        raise
    ckpt = run / "ckpt" / "last.pt"
    if proc.returncode != 0 or not ckpt.is_file():
        raise DemoError(f"training failed (exit {proc.returncode}); see the lines above")
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    train_rows = [r for r in rows if r.get("split") == "train"]
    last = train_rows[-1] if train_rows else {}
    log(f"train: {'stopped by the clock at' if stopped else 'finished at'} step {last.get('step', '?')}, "
        f"L_photo {last.get('photo', float('nan')):.4f}")
    return {"checkpoint": str(ckpt), "stopped_by_clock": stopped, "last": last,
            "photo_curve": [(r["step"], round(r["photo"], 4)) for r in train_rows]}


def render_views(pmx: Path, size: int, poses_seed: int, count: int, azimuths) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, udp, rgba) of ``count`` random poses of the model ``pmx``, each framed by its own camera."""
    from udpgen.mmd import load
    from udpgen.render import CameraSampler, Renderer
    from udpgen.rig import Rig
    from udpgen.rig.sampler import PoseSampler

    model = load(pmx)
    rig = Rig(model)
    values = PoseSampler(rig).sample_many(poses_seed, count)
    out = []
    with Renderer(size) as r:
        char = r.load(model, rig=rig)
        for i, v in enumerate(values):
            pose = char.pose(v)
            centre, radius = pose.bounding_sphere()
            cam = CameraSampler.front(centre, radius, size, size, azimuth=azimuths[i % len(azimuths)], elevation=5.0)
            res = r.render(pose, cam)
            out.append((f"pose{i:02d}", res.udp, res.rgba))
    return out


def nearest_reference(sheet_crops: np.ndarray, sheet_udps: np.ndarray, udp_crop: np.ndarray) -> int:
    """Index of the sheet image whose UDP crop is nearest (mean L1) to the target's UDP crop."""
    return int(np.argmin(np.abs(sheet_udps - udp_crop[None]).mean((1, 2, 3))))


def step_animate(out: Path, s: dict, ckpt: str, device: str, log) -> dict:
    from conr.infer import (Animator, MotionPoses, box_around, crop, model_from_checkpoint, premultiply,
                            sheet_from_images)
    from conr.video import FrameSink, VideoError, ffmpeg_exe
    from udpgen.io import udp as udp_io
    from udpgen.io.sheet import contact_sheet
    from udpgen.io.images import write_png_atomic

    model, cfg = model_from_checkpoint(ckpt, device)
    S, F = cfg.model.image_size, s["frame"]
    character = heldout_character(s["characters"])
    pmx = model_path(out, character)
    # the sheet: renders of a character the training never drew
    sheet_views = render_views(pmx, F, SHEET_SEED, len(SHEET_AZIMUTHS), SHEET_AZIMUTHS)
    (out / "sheet").mkdir(parents=True, exist_ok=True)
    for name, _, rgba in sheet_views:
        write_png_atomic(out / "sheet" / f"{name}.png", rgba)
    sheet = sheet_from_images([v[2] for v in sheet_views], S, names=[v[0] for v in sheet_views])
    boxes = [box_around(v[2][..., 3] > 0) for v in sheet_views]
    sheet_udps = np.stack([crop(v[1], b, S, nearest=True) for v, b in zip(sheet_views, boxes)])
    sheet_crops = sheet.refs.permute(0, 2, 3, 1).numpy()
    cover = sheet_crops[..., 3] > 0
    mean_rgb = sheet_crops[..., :3][cover].mean(0) / np.maximum(sheet_crops[..., 3][cover].mean(), 1e-6)
    anim = Animator(model, sheet.refs, device, batch=8)

    novel = render_views(pmx, F, NOVEL_SEED, 12, (0.0, 30.0, -30.0, 180.0))
    wave = MotionPoses(pmx, SAMPLE / "wave.vmd", F)
    wave_views = list(wave)
    try:
        ffmpeg_exe()
        videos = True
    except VideoError as e:
        log(f"no videos: {e}")
        videos = False
    results, rows = {}, []
    for part, views, fps in (("novel", novel, 2.0), ("wave", wave_views, 30.0)):
        gts = {name: rgba for name, _, rgba in views}
        ours, base, flat, picks = [], [], [], []
        t0 = time.perf_counter()
        mp4, webm = (out / part / "video.mp4", out / part / "video.webm") if videos else (None, None)
        with FrameSink(out / part, mp4, webm, fps) as sink:
            for fr in anim.frames((name, u) for name, u, _ in views):
                sink.write(fr.index, fr.rgba)
                if fr.box is None:
                    continue
                gt = crop(premultiply(gts[fr.name]), fr.box, S)
                k = nearest_reference(sheet_crops, sheet_udps, crop(fr.udp, fr.box, S, nearest=True))
                ours.append(float(np.abs(fr.crop - gt).mean()))
                base.append(float(np.abs(sheet_crops[k] - gt).mean()))
                # flat mean colour: the sheet's mean colour in the target's silhouette (from its UDP)
                occ = crop(fr.udp, fr.box, S, nearest=True)[..., 3:4]
                flat.append(float(np.abs(np.concatenate([occ * mean_rgb, occ], -1) - gt).mean()))
                picks.append((fr, gts[fr.name], k))
        dt = time.perf_counter() - t0
        results[part] = {"count": len(views), "conr_photo": float(np.mean(ours)),
                         "nearest_ref_photo": float(np.mean(base)), "mean_colour_photo": float(np.mean(flat)),
                         "_all": (ours, base, flat),
                         "conr_wins": int(np.sum(np.array(ours) < np.array(base))), "seconds": round(dt, 2),
                         **sink.files}
        log(f"animate {part}: {len(views)} frames in {dt:.1f} s; L_photo CoNR {np.mean(ours):.4f} vs nearest "
            f"reference {np.mean(base):.4f} (CoNR better on {results[part]['conr_wins']}/{len(ours)})")
        step = max(1, len(picks) // 6)
        rows += [(part, *p) for p in picks[::step][:6]]
    # contact sheet: the sheet on top, then target UDP | CoNR | ground truth | nearest reference per row
    cell = 128
    images = [crop(v[2], b, cell) for v, b in zip(sheet_views, boxes)]
    labels = [f"sheet {i + 1}" for i in range(len(images))]
    for part, fr, gt, k in rows:
        images += [crop(udp_io.visualise(fr.udp, alpha=True), fr.box, cell, nearest=True),
                   crop(fr.rgba, fr.box, cell), crop(gt, fr.box, cell), images[k]]
        labels += [f"{part} {fr.name} UDP", "CoNR", "ground truth", f"nearest ref ({k + 1})"]
    sheet_png = out / "contact_sheet.png"
    write_png_atomic(sheet_png, contact_sheet(images, 4, labels, cell=(cell, cell)))
    alls = [r.pop("_all") for r in results.values()]
    ours, base, flat = (sum((a[i] for a in alls), []) for i in range(3))
    heldout = {"character": character, "photo_conr": float(np.mean(ours)), "photo_nearest_ref": float(np.mean(base)),
               "photo_mean_colour": float(np.mean(flat)), "frames": len(ours)}
    log(f"held-out {character}: L_photo CoNR {heldout['photo_conr']:.4f}, nearest reference "
        f"{heldout['photo_nearest_ref']:.4f}, flat mean colour {heldout['photo_mean_colour']:.4f} ({len(ours)} frames)")
    return {**results, "heldout": heldout, "contact_sheet": str(sheet_png), "sheet": str(out / "sheet")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    ap.add_argument("--minutes", type=float, default=8.0, help="training wall-clock budget (default 8)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: what the budget allows)")
    ap.add_argument("--gpu", action="store_true", help="require CUDA and use the larger GPU defaults")
    args = ap.parse_args(argv)

    import torch

    if args.gpu and not torch.cuda.is_available():
        print("error: --gpu: CUDA is not available here", file=sys.stderr)
        return 1
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    s = settings(gpu)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    steps = args.steps or max(50, int(args.minutes * 60 * s["steps_per_s"]))
    times, t_all = {}, time.perf_counter()

    def log(msg: str) -> None:
        print(f"[demo {time.perf_counter() - t_all:6.1f}s] {msg}", file=sys.stderr, flush=True)

    from conr.errors import ConrError
    from udpgen.errors import UdpgenError

    report: dict = {"device": device, "settings": s, "minutes": args.minutes, "steps": steps}
    try:
        for name, fn in (("data", lambda: step_data(out, s, log)),
                         ("train", lambda: step_train(out, s, args.minutes, steps, device, log)),
                         ("animate", lambda: step_animate(out, s, report["train"]["checkpoint"], device, log))):
            t0 = time.perf_counter()
            report[name] = fn()
            times[name] = round(time.perf_counter() - t0, 1)
    except (DemoError, ConrError, UdpgenError) as e:
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    times["total"] = round(time.perf_counter() - t_all, 1)
    report["seconds"] = times
    report["heldout"] = report["animate"]["heldout"]        # the figure the demo is for, at the top level
    (out / "demo.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    a = report["animate"]
    print(f"demo done in {times['total'] / 60:.1f} min ({', '.join(f'{k} {v:.0f} s' for k, v in times.items())})\n"
          f"  contact sheet   {a['contact_sheet']}\n"
          f"  wave animation  {a['wave'].get('video')} (transparent: {a['wave'].get('alpha_video')}), "
          f"{a['wave']['count']} RGBA frames in {out / 'wave'}\n"
          f"  novel poses     {a['novel']['count']} frames in {out / 'novel'}\n"
          f"  sheet           {a['sheet']}\n"
          f"  checkpoint      {report['train']['checkpoint']}\n"
          f"  L_photo (CoNR vs nearest reference): novel {a['novel']['conr_photo']:.4f} vs "
          f"{a['novel']['nearest_ref_photo']:.4f}, wave {a['wave']['conr_photo']:.4f} vs "
          f"{a['wave']['nearest_ref_photo']:.4f}\n  summary         {out / 'demo.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
