"""The ``conr`` command line (a click group; console script ``conr = conr.cli:main``).

Every command exits non-zero with one clear line on bad input and takes ``--json`` where it reports.
"""
from __future__ import annotations

import json

import click

from conr import __version__
from conr.errors import ConrError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="conr")
def main():
    """Train and run CoNR (Collaborative Neural Rendering using 2D anime character sheets)."""


@main.command()
@click.option("--config", "config", default="paper", show_default=True, metavar="NAME|FILE",
              help="A preset (paper, tiny, or a row of the paper's tables: see --presets) "
                   "or a .toml/.yaml/.json file with `preset` and [model] (and [train], [data], [loss]) tables.")
@click.option("--presets", "list_presets", is_flag=True,
              help="List the presets: what each changes from `paper` and the paper's table rows it is.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
def info(config: str, list_presets: bool, as_json: bool):
    """Parameter counts per module and FLOPs per training sample of a model config.

    A training sample is the paper's: m reference views and k composites at the config's image size;
    the detector runs on the k composites, the renderer on the m views.

    \b
    Example:
      conr info --config paper
      conr info --config tiny --json
      conr info --presets
    """
    if list_presets:
        from conr.config import describe_presets

        rows = describe_presets()
        if as_json:
            click.echo(json.dumps(rows, indent=2))
            return
        changes = {r["name"]: "64 px, plain encoder, narrow widths" if r["name"] == "tiny" else
                   ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "-" for r in rows}
        w = max(map(len, changes.values())) + 2
        click.echo(f"{'preset':<15}{'changes from paper':<{w}}paper rows (Table 1's n: conr evaluate, n = 1..8)")
        for r in rows:
            click.echo(f"{r['name']:<15}{changes[r['name']]:<{w}}{r['rows']}")
        return
    # torch is imported here so that `conr --help` stays fast
    from conr.config import load_config
    from conr.nn.conr import CoNR
    from conr.stats import OFFICIAL, flops_per_sample, parameter_counts

    try:
        cfg = load_config(config).model
        counts = parameter_counts(CoNR(cfg))
        flops = flops_per_sample(cfg)
    except ConrError as e:
        raise click.ClickException(str(e)) from None
    report = {
        "config": config,
        "model": cfg.to_dict(),
        "sample": {"image_size": cfg.image_size, "views": cfg.views, "composites": cfg.composites},
        "parameters": counts,
        "flops_per_sample": flops,
        "official": {**OFFICIAL, "flops": None,
                     "ratio": {"parameters": counts["total"] / OFFICIAL["parameters"],
                               "renderer_parameters": counts["renderer"] / OFFICIAL["renderer_parameters"]}},
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"config {config}: encoder {cfg.encoder}, cinn {cfg.cinn}, warping {cfg.warping}, "
               f"message passing {cfg.message_passing}")
    click.echo(f"{'module':<32}{'parameters':>14}")
    for name, n in counts.items():
        indent = "  " * name.count(".")
        click.echo(f"{indent + name:<32}{n:>14,}")
    click.echo(f"FLOPs per training sample ({cfg.image_size} px, m = {cfg.views}, k = {cfg.composites}):")
    for key in ("forward", "backward", "total"):
        click.echo(f"  {key:<20}{flops[key] / 1e9:>10.2f} GFLOP")
    for name, f in flops["forward_by_module"].items():
        click.echo(f"    {name:<18}{f / 1e9:>10.2f} GFLOP forward")
    o = report["official"]
    click.echo(f"beside the official inference model ({OFFICIAL['source']}):")
    click.echo(f"  {'':<20}{'this config':>14}{'official':>14}{'ratio':>8}")
    click.echo(f"  {'parameters':<20}{counts['total']:>14,}{OFFICIAL['parameters']:>14,}"
               f"{o['ratio']['parameters']:>8.2f}")
    click.echo(f"  {'renderer parameters':<20}{counts['renderer']:>14,}{OFFICIAL['renderer_parameters']:>14,}"
               f"{o['ratio']['renderer_parameters']:>8.2f}")
    click.echo(f"  {'GFLOP/train sample':<20}{flops['total'] / 1e9:>14.1f}{'not known':>14}")


@main.command()
@click.option("--config", "config", required=True, metavar="NAME|FILE",
              help="A preset (paper, tiny, ...: `conr info --presets`) or a .toml/.yaml/.json file: `preset` "
                   "plus [model], [train], [data] and [loss] tables.")
@click.option("--data", "data", required=True, type=click.Path(), metavar="SHARDS",
              help="Folder of train-*.tar (and val-*.tar, bg-*.tar) shards.")
@click.option("--out", "out", required=True, type=click.Path(), metavar="RUN",
              help="Run folder: config.yaml, metrics.jsonl, ckpt/, tb/.")
@click.option("--steps", type=int, default=None, help="Total optimizer steps (overrides train.steps).")
@click.option("--resume", is_flag=True, help="Continue from RUN/ckpt/last.pt (starts fresh when there is none).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.FIELD=VALUE",
              help="Override a config field, e.g. --set train.lr=1e-4 --set data.num_workers=8 "
                   "--set loss.vgg=0 (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout at the end.")
def train(config: str, data: str, out: str, steps: int | None, resume: bool, overrides: tuple[str, ...],
          as_json: bool):
    """Train CoNR on shards: the UDP detector and the collaborative renderer, end to end (paper Eq. 5).

    Runs on one process, or on several under torchrun (DDP: gloo on CPU, nccl on CUDA; the global batch
    train.batch_size is split over the ranks). Checkpoints are exact: a killed run continued with --resume
    logs the same losses as one that was never interrupted.

    \b
    Example:
      conr train --config tiny --data shards/ --out runs/tiny --steps 300
      conr train --config paper --data shards/ --out runs/paper --resume --set data.num_workers=10
      torchrun --nproc_per_node 4 -m conr.cli train --config paper --data shards/ --out runs/paper
    """
    from conr.config import load_config
    from conr.train import train as run

    try:
        cfg = load_config(config, [*overrides, *([f"train.steps={steps}"] if steps is not None else [])])
        summary = run(cfg, data, out, resume=resume, log=lambda m: click.echo(m, err=True))
    except ConrError as e:
        raise click.ClickException(str(e).strip().splitlines()[0]) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))


