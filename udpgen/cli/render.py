"""``udpgen render``: paired UDP + RGBA images of a model in motion frames or random poses, from random views.

Registered on the ``udpgen`` group by :func:`register` (called from udpgen/cli.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from udpgen.cli.options import physics_settle_option
from udpgen.errors import UdpgenError

__all__ = ["register", "render_cmd"]

PREVIEW_MAX = 24        # views shown on preview.png


def _poses(model, rig, motion_path, frames, random_poses, seed):
    """([(label, FramePose | None)] for the requested poses, the VMD frames (None unless a VMD motion),
    its MotionSampler or None)."""
    from udpgen.mmd import Motion, Pose, load
    from udpgen.rig import MotionSampler, pose_values
    from udpgen.rig.motion import parse_frames

    if motion_path is not None:
        motion = load(motion_path)
        if isinstance(motion, Pose):
            if frames:
                raise click.UsageError("--frames needs a VMD motion, not a VPD pose")
            return [(Path(motion_path).stem, pose_values(model, motion))], None, None
        if not isinstance(motion, Motion):
            raise click.UsageError(f"{motion_path} is not a motion (.vmd) or pose (.vpd)")
        sampler = MotionSampler(model, motion)
        frame_list = parse_frames(frames or "0:", sampler.frame_range)
        return [(f"f{f:g}", sampler.at(f)) for f in frame_list], frame_list, sampler
    if frames:
        raise click.UsageError("--frames needs --motion")
    if random_poses is not None:
        try:
            from udpgen.rig.sampler import PoseSampler
        except ImportError:
            raise UdpgenError("--random-poses needs udpgen.rig.sampler.PoseSampler, which this installation "
                              "does not have; use --motion instead") from None
        return [(f"r{k}", v) for k, v in enumerate(PoseSampler(rig).sample_many(seed, random_poses))], None, None
    return [("rest", None)], None, None


def _physics_state(simulate: bool, sim, fallbacks_before: int) -> str | None:
    """What a view's metadata records about physics: nothing when it is off (today's bytes), else
    "simulated", "fallback" (it exploded: drawn kinematic) or "none" (the model has no dynamic body)."""
    if not simulate:
        return None
    if sim is None:
        return "none"
    return "fallback" if sim.fallbacks > fallbacks_before else "simulated"


@click.command("render")
@click.argument("model_path", metavar="MODEL", type=click.Path(dir_okay=False))
@click.option("--motion", "motion_path", type=click.Path(dir_okay=False), help="A VMD motion (or a VPD pose).")
@click.option("--frames", help="Motion frames A:B:S (half-open, like range; 'A:' = to the end; default all).")
@click.option("--random-poses", type=click.IntRange(min=1), help="N random natural poses instead of a motion.")
@click.option("--size", type=int, default=256, show_default=True, help="Image width and height in pixels.")
@click.option("--views", type=click.IntRange(min=1), default=1, show_default=True, help="Random cameras per pose.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random poses and cameras.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (created).")
@click.option("--format", "fmt", type=click.Choice(["png", "npz"]), default="png", show_default=True,
              help="UDP file: 16-bit PNG (the shard format) or .npz (the official CoNR layout, key 'i').")
@click.option("--ortho", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of orthographic views.")
@click.option("--no-outline", is_flag=True, help="Draw no outlines.")
@click.option("--physics", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Simulate rigid bodies (hair, skirts) for each pose: auto = on when the optional panda3d "
                   "engine is installed; off = every bone follows its parent (the kinematic pose).")
@physics_settle_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def render_cmd(model_path, motion_path, frames, random_poses, size, views, seed, out_dir, fmt, ortho, no_outline,
               physics, physics_settle, as_json):
    """Render paired images of MODEL: for every pose and view, NAME.rgba.png (toon colour, straight alpha),
    NAME.udp.png (16-bit UDP: landmark x, y, z, occupancy) or NAME.udp.npz, and NAME.json (camera
    intrinsics/extrinsics, pose); plus render.json (summary) and preview.png (contact sheet).

    Views are random cameras (seeded) that frame the whole posed character. Without --motion or
    --random-poses the rest pose is rendered. With physics, a VMD motion is simulated forward at MMD's
    60 frames/s from 2 s before the first frame; a random pose (or VPD) is reached from the rest pose over
    a seeded settling interval (--physics-settle) and its last state drawn; a pose whose
    physics explodes is drawn kinematic and counted (physics_fallbacks in render.json). The GL backend is
    chosen by UDPGEN_GL=auto|egl|osmesa.

    \b
    Examples:
      udpgen render assets/sample/sample.pmx --motion assets/sample/wave.vmd --frames 0:60:10 --views 2 --out out/
      udpgen render model.pmx --random-poses 20 --views 4 --size 512 --seed 1 --out out/ --format npz
    """
    from tqdm import tqdm

    from udpgen.io.atomic import write_bytes_atomic
    from udpgen.io.images import write_png_atomic
    from udpgen.mmd import Model, load
    from udpgen.render import CameraSampler, EmptyRenderError, Renderer, RenderSettings
    from udpgen.render.files import preview_sheet, write_view
    from udpgen.rig import Rig
    from udpgen.rig.physics_world import SettleSettings, character_physics, resolve_physics

    if motion_path is not None and random_poses is not None:
        raise click.UsageError("give --motion or --random-poses, not both")
    model = load(model_path)
    if not isinstance(model, Model):
        raise click.UsageError(f"{model_path} is not a model (.pmx/.pmd)")
    rig = Rig(model)
    poses, frame_list, motion_sampler = _poses(model, rig, motion_path, frames, random_poses, seed)
    simulate = resolve_physics(physics)
    sim = character_physics(model, rig.skeleton, SettleSettings(*physics_settle)) if simulate else None
    sequence = None
    if sim is not None and frame_list is not None:        # a VMD motion: simulated forward, as MMD plays it
        from udpgen.rig.physics_world import MotionPhysics

        sequence = MotionPhysics(sim, lambda f: rig.pose_bones(motion_sampler.at(f)).world)
    renderer = Renderer(size, settings=RenderSettings(outline=not no_outline))      # checks the size first
    out_dir.mkdir(parents=True, exist_ok=True)
    character = renderer.load(model, rig=rig)
    sampler = CameraSampler(orthographic_prob=ortho)
    stem0 = Path(model_path).stem
    written, empty, preview = 0, 0, []
    with tqdm(total=len(poses) * views, desc="render", unit="view", file=sys.stderr,
              disable=True if len(poses) * views < 2 else None) as bar:
        for p, (label, values) in enumerate(poses):
            if sequence is not None:
                hook = sequence.at(frame_list[p])
            else:
                hook = sim.settle([seed, p, 17]) if sim is not None else None
            fallbacks = sim.fallbacks if sim is not None else 0
            pose = character.pose(values, physics=hook)
            state = _physics_state(simulate, sim, fallbacks)
            centre, radius = pose.bounding_sphere()
            rng = np.random.default_rng([seed, p])
            for v in range(views):
                cam = sampler.sample(rng, centre, radius, size, size)
                stem = f"{stem0}_{p:04d}_{v:02d}"
                try:
                    res = renderer.render(pose, cam)
                except EmptyRenderError:
                    empty += 1
                    bar.update()
                    continue
                meta = {"model": str(model_path), "pose": label, "motion": motion_path, "view": v, "seed": seed}
                if state is not None:
                    meta["physics"] = state
                write_view(out_dir, stem, res, fmt, meta=meta)
                written += 1
                if len(preview) < PREVIEW_MAX:
                    preview.append((f"{label} v{v}", res.rgba, res.udp))
                bar.update()
    if written == 0:
        raise UdpgenError(f"{model_path}: every view was empty; nothing written")
    sheet = preview_sheet(preview, columns=min(4, len(preview)))
    write_png_atomic(out_dir / "preview.png", sheet)
    summary = {"model": str(model_path), "out": str(out_dir), "format": fmt, "size": size, "poses": len(poses),
               "views_per_pose": views, "written": written, "empty_views": empty, "seed": seed,
               "warnings": dict(renderer.warnings), "gl": renderer.context.describe(),
               "physics": "on" if simulate else "off",
               "physics_fallbacks": sim.fallbacks if sim is not None else 0}
    write_bytes_atomic(out_dir / "render.json", (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())
    renderer.close()
    if as_json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        warn = ", ".join(f"{k}: {n}" for k, n in sorted(renderer.warnings.items()))
        click.echo(f"wrote {written} view pairs to {out_dir}" + (f" ({empty} empty views skipped)" if empty else "")
                   + (f"; warnings: {warn}" if warn else ""))


def register(group: click.Group) -> None:
    """Add ``render`` to the ``udpgen`` click group."""
    group.add_command(render_cmd)
