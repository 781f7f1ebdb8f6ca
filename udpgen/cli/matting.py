"""``udpgen matte``: cut characters out of hand-drawn images (see udpgen.drawn.matting).

Registered on the ``udpgen`` group by :func:`register` (called from udpgen/cli/main.py). The review report
(contact sheet PNG + HTML page, both sorted by confidence ascending) puts doubtful cut-outs first, so a
person checks those and draws marker scribbles where needed.
"""
from __future__ import annotations

import html
import json
import sys
from pathlib import Path, PurePosixPath

import click
import numpy as np

from udpgen.errors import UdpgenError
from udpgen.io.atomic import write_bytes_atomic

__all__ = ["register", "matte_cmd", "review_sheet", "collect_inputs"]

THUMB = 160


def collect_inputs(inp: Path, exclude: Path | None = None) -> list[tuple[Path, Path, Path]]:
    """INPUT (file or folder, searched recursively, sorted) -> [(file, its path relative to INPUT,
    output path relative to --out)].
    The output keeps the sub-folders (characters are grouped by folder later) and ends in .png; two
    inputs that would collide (a.jpg and a.png) keep their extension in the name (a.jpg.png). Hidden
    files and files under ``exclude`` (the output folder, when it lies inside INPUT) are skipped."""
    from udpgen.io.images import list_images

    if inp.is_dir():
        files = list_images(inp, exclude=exclude)
        rels = [p.relative_to(inp) for p in files]
    elif inp.exists():
        files, rels = [inp], [Path(inp.name)]
    else:
        raise UdpgenError(f"{inp}: no such file or folder")
    stems = [r.with_suffix("") for r in rels]
    dup = {s for s in stems if stems.count(s) > 1}
    return [(f, r, r.with_name(r.name + ".png") if r.with_suffix("") in dup else r.with_suffix(".png"))
            for f, r in zip(files, rels)]


def _sorted(rows: list[dict]) -> list[dict]:
    """Failures first, then by rising confidence: the order a reviewer works through."""
    return sorted(rows, key=lambda r: (r["confidence"] is not None, r["confidence"] or 0.0, r["input"]))