# ----------------------------------------------------------------------------------------------------
# Inference: render, detect, evaluate (conr.infer, conr.video, conr.evaluate)


def _one_line(e: Exception) -> click.ClickException:
    """conr and udpgen errors -> one line on stderr, exit 1."""
    return click.ClickException((str(e).strip().splitlines() or [type(e).__name__])[0])


def _input_errors() -> tuple[type, ...]:
    from udpgen.errors import UdpgenError

    return ConrError, UdpgenError


class _LazyBar:
    """A tqdm bar that appears with the first unit of work, so input errors found before it stay one line."""

    def __init__(self, total: int, desc: str, unit: str):
        self.args = {"total": total, "desc": desc, "unit": unit, "dynamic_ncols": True, "disable": None}
        self.bar = None

    def update(self, n: int = 1) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(**self.args)
        self.bar.update(n)

    def __enter__(self) -> "_LazyBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


@main.command("render")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), metavar="CK",
              help="A checkpoint written by `conr train` (RUN/ckpt/last.pt).")
@click.option("--sheet", "sheet_path", required=True, type=click.Path(), metavar="DIR",
              help="Folder of character images (PNG with alpha; images without alpha are matted), or one image.")
@click.option("--poses", type=click.Path(file_okay=False), metavar="DIR",
              help="Folder of target UDPs: 16-bit .png, official .npz (key 'i') or .exr, in natural order.")
@click.option("--model", "mmd_model", type=click.Path(dir_okay=False), metavar="MODEL",
              help="An MMD model (.pmx/.pmd) whose UDPs udpgen renders on the fly (with --motion).")
@click.option("--motion", type=click.Path(dir_okay=False), metavar="FILE", help="A .vmd motion or .vpd pose.")
@click.option("--frames", metavar="A:B:S", help="Motion frames (half-open, like range; default every frame).")
@click.option("--frame-size", type=click.IntRange(32, 4096), default=256, show_default=True,
              help="Side of the frames rendered from --model/--motion.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Output folder: frame_NNNNN.png (RGBA), render.json, video.mp4.")
@click.option("--video", type=click.Path(dir_okay=False), metavar="FILE",
              help="Video composited on --background (.mp4; default OUT/video.mp4 when imageio-ffmpeg is installed).")
