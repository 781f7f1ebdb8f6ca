"""``udpgen verify`` and ``udpgen preview``: check a shard directory, look at what is in it.

Registered on the ``udpgen`` group by :func:`register` (called from udpgen/cli.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import cv2
import numpy as np

from udpgen.errors import UdpgenError

__all__ = ["register", "verify_cmd", "preview_cmd", "preview_sheet"]

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

    from udpgen.verify import verify

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


def _tars(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    from udpgen.shards import list_shards

    tars = [Path(p) for split in ("train", "val") for p in list_shards(path, split)]
    tars = tars or sorted(p for p in path.glob("*.tar"))
    if not tars:
        raise UdpgenError(f"{path}: no shards (*.tar) found")
    return tars


def preview_sheet(path: str | Path, samples: int = 4, views: int = 4, cell: int = 128) -> np.ndarray:
    """Contact sheet of the first ``samples`` samples of a shard (or of a directory's shards): one row per
    sample, each view as its RGBA next to its visualised UDP (a blank cell when unlabelled); for a
    background shard, the first ``samples * views`` backgrounds. -> (H, W, 3) uint8 RGB."""
    from udpgen import shards, udp

    images, labels = [], []
    tars = _tars(Path(path))
    if tars[0].name.startswith("bg-"):
        for tar in tars:
            for key, img in shards.iter_backgrounds(tar):
                images.append(img)
                labels.append(key)
                if len(images) >= samples * views:
                    return udp.contact_sheet(images, views, labels, cell=(cell, cell))
        return udp.contact_sheet(images, views, labels, cell=(cell, cell))
    n = 0
    for tar in tars:
        for s in shards.iter_samples(tar):
            for i in range(views):
                v = s.views[i] if i < len(s.views) else None
                h, w = (v.rgba.shape[:2]) if v is not None else (cell, cell)
                empty = np.full((h, w, 3), 48, np.uint8)        # the page colour: an empty cell
                images += [v.rgba if v is not None else empty,
                           udp.visualise(v.udp, alpha=True) if v is not None and v.udp is not None else empty]
                labels += [f"{s.key}.{i:03d}" if v is not None else "",
                           "" if v is None else "udp" if v.labelled else "unlabelled"]
            n += 1
            if n >= samples:
                break
        if n >= samples:
            break
    if not images:
        raise UdpgenError(f"{path}: no samples to preview")
    return udp.contact_sheet(images, 2 * views, labels, cell=(cell, cell))


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
    from udpgen.atomic import write_bytes_atomic

    if Path(out).suffix.lower() != ".png":
        raise click.BadParameter("the contact sheet is written as .png", param_hint="--out")
    sheet = preview_sheet(shards, samples, views, cell)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(sheet[..., ::-1]))
    if not ok:
        raise UdpgenError(f"{out}: cannot encode the sheet")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, buf.tobytes())
    click.echo(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})")


def register(group: click.Group) -> None:
    """Add ``verify`` and ``preview`` to a click group (the ``udpgen`` group in udpgen/cli.py)."""
    group.add_command(verify_cmd)
    group.add_command(preview_cmd)