def _earlier_rows(meta: Path, rows: list[dict]) -> list[dict]:
    """The rows an earlier run recorded in ``meta`` (matte.json) for outputs this run does not write: a second
    `udpgen matte` into the same folder (one image again, with scribbles) keeps the others listed. An
    unreadable file is replaced, as before."""
    try:
        old = json.loads(meta.read_text("utf-8"))["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    now = {r["target"] for r in rows}
    return [r for r in old if isinstance(r, dict) and "input" in r and "confidence" in r
            and (r.get("target") or r.get("output")) not in now]


def _as_recorded(meta: Path, src: Path, rel_in: Path, rel: Path) -> tuple[Path, Path, Path]:
    """One image given alone whose earlier run into this --out recorded it (matte.json): its paths as then,
    so a re-matte (with scribbles, say) replaces that cut-out in its sub-folder and finds its markers where
    the folder run looked, instead of adding NAME.png at the top. Unrecorded: as given."""
    try:
        old = json.loads(meta.read_text("utf-8"))["results"]
        me = src.resolve()
        row = next(r for r in old if isinstance(r, dict) and Path(str(r.get("input"))).resolve() == me)
        target, was = PurePosixPath(row["target"]), PurePosixPath(row["rel"])
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return src, rel_in, rel
    # the file is ours but may have been edited: only plain relative paths inside --out are followed
    if any(p.is_absolute() or ".." in p.parts or not p.name for p in (target, was)) or target.suffix != ".png":
        return src, rel_in, rel
    return src, Path(was), Path(target)


def _thumb(rgba: np.ndarray, size: int = THUMB) -> np.ndarray:
    """(H, W, 4) uint8 -> (h, w, 4) uint8 with max(h, w) <= size: what the review sheet keeps per image."""
    import cv2

    h, w = rgba.shape[:2]
    f = min(1.0, size / max(h, w))
    return cv2.resize(rgba, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def review_sheet(items: list[tuple[str, np.ndarray, float]], columns: int = 8) -> np.ndarray:
    """[(label, thumbnail from _thumb, confidence)] in display order -> (H, W, 3) uint8 contact sheet, the
    cut-outs over the checkerboard, each captioned with its confidence and label."""
    from udpgen.io.sheet import contact_sheet

    return contact_sheet([thumb for _, thumb, _ in items], columns,
                         [f"{conf:.2f} {label[-16:]}" for label, _, conf in items], cell=(THUMB, THUMB))


def _write_html(path: Path, rows: list[dict]) -> None:
    """Review page: one table row per image, lowest confidence first, cut-outs over a checkerboard."""
    body = []
    for r in rows:
        src = html.escape(r["output"]) if r.get("output") else ""
        img = f'<a href="{src}"><img src="{src}" loading="lazy"></a>' if src else "(failed)"
        conf = "" if r["confidence"] is None else f'{r["confidence"]:.3f}'
        body.append(f"<tr><td>{img}</td><td>{html.escape(r['input'])}</td><td>{conf}</td>"
                    f"<td>{html.escape('; '.join(r['notes']))}</td></tr>")
    page = ("<!doctype html><meta charset='utf-8'><title>udpgen matte review</title><style>"
            "body{font:14px sans-serif}td{border-bottom:1px solid #ccc;padding:4px;vertical-align:top}"
            "img{max-width:200px;max-height:200px;background:repeating-conic-gradient(#bbb 0 25%,#eee 0 50%) "
            "0 0/16px 16px}</style><h1>Cut-outs, lowest confidence first</h1><table>"
            "<tr><th>cut-out</th><th>input</th><th>confidence</th><th>notes</th></tr>"
            + "\n".join(body) + "</table>\n")
    write_bytes_atomic(path, page.encode("utf-8"))


@click.command("matte")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the RGBA cut-outs (sub-folders of INPUT are kept).")
@click.option("--markers", "markers_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of scribble PNGs at the same relative paths as the inputs (x/y.jpg -> x/y.png): "
                   "pure green (0,255,0) = character, pure red (255,0,0) = background, anything else ignored.")
@click.option("--report", is_flag=True, help="Also write report.png (contact sheet) and report.html, "
                                             "lowest confidence first, into --out.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary (per file: confidence, notes) on stdout.")
@click.option("--gap-px", type=float, default=None,
              help="Trapped-ball radius at 512 px (default 3): breaks in an outline up to about twice this "
                   "wide do not let the background in; 0 = plain flood fill.")
@click.option("--masks", "masks_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder of label maps at the same relative paths (x/y.jpg -> x/y.png, x/y.npz or x/y.jpg.npz): "
                   "--mask-background is the background, other labels the character; used as markers.")
@click.option("--mask-background", type=int, default=0, show_default=True,
              help="The background label of the --masks label maps.")
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A segmentation network of `conr train-matte` (needs the conr package, torch): on a textured "
                   "background its mask of each image replaces grabCut's, snapped to the image's edges by the "
                   "colour watershed; flat backgrounds keep the colour model. Scribbles and --masks override it "
                   "where they mark.")
def matte_cmd(input_path: Path, out_dir: Path, markers_dir: Path | None, report: bool, as_json: bool,
              gap_px: float | None, masks_dir: Path | None, mask_background: int, model_path: Path | None):
    """Cut characters out of hand-drawn images: INPUT is an image or a folder of images; each becomes an
    RGBA PNG in --out. Images that already have a meaningful alpha channel are kept as they are.
    Unreadable files are reported one line each and skipped; the exit status is 1 if any failed.

    \b
    Examples:
      udpgen matte drawings/ --out cutouts/ --report
      udpgen matte drawings/alice/01.jpg --out cutouts/ --markers scribbles/
      udpgen matte drawings/ --out cutouts/ --model matte.pt       # busy backgrounds: conr train-matte
    """
    from tqdm import tqdm

    from udpgen.io.images import read_image, write_png_atomic
    from udpgen.drawn.matting import MattingSettings, alpha_is_meaningful, matte, require_character

    settings = MattingSettings() if gap_px is None else MattingSettings(gap_px=gap_px)  # bad value: one line
    if model_path is not None:
        from udpgen.drawn.masks import network_prior
        segment = network_prior(model_path)
    else:
        segment = None

    jobs = collect_inputs(input_path, exclude=out_dir)
    if input_path.is_file():
        jobs = [_as_recorded(out_dir / "matte.json", *jobs[0])]
    if not jobs:
        raise UdpgenError(f"{input_path}: no images found")
    if report and any(rel.as_posix() in ("report.png", "report.html") for _, _, rel in jobs):
        raise UdpgenError(f"{input_path}: an input would be written as report.png, which --report needs; "
                          "move it into a sub-folder or leave out --report")
    rows, failed = [], 0
    for src, rel_in, rel in tqdm(jobs, desc="matte", unit="img", disable=True if len(jobs) < 2 else None,
                                 file=sys.stderr):
        row = {"input": str(src), "rel": rel_in.as_posix(), "output": None, "target": rel.as_posix(),
               "confidence": None, "error": None, "notes": [], "factors": {}}
        try:
            image = read_image(src)
            markers = None
            if markers_dir is not None:
                mpath = markers_dir / rel_in.with_suffix(".png")
                if mpath.is_file():
                    markers = read_image(mpath)
                    if markers.shape[:2] != image.shape[:2]:
                        raise UdpgenError(f"{mpath}: markers are {markers.shape[1]}x{markers.shape[0]}, "
                                          f"the image is {image.shape[1]}x{image.shape[0]}")
            if masks_dir is not None and markers is None:  # scribbles, when there are some, win
                from udpgen.drawn.masks import find_label_map, label_markers, read_label_map
                lpath = find_label_map(masks_dir, rel_in)
                if lpath is not None:
                    markers = label_markers(read_label_map(lpath), image.shape[:2], mask_background,
                                            name=str(lpath))
            # called by matte on a textured background only: the network does not run for flat ones
            res = matte(image, markers, settings, prior=None if segment is None else lambda: segment(image))
            require_character(res.rgba, alpha_is_meaningful(image))
            write_png_atomic(out_dir / rel, res.rgba)
            row.update(output=rel.as_posix(), confidence=round(res.confidence, 4), notes=res.notes,
                       factors=res.factors)
            if report:
                row["_thumb"] = _thumb(res.rgba)  # thumbnails only: a big folder must not fill memory
        except (UdpgenError, OSError) as e:
            failed += 1
            row["error"], row["notes"] = str(e), [f"failed: {e}"]
            tqdm.write(f"udpgen matte: {e}", file=sys.stderr)
        rows.append(row)
    order = _sorted(rows)
    if report:
        ok = [r for r in order if r.get("_thumb") is not None]
        if ok:
            write_png_atomic(out_dir / "report.png",
                             review_sheet([(Path(r["input"]).name, r["_thumb"], r["confidence"]) for r in ok]))
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_html(out_dir / "report.html", order)
    for r in rows:
        r.pop("_thumb", None)
    # matte.json: what `udpgen matte-review` lists (confidences, inputs); written on every run
    out_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_dir / "matte.json",
                       json.dumps({"results": _sorted(_earlier_rows(out_dir / "matte.json", rows) + rows)},
                                  indent=1).encode("utf-8"))
    if as_json:
        json.dump({"images": len(rows), "failed": failed, "results": order}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        done = [r["confidence"] for r in rows if r["confidence"] is not None]
        low = sum(c < 0.5 for c in done)
        click.echo(f"{len(done)} cut-out(s) written to {out_dir}, {low} with confidence < 0.5, {failed} failed"
                   + (f"; review {out_dir / 'report.html'}" if report else ""), err=as_json)
    if failed:
        raise click.ClickException(f"{failed} of {len(rows)} file(s) could not be matted (see the messages above)")


def register(group: click.Group) -> None:
    """Add this module's commands (``matte``) to the ``udpgen`` click group."""
    group.add_command(matte_cmd)