@click.option("--no-video", is_flag=True, help="Write the PNG frames only.")
@click.option("--alpha-video", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also a transparent video: .webm (VP9 with alpha), .apng or .mov (QuickTime Animation).")
@click.option("--fps", type=click.FloatRange(min=0.1), default=30.0, show_default=True)
@click.option("--background", default="white", show_default=True, help="Video background: #rrggbb, r,g,b or a name.")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Target poses per network call.")
@click.option("--size", type=int, default=None, help="Network side (multiple of 32; default: the checkpoint's).")
@click.option("--margin", type=click.FloatRange(0, 2), default=0.1, show_default=True,
              help="Crop margin around a character's bounding box (fraction of its longer side).")
@click.option("--no-matting", is_flag=True, help="Refuse sheet images without alpha instead of matting them.")
@click.option("--per-frame-encode", is_flag=True, help="Encode the sheet again for every frame (slow; for checks).")
@click.option("--save-poses", is_flag=True, help="With --model: also write the UDPs to OUT/poses/ (16-bit PNG).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
def render(checkpoint, sheet_path, poses, mmd_model, motion, frames, frame_size, out_dir, video, no_video,
           alpha_video, fps, background, batch, size, margin, no_matting, per_frame_encode, save_poses, device,
           as_json):
    """Draw a character in new poses: the sheet is encoded once, the target UDPs are rendered in batches.

    Sheet images and target UDPs are each cut to a square around the character (alpha / occupancy bounding
    box plus --margin, zero padding) and resized to the network's side, so any sizes work; every frame is
    pasted back at its UDP's own size (videos take the first frame's size and letterbox the others).

    \b
    Examples:
      conr render --checkpoint runs/tiny/ckpt/last.pt --sheet sheet/ --poses udps/ --out out/
      conr render --checkpoint CK --sheet sheet/ --model assets/sample/sample.pmx \\
                  --motion assets/sample/wave.vmd --frames 0:120:2 --out out/ --alpha-video out/anim.webm
    """
    import time
    from pathlib import Path

    from conr.infer import (Animator, InferenceError, MotionPoses, list_pose_files, load_sheet, model_from_checkpoint,
                            pick_device, read_pose_files)
    from conr.video import FrameSink, VideoError, ffmpeg_exe, parse_colour

    if (poses is None) == (mmd_model is None) or (mmd_model is None) != (motion is None):
        raise click.UsageError("give --poses DIR, or --model MODEL with --motion FILE")
    if frames and mmd_model is None:
        raise click.UsageError("--frames needs --model and --motion")
    out = Path(out_dir)
    try:
        colour = parse_colour(background)
        video_path = None if no_video else video or out / "video.mp4"
        if video_path is not None and video is None:
            try:
                ffmpeg_exe()
            except VideoError as e:  # the default video is a bonus: say why it is missing, write the frames
                click.echo(f"warning: no video: {e}", err=True)
                video_path = None
        dev = pick_device(device)
        model, cfg = model_from_checkpoint(checkpoint, dev)
        side = size or cfg.model.image_size
        if side < 32 or side % 32:
            raise InferenceError(f"--size {side}: expected a positive multiple of 32")
        sheet = load_sheet(sheet_path, side, margin, matting=not no_matting)
        for line in sheet.warnings:
            click.echo(f"warning: {line}", err=True)
        if poses is not None:
            files = list_pose_files(poses)
            source, total = read_pose_files(files), len(files)
        else:
            motion_poses = MotionPoses(mmd_model, motion, frame_size, frames)
            total = len(motion_poses)
            for line in motion_poses.warnings:
                click.echo(f"warning: {line}", err=True)

            def source_fn():
                from udpgen.io import udp as udp_io

                for i, (name, u, _) in enumerate(motion_poses):
                    if save_poses:
                        (out / "poses").mkdir(parents=True, exist_ok=True)
                        udp_io.save(out / "poses" / f"frame_{i:05d}.udp.png", u)
                    yield name, u
            source = source_fn()
        t0 = time.perf_counter()
        anim = Animator(model, sheet.refs, dev, batch, encode_once=not per_frame_encode, margin=margin)
        names, empty = [], 0
        with FrameSink(out, video_path, alpha_video, fps, colour) as sink, \
                _LazyBar(total, "conr render", "frame") as bar:
            for fr in anim.frames(source):
                sink.write(fr.index, fr.rgba)
                names.append(fr.name)
                empty += fr.box is None
                bar.update()
        elapsed = time.perf_counter() - t0
    except _input_errors() as e:
        raise _one_line(e) from None
    summary = {"checkpoint": str(checkpoint), "preset": cfg.preset, "device": str(dev), "size": side,
               "sheet": sheet.names, "matted": sheet.matted, "frames": len(names), "empty_frames": empty,
               "poses": names, "encode_once": not per_frame_encode, "seconds": round(elapsed, 3),
               "frames_per_s": round(len(names) / max(elapsed, 1e-9), 3), "files": sink.files}
    (out / "render.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        click.echo(f"wrote {len(names)} frames to {out}" + (f" ({empty} empty poses)" if empty else "")
                   + "".join(f"; {k} {v}" for k, v in sink.files.items() if k != "frames")
                   + f" ({summary['frames_per_s']:.1f} frames/s)")


@main.command("detect")
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), metavar="CK",
              help="A checkpoint written by `conr train`.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Output folder: NAME.udp.png (16-bit), NAME.udp.npz with --npz, vis/NAME.png, detect.json.")
