"""The ``udpgen`` command line. Each command parses its arguments, calls the library, prints a summary.

Errors of the user's input (UdpgenError) become one line on stderr and exit status 1, never a traceback.
"""
from __future__ import annotations

import json
import sys
import warnings

import click

from udpgen.cli.options import physics_settle_option
from udpgen.errors import InputWarning, UdpgenError

_SHOW_WARNING = warnings.showwarning


class _Group(click.Group):
    """A click group that turns the project's errors into one clean line."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UdpgenError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="conr-toolkit")
def main():
    """Build CoNR training data from MMD models (PMX/PMD/VMD/VPD) and hand-drawn images."""
    warnings.showwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Input warnings are for the user, not the developer: one line, no source location."""
    if issubclass(category, InputWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        _SHOW_WARNING(message, category, filename, lineno, file, line)


@main.command()
@click.argument("file", type=click.Path(dir_okay=True))
@click.option("--motion", "motion_path", type=click.Path(), help="With a model: match this VMD/VPD's bone names.")
@click.option("--model", "model_path", type=click.Path(), help="With a motion: match its bone names to this model.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def inspect(file, motion_path, model_path, as_json):
    """Show what an MMD file holds: counts, weight types, IK, morphs, textures found or missing; for a
    motion, keyframes per section and the frame range.

    \b
    Examples:
      udpgen inspect assets/sample/sample.pmx
      udpgen inspect assets/sample/sample.pmx --motion assets/sample/wave.vmd --json
    """
    from udpgen.mmd.summary import format_table, match_names, model_summary, motion_summary, pose_summary
    from udpgen.mmd import Model, Motion, load

    obj = load(file)
    summary = (model_summary if isinstance(obj, Model) else motion_summary if isinstance(obj, Motion)
               else pose_summary)(obj)
    other = motion_path if isinstance(obj, Model) else model_path
    if other:
        second = load(other)
        model, motion = (obj, second) if isinstance(obj, Model) else (second, obj)
        if not isinstance(model, Model) or isinstance(motion, Model):
            raise click.UsageError("--motion takes a VMD/VPD for a model; --model takes a PMX/PMD for a motion")
        summary["match"] = match_names(model, motion)
    if as_json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        click.echo(format_table(summary))


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path())
@click.option("--motion", "motion_path", type=click.Path(), help="A VMD motion or VPD pose.")
@click.option("--frame", type=float, default=0.0, show_default=True, help="Frame of the motion (30 fps; fractions interpolate).")
@click.option("--apose", is_flag=True, help="The canonical A-pose (the pose that defines the landmarks).")
@click.option("--random-pose", "seed", type=int, default=None, help="A random natural pose from this seed.")
@click.option("--motion-droop", type=float, default=None,
              help="Arm droop (degrees) of the model the motion was made for; corrects the rest pose of "
                   "models posed differently (e.g. 35 for a T-posed model).")
@click.option("--out", "out", required=True, type=click.Path(), help="Output mesh: .ply or .glb.")
@click.option("--physics", type=click.Choice(["auto", "on", "off"]), default="off", show_default=True,
              help="Simulate rigid bodies (hair, skirts): the pose is reached from the rest pose over a "
                   "settling interval seeded by --physics-seed; auto = on when panda3d is installed.")
@click.option("--physics-seed", type=int, default=0, show_default=True, help="Seed of the settling interval.")
@physics_settle_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def pose(model_path, motion_path, frame, apose, seed, motion_droop, out, physics, physics_seed, physics_settle,
         as_json):
    """Pose a model and write the mesh with landmark colours (the UDP colours) as vertex colours.

    The mesh is right-handed (+Y up, the character facing +Z, MMD units), so any viewer shows it the
    right way round; the rest pose is written when no pose option is given.

    \b
    Examples:
      udpgen pose assets/sample/sample.pmx --motion assets/sample/wave.vmd --frame 30 --out wave30.glb
      udpgen pose assets/sample/sample.pmx --apose --out apose.ply
    """
    from udpgen.mmd import Model, Motion, Pose, load
    from udpgen.rig import MotionSampler, Rig, pose_values
    from udpgen.rig.canonical import canonicalize
    from udpgen.rig.mesh import to_right_handed, visible_faces, write_mesh
    from udpgen.rig.retarget import rest_correction, retarget

    if sum([motion_path is not None, apose, seed is not None]) > 1:
        raise click.UsageError("give at most one of --motion, --apose, --random-pose")
    model = load(model_path)
    if not isinstance(model, Model):
        raise click.UsageError(f"{model_path} is not a model (.pmx/.pmd)")
    if model.vertex_count == 0:
        raise UdpgenError(f"{model_path}: the model has no vertices (a skeleton, camera or controller "
                          f"model with {len(model.bones)} bones): there is no mesh to pose")
    rig = Rig(model)
    canonical = canonicalize(rig)
    summary = {"model": model_path, "out": out, "pose": "rest"}
    values = None
    if apose:
        values, summary["pose"] = canonical.values, "apose"
    elif seed is not None:
        from udpgen.rig.sampler import PoseSampler
        values, summary["pose"] = PoseSampler(rig).sample_many(seed, 1)[0], f"random:{seed}"
    elif motion_path is not None:
        motion = load(motion_path)
        if isinstance(motion, Motion):
            sampler = MotionSampler(model, motion)
            values = sampler.at(frame)
            summary.update(pose=f"{motion_path}@{frame:g}", ignored_bone_tracks=len(sampler.unmatched_bones),
                           ignored_morph_tracks=len(sampler.unmatched_morphs))
        elif isinstance(motion, Pose):
            values, summary["pose"] = pose_values(model, motion), motion_path
        else:
            raise click.UsageError(f"{motion_path} is not a motion (.vmd) or pose (.vpd)")
        if motion_droop is not None:
            values = retarget(values, rest_correction(rig, motion_droop), rig.skeleton.parent)
    from udpgen.rig.physics_world import SettleSettings, character_physics, resolve_physics

    sim = character_physics(model, rig.skeleton, SettleSettings(*physics_settle)) if resolve_physics(physics) else None
    posed = rig.pose(values, physics=sim.settle(physics_seed) if sim is not None else None)
    if physics != "off":
        summary["physics"] = ("none" if sim is None else "fallback" if sim.fallbacks else "simulated")
        if sim is not None and sim.fallbacks:
            click.echo(f"physics exploded ({sim.last_fallback}): wrote the kinematic pose", err=True)
    positions, faces = to_right_handed(posed.positions, visible_faces(model, posed.materials.visible))
    write_mesh(out, positions, faces, canonical.landmarks)
    summary.update(vertices=model.vertex_count, faces=int(len(faces)))
    if as_json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        ignored = summary.get("ignored_bone_tracks")
        if ignored:
            click.echo(f"ignored {ignored} motion tracks naming bones the model lacks", err=True)
        click.echo(f"wrote {out} ({summary['pose']}, {summary['faces']} faces)")


def _register_commands() -> None:
    """Commands that live beside the library parts they drive."""
    from udpgen.cli import characters as cli_characters
    from udpgen.cli import doctor as cli_doctor
    from udpgen.cli import handdrawn as cli_handdrawn
    from udpgen.cli import matting as cli_matting
    from udpgen.cli import render as cli_render
    from udpgen.cli import review as cli_review
    from udpgen.cli import shards as cli_shards
    from udpgen.cli import synth as cli_synth

    cli_characters.register(main)
    cli_doctor.register(main)
    cli_handdrawn.register(main)
    cli_matting.register(main)
    cli_render.register(main)
    cli_review.register(main)
    cli_shards.register(main)
    cli_synth.register(main)


_register_commands()

if __name__ == "__main__":
    main()
