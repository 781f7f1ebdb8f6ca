"""``udpgen doctor``: check a folder of MMD models (and motions) before a big run; one row per file.

Registered on the ``udpgen`` group by :func:`register` (called from udpgen/cli/main.py).
"""
from __future__ import annotations

import json
import sys

import click

__all__ = ["register", "doctor_cmd"]


@click.command("doctor")
@click.argument("models", metavar="MODELS", type=click.Path())
@click.option("--motions", "motions", type=click.Path(), default=None,
              help="Folder (searched recursively) or file of .vmd motions / .vpd poses to match against the models.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes checking models; >= 2: a model that crashes or hangs the GL driver costs only its row.")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds one model may take with --workers >= 2 (then killed and retried once).")
@click.option("--no-render", is_flag=True, help="Skip the test render (canonicalisation is the last check).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as one JSON document on stdout.")
def doctor_cmd(models, motions, workers, timeout, no_render, as_json):
    """Check every model under MODELS (a folder, searched recursively, .zip archives opened; or one
    .pmx/.pmd) the way synth would use it: counts, humanoid bones (which are missing), rest pose (arm droop:
    A or T), rigid bodies and joints (and what physics would drop), textures found / missing, whether
    canonicalisation and one 64 px test render succeed, and a verdict: ok, warnings or unusable with the
    reason. With --motions, every motion's kind (bone / morph / camera / light-only), frame range, and how
    many of its bone tracks each model has. A file that cannot be read is a row with its reason; the exit
    status is 0 whenever every file could be looked at, 1 only for bad arguments.

    \b
    Examples:
      udpgen doctor ~/mmd --motions ~/mmd/motions
      udpgen doctor assets/sample --motions assets/sample/wave.vmd --json > doctor.json
    """
    from tqdm import tqdm

    from udpgen.synth.doctor import DoctorSettings, doctor, format_report

    settings = DoctorSettings(render=not no_render, workers=workers, timeout=timeout)
    with tqdm(unit="model", desc="doctor", file=sys.stderr, disable=as_json or not sys.stderr.isatty(),
              dynamic_ncols=True) as bar:
        report = doctor(models, motions, settings, progress=bar.update)
    if as_json:
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        click.echo(format_report(report))


def register(group: click.Group) -> None:
    """Add ``doctor`` to the ``udpgen`` click group."""
    group.add_command(doctor_cmd)