@click.option("--npz", is_flag=True, help="Also write the official CoNR .npz (key 'i', H x W x 4 float32).")
@click.option("--size", type=int, default=None, help="Network side (multiple of 32; default: the checkpoint's).")
@click.option("--background", default="white", show_default=True,
              help="Colour a cut-out (RGBA) image is composited on before detection.")
@click.option("--margin", type=click.FloatRange(0, 2), default=0.1, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
def detect(input_path, checkpoint, out_dir, npz, size, background, margin, device, as_json):
    """Estimate the UDP of character images with the checkpoint's UDP detector.

    INPUT is an image or a folder of images. A cut-out (PNG with alpha) is cropped around its alpha and its
    alpha is the occupancy; any other image is padded to a square and the detector's mask decides. The UDP
    files have each image's size and feed `conr render --poses`.

    \b
    Example:
      conr detect --checkpoint runs/tiny/ckpt/last.pt drawings/ --out udps/ --npz
    """
    from pathlib import Path

    import numpy as np
    from tqdm import tqdm

    from conr.infer import InferenceError, model_from_checkpoint, natural_key, pick_device
    from conr.infer import detect as run_detect
    from conr.video import parse_colour
    from udpgen.io import udp as udp_io
    from udpgen.io.images import IMAGE_SUFFIXES, list_images, read_image, write_png_atomic
    from udpgen.io.sheet import over_checkerboard

    src, out = Path(input_path), Path(out_dir)
    try:
        colour = parse_colour(background)
        if src.is_dir():
            files = list_images(src, recursive=False, key=natural_key)
            if not files:
                raise InferenceError(f"{src}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
        elif src.is_file():
            files = [src]
        else:
            raise InferenceError(f"{src}: no such image or folder")
        dev = pick_device(device)
        model, cfg = model_from_checkpoint(checkpoint, dev)
        side = size or cfg.model.image_size
        if side < 32 or side % 32:
            raise InferenceError(f"--size {side}: expected a positive multiple of 32")
        (out / "vis").mkdir(parents=True, exist_ok=True)
        results = []
        for f in tqdm(files, unit="image", desc="conr detect", disable=True if len(files) < 2 else None):
            img = read_image(f)
            det = run_detect(model, img, side, colour, margin, dev)
            stem = f.name.rsplit(".", 1)[0]
            udp_io.save(out / f"{stem}.udp.png", det.udp)
            if npz:
                udp_io.save(out / f"{stem}.udp.npz", det.udp)
            shown = over_checkerboard(img) if img.shape[2] == 4 else img
            write_png_atomic(out / "vis" / f"{stem}.png", np.concatenate([shown, udp_io.visualise(det.udp)], 1))
            results.append({"image": str(f), "udp": str(out / f"{stem}.udp.png"),
                            "occupied": round(float(det.udp[..., 3].mean()), 4)})
    except _input_errors() as e:
        raise _one_line(e) from None
    summary = {"checkpoint": str(checkpoint), "size": side, "images": len(results), "results": results}
    (out / "detect.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        click.echo(f"wrote {len(results)} UDP file(s) to {out} (visualisations in {out / 'vis'})")


@main.command("evaluate")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), metavar="CK",
              help="A checkpoint written by `conr train`.")
@click.option("--data", required=True, type=click.Path(file_okay=False), metavar="SHARDS",
              help="Shard folder with val-*.tar (or train shards with --source holdout).")
@click.option("--views", "max_views", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Evaluate sheets of n = 1..VIEWS reference views.")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Validation items (default: the checkpoint's data.val_samples).")
@click.option("--source", type=click.Choice(["auto", "val", "holdout"]), default="auto", show_default=True,
              help="The val split, or the held-out last views of the train chunks.")
@click.option("--holdout", type=click.IntRange(min=1), default=None,
              help="Views held out per chunk for --source holdout (default: the checkpoint's data.holdout_views).")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="Data loader processes.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--per-character", is_flag=True, help="Also report every character's rows (held-out characters).")
