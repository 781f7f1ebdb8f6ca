"""``udpgen backgrounds`` and ``udpgen handdrawn``: background shards and unlabelled hand-drawn shards.

Registered on the ``udpgen`` group by :func:`register`. The work is in :mod:`udpgen.drawn.job`; these
commands parse options, show a progress bar (stderr), print per-file problems one line each, update
sizes.json and manifest.json, and summarise (``--json``: one object on stdout).

Exit status: 0 when every input was used; 1 when some files failed (they are listed, and recorded in
the stats.json of their shard; every shard written is complete and valid) unless --allow-failures;
1 with one line for bad input (no images, a directory made by another run, ...). Reruns skip committed
shards and write the same bytes for the rest.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from udpgen.cli.options import shard_job_options

from udpgen.errors import UdpgenError

__all__ = ["register", "backgrounds_cmd", "handdrawn_cmd", "background_inputs"]


def background_inputs(spec: str) -> list[Path] | None:
    """INPUT of ``udpgen backgrounds`` -> paths for iter_backgrounds, or None for the word 'builtin'.
    A folder or an image file is used as is; any other file is a list: one path per line (relative to
    the list's folder), blank lines and lines starting with '#' ignored."""
    from udpgen.io.images import is_image

    if spec == "builtin":
        return None
    p = Path(spec)
    if p.is_dir() or (p.is_file() and is_image(p)):
        return [p]
    if not p.is_file():
        raise UdpgenError(f"{p}: no such file or folder (or give the word 'builtin')")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UdpgenError(f"{p}: not an image, a folder or a UTF-8 list of paths: {e}") from None
    paths = [p.parent / s for s in (ln.strip() for ln in lines) if s and not s.startswith("#")]
    if not paths:
        raise UdpgenError(f"{p}: the list names no file")
    return paths


def _bar(total: int | None, unit: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, disable=True if quiet else None, file=sys.stderr)


def _report(bar):
    def report(msg: str) -> None:
        bar.write(f"udpgen: {msg}", file=sys.stderr)
    return report


def _finish(summary: dict, text: str, as_json: bool, allow_failures: bool, what: str) -> None:
    if as_json:
        json.dump(summary, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        sys.stdout.flush()
    else:
        click.echo(text)
    if summary["failed"] and not allow_failures:
        raise click.ClickException(f"{summary['failed']} {what} failed (listed above and in the shards' "
                                   f"stats.json); the shards written are complete. --allow-failures exits 0")


@click.command("backgrounds")
@click.argument("input_spec", metavar="INPUT")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Shard directory (bg-NNNNNN.tar; may be shared with hand-drawn shards).")
@click.option("--size", default=512, show_default=True, type=click.IntRange(8, 8192), help="Side of the square crops.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random crops.")
@click.option("--per-shard", default=256, show_default=True, type=click.IntRange(1), help="Backgrounds per shard.")
@click.option("--builtin/--no-builtin", default=False, show_default=True,
              help="Append the built-in set (9 CC0/public-domain photos, 16 procedural) after INPUT's images.")
@click.option("--format", "fmt", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="Member encoding: png is lossless, jpg (quality 95) about 4x smaller.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Processes (one shard each).")
@shard_job_options("files")
@click.option("--allow-failures", is_flag=True, help="Exit 0 even when some files could not be read.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def backgrounds_cmd(input_spec, out_dir, size, seed, per_shard, builtin, fmt, workers, distributor, ray_address,
                    overwrite, retry_failed, allow_failures, as_json, quiet):
    """Make background shards for compositing: INPUT is a folder (searched recursively), an image, a text
    file listing images/folders one per line, or the word 'builtin' (the built-in set only). Images are
    scaled to cover --size and cropped at a seeded random place; near-duplicates are dropped. Unreadable
    files are reported and skipped. Every input is read once here (near-duplicate drops depend on all
    earlier images), then each shard is a job (--workers, --distributor) writing the same bytes wherever it
    runs. A rerun keeps the committed shards and refuses a changed plan, naming the settings that differ.

    \b
    Examples:
      udpgen backgrounds photos/ --out shards/ --builtin
      udpgen backgrounds builtin --out shards/ --size 384 --json
    """
    from udpgen.backgrounds.sets import BUILTIN, list_inputs
    from udpgen.backgrounds.shards import write_background_shards
    from udpgen.shards import update_directory

    paths = background_inputs(input_spec)
    use_builtin = builtin or paths is None
    total = (len(list_inputs(paths)) if paths else 0) + (len(BUILTIN) + 16 if use_builtin else 0)
    if total == 0:
        raise UdpgenError(f"{input_spec}: no images found (add --builtin for the built-in set)")
    with _bar(total, "img", quiet) as bar:
        summary = write_background_shards(paths, use_builtin, out_dir, size, seed, per_shard, fmt,
                                          progress=bar.update, report=_report(bar), workers=workers,
                                          distributor=distributor, ray_address=ray_address, overwrite=overwrite,
                                          retry_failed=retry_failed)
        bar.update(max(0, total - bar.n))   # duplicates dropped inside the stream never show up
    update_directory(out_dir, "backgrounds", {"input": input_spec, "builtin": use_builtin, "size": size,
                                              "seed": seed, "per_shard": per_shard, "format": fmt}, seed)
    summary = {"out": str(out_dir), **summary}
    _finish(summary, f"{summary['backgrounds']} backgrounds in {summary['shards']} shard(s) in {out_dir} "
            f"({summary['written']} written, {summary['skipped']} already complete), "
            f"{summary['duplicates_dropped']} near-duplicate(s) dropped, {summary['failed']} failed",
            as_json, allow_failures, "file(s)")


@click.command("handdrawn")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Shard directory (train-/val-NNNNNN.tar; use another one than `udpgen synth`'s).")
@click.option("--markers", "markers_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Scribble PNGs at the inputs' relative paths (x/y.jpg -> x/y.png), as for `udpgen matte`.")
@click.option("--size", default=512, show_default=True, type=click.IntRange(0, 8192),
              help="Views are fitted into a transparent SIZE x SIZE square (0: keep each image's size).")
@click.option("--crop", is_flag=True, help="Crop each cut-out to its bounding box (+5%) before fitting.")
@click.option("--per-shard", default=64, show_default=True, type=click.IntRange(1), help="Samples per shard.")
@click.option("--views-per-sample", default=16, show_default=True, type=click.IntRange(1, 1000),
              help="A character with more images is cut into several samples (chunks) of this many.")
@click.option("--min-confidence", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Mattes below it are kept but listed (stats.json low_confidence) for review.")
@click.option("--matte-max", default=2048, show_default=True, type=click.IntRange(0),
              help="Shrink larger images to this longer side before matting (speed; 0 = never).")
@click.option("--skip-low", is_flag=True, help="Leave low-confidence mattes out (counted as failures).")
@click.option("--review", "review_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The --out folder of `udpgen matte INPUT` reviewed with `udpgen matte-review`: images rejected "
                   "there are left out (counted as failures), accepted ones kept whatever their confidence.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1), help="Processes (one shard each).")
@shard_job_options("images")
@click.option("--allow-failures", is_flag=True, help="Exit 0 even when some images failed.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def handdrawn_cmd(input_path, out_dir, markers_dir, size, crop, per_shard, views_per_sample, min_confidence,
                  matte_max, skip_low, review_dir, workers, distributor, ray_address, overwrite, retry_failed, allow_failures,
                  as_json, quiet):
    """Cut out hand-drawn characters and write them as unlabelled shards (source 'handdrawn', no UDP).
    INPUT holds one folder per character (images searched recursively); an image directly in INPUT is a
    one-shot character. Character ids are the folder name made safe plus a hash of the name; the split
    follows from the id. Images with a meaningful alpha keep it; the others are matted. Unreadable
    images, decompression bombs and images with no background border are reported and left out.

    \b
    Examples:
      udpgen handdrawn drawings/ --out shards/handdrawn --json
      udpgen handdrawn drawings/ --out shards/handdrawn --markers scribbles/ --size 256 --crop
      udpgen handdrawn drawings/ --out shards/handdrawn --markers mattes/markers --review mattes
    """
    from dataclasses import asdict

    from udpgen.drawn.job import HanddrawnSettings, discover, plan_jobs, run_jobs
    from udpgen.shards.jobs import check_distributor, check_resume
    from udpgen.shards import read_stats, update_directory
    from udpgen.shards import split_of

    check_distributor(distributor, ray_address)          # before anything is read or deleted
    settings = HanddrawnSettings(size=size, crop=crop, min_confidence=min_confidence, skip_low=skip_low,
                                 matte_max=matte_max)
    root, characters = discover(input_path)
    if not characters:
        raise UdpgenError(f"{input_path}: no images found (one folder per character, or images directly in it)")
    decisions = None
    if review_dir is not None:
        from udpgen.drawn.review import decisions_by_input

        decisions = decisions_by_input(review_dir)
    jobs = plan_jobs(root, characters, per_shard, views_per_sample, settings, markers_dir, decisions)
    names = set(check_resume(out_dir, {j.name: j.plan for j in jobs}, asdict(settings), overwrite=overwrite,
                             retry_failed=retry_failed))
    todo = [j for j in jobs if j.name in names]
    with _bar(sum(j.files for j in todo), "img", quiet) as bar:
        failed = run_jobs(todo, root, out_dir, settings, markers_dir, workers, progress=bar.update,
                          report=_report(bar), distributor=distributor, ray_address=ray_address)
    update_directory(out_dir, "handdrawn", {"input": str(input_path), "markers": bool(markers_dir),
                                            "review": bool(review_dir), "size": size,
                                            "crop": crop, "per_shard": per_shard, "views_per_sample": views_per_sample,
                                            "min_confidence": min_confidence, "skip_low": skip_low,
                                            "matte_max": matte_max})
    lost = {f["shard"] for f in failed}
    stats = [read_stats(out_dir, j.name) for j in jobs if j.name not in lost]
    splits = {sp: {"shards": sum(j.split == sp for j in jobs),
                   "characters": sum(split_of(c.id) == sp for c in characters),
                   "samples": sum(s["samples"] for s in stats if s["split"] == sp)}
              for sp in ("train", "val")}
    summary = {"out": str(out_dir), "characters": len(characters), "images": sum(len(c.files) for c in characters),
               "shards": len(jobs), "written": len(todo), "skipped": len(jobs) - len(todo),
               "samples": sum(s["samples"] for s in stats), "views": sum(s["views"] for s in stats), "splits": splits,
               "failed": sum(s["failed"] for s in stats) + len(failed),
               "failures": [{"shard": s["shard"], **f} for s in stats for f in s["failures"]] + failed,
               "shards_failed": failed,
               "low_confidence": [{"shard": s["shard"], **x} for s in stats for x in s.get("low_confidence", [])]}
    _finish(summary, f"{summary['characters']} character(s), {summary['views']} view(s) in {summary['samples']} "
            f"sample(s), {len(jobs)} shard(s) in {out_dir} ({len(todo)} written, {summary['skipped']} already "
            f"complete); {len(summary['low_confidence'])} below confidence {min_confidence}, "
            f"{summary['failed']} failed", as_json, allow_failures, "image(s)")


def register(group: click.Group) -> None:
    """Add ``backgrounds`` and ``handdrawn`` to the ``udpgen`` click group."""
    group.add_command(backgrounds_cmd)
    group.add_command(handdrawn_cmd)
