"""``udpgen verify`` and ``udpgen preview``: check a shard directory, look at what is in it.

Registered on the ``udpgen`` group by :func:`register` (called from udpgen/cli.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["register", "verify_cmd", "preview_cmd"]

MAX_LISTED = 20   # problems printed in the human-readable form (all of them are in --json)


@click.command("verify")
@click.argument("shards", metavar="SHARDS", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def verify_cmd(shards, as_json, quiet):
    """Check a shard directory (or one .tar): every member readable, samples complete, images decode with
    the right shapes, UDP occupancy equal to alpha > 0, counts equal sizes.json and stats, checksums equal
    manifest.json, no leftover .tmp files. Exits 1 naming what is wrong.

    \b
    Examples:
      udpgen verify out/shards
      udpgen verify out/shards/train-000003.tar --json
    """
    from tqdm import tqdm

    from udpgen.shards.verify import verify

    root = Path(shards)
    total = len(list(root.glob("*.tar"))) if root.is_dir() else 1
    with tqdm(total=total, unit="shard", disable=True if (quiet or as_json) else None, file=sys.stderr) as bar:
        report = verify(root, progress=lambda name: bar.update(1))
    if as_json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()
        if not report.ok:
            sys.exit(1)
        return
    click.echo(f"{report.root}: {report.shards} shards, {report.samples} samples, {report.views} views "
               f"({report.labelled_views} labelled), {report.backgrounds} backgrounds")
    for p in report.problems[:MAX_LISTED]:
        click.echo(f"  {p}", err=True)
    if len(report.problems) > MAX_LISTED:
        click.echo(f"  ... and {len(report.problems) - MAX_LISTED} more (see --json)", err=True)
    if not report.ok:
        raise click.ClickException(f"{len(report.problems)} problem(s); first: {report.problems[0]}")
    click.echo("ok")


@click.command("preview")
@click.argument("shards", metavar="SHARDS_OR_TAR", type=click.Path(exists=True))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Contact sheet PNG to write.")
@click.option("--samples", default=4, show_default=True, type=click.IntRange(1, 256), help="Samples (rows).")
@click.option("--views", default=4, show_default=True, type=click.IntRange(1, 64), help="Views per sample.")
@click.option("--cell", default=128, show_default=True, type=click.IntRange(16, 1024), help="Cell size in pixels.")
def preview_cmd(shards, out, samples, views, cell):
    """Write a contact sheet of a few samples: each view's RGBA (over a checkerboard) next to its UDP
    shown as colours (x, y, z -> R, G, B). Works on a directory, a train/val tar or a bg tar.

    \b
    Examples:
      udpgen preview out/shards --out sheet.png
      udpgen preview out/shards/val-000000.tar --samples 8 --views 2 --out val.png
    """
    from udpgen.shards.preview import write_preview

    if Path(out).suffix.lower() != ".png":
        raise click.BadParameter("the contact sheet is written as .png", param_hint="--out")
    sheet = write_preview(shards, out, samples, views, cell)
    click.echo(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})")


def register(group: click.Group) -> None:
    """Add ``verify`` and ``preview`` to a click group (the ``udpgen`` group in udpgen/cli.py)."""
    group.add_command(verify_cmd)
    group.add_command(preview_cmd)