@click.option("--crop/--no-crop", "crops", default=True, show_default=True,
              help="The run's random-crop policy (data.crop_min, seeded per item), as training validation; "
                   "--no-crop: whole images.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
def evaluate(checkpoint, data, max_views, samples, source, holdout, batch, workers, device, per_character, crops,
             as_json):
    """L_photo (and LPIPS when its weights are local) on validation data per number of reference views n,
    like the paper's Table 1, with the nearest-reference baseline beside it.

    \b
    Example:
      conr evaluate --checkpoint runs/tiny/ckpt/last.pt --data shards/
      conr evaluate --checkpoint CK --data shards/ --source holdout --holdout 1 --views 4 --json
    """
    from conr.evaluate import evaluate_views, format_table
    from conr.infer import model_from_checkpoint, pick_device
    from conr.losses import build_lpips
    from conr.metrics import lpips_variant

    try:
        dev = pick_device(device)
        model, cfg = model_from_checkpoint(checkpoint, dev)
        lpips, msg = build_lpips(cfg.train, dev)
        total = samples or cfg.data.val_samples
        with _LazyBar(total, "conr evaluate", "item") as bar:
            result = evaluate_views(model, cfg, data, max_views=max_views, max_samples=samples, source=source,
                                    holdout=holdout, batch=batch, workers=workers, device=dev, lpips=lpips,
                                    lpips_variant=lpips_variant(cfg.train), per_character=per_character,
                                    crops=crops, progress=bar.update)
    except _input_errors() as e:
        raise _one_line(e) from None
    if lpips is None:
        result["notes"].append(msg)
    result["checkpoint"] = str(checkpoint)
    click.echo(json.dumps(result, indent=2) if as_json else format_table(result))



# ----------------------------------------------------------------------------------------------------
# Matting: the segmentation network for busy backgrounds (conr.matte)


@main.command("train-matte")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Shards (train-/val-*.tar of `udpgen synth` or `udpgen handdrawn`; bg-*.tar used too).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The checkpoint to write (.pt).")
@click.option("--steps", default=2000, show_default=True, type=click.IntRange(1))
@click.option("--size", default=128, show_default=True, type=click.IntRange(16), help="Training side (multiple of 8).")
@click.option("--batch", default=8, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def train_matte_cmd(data, out, steps, size, batch, seed, as_json):
    """Train the segmentation network that seeds `udpgen matte --model` on busy backgrounds: the shards'
    cut-outs composited on the built-in and the shards' backgrounds."""
    from conr.matte import train_matte

    try:
        result = train_matte(data, out, steps=steps, size=size, batch=batch, seed=seed,
                             log=None if as_json else lambda m: click.echo(m, err=True))
    except _input_errors() as e:
        raise _one_line(e) from None
    result["out"] = str(out)
    click.echo(json.dumps(result, indent=2) if as_json else
               f"{out}: {steps} steps in {result['seconds']} s, loss {result['loss_first']:.4f} -> "
               f"{result['loss_last']:.4f} ({result['views']} views, {result['backgrounds']} backgrounds)")


@main.command("matte-masks")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.option("--model", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A checkpoint of `conr train-matte`.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Label maps at INPUT's relative paths (x/y.jpg -> x/y.png), for `udpgen matte --masks`.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def matte_masks(input_path, model, out_dir, as_json):
    """Label maps (0 background, 1 the character) of the images in INPUT from the segmentation network;
    `udpgen matte INPUT --masks OUT` turns them into watershed markers."""
    from pathlib import Path

    from conr.matte import label_maps
    from udpgen.io.images import list_images

    inp = Path(input_path)
    root, files = (inp.parent, [inp]) if inp.is_file() else (inp, list_images(inp))
    failed = []
    try:
        for p, why in label_maps(model, files, root, Path(out_dir)):
            if why is not None:
                failed.append({"image": str(p), "reason": why})
                click.echo(f"conr: {p}: {why}", err=True)
    except _input_errors() as e:
        raise _one_line(e) from None
    summary = {"images": len(files), "written": len(files) - len(failed), "failed": len(failed),
               "failures": failed, "out": str(out_dir)}
    click.echo(json.dumps(summary, indent=2) if as_json else
               f"{summary['written']} label map(s) in {out_dir}, {len(failed)} failed")
    if failed and len(failed) == len(files):
        raise click.ClickException("no image could be read")


if __name__ == "__main__":
    main()
