"""The ``udpgen`` command line. Each command parses its arguments, calls the library, prints a summary.

Errors of the user's input (UdpgenError) become one line on stderr and exit status 1, never a traceback.
"""
from __future__ import annotations

import json
import sys

import click

from udpgen.errors import UdpgenError


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
    from udpgen.inspect import format_table, match_names, model_summary, motion_summary, pose_summary
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


if __name__ == "__main__":
    main()
