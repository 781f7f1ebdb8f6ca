"""Hand-drawn characters and background photos -> WebDataset shards (DESIGN 3.6): the library half of
``udpgen handdrawn`` and ``udpgen backgrounds``.

Hand-drawn flow: :func:`discover` finds the characters (one folder per character under INPUT, images
searched recursively; an image directly in INPUT is a one-shot character of its own), :func:`character_id`
names each one, :func:`plan_jobs` cuts every character's sorted files into chunks of at most
``views_per_sample`` (one unlabelled sample each) and deals the chunks, characters in id order, into
shards of ``per_shard`` samples per split, and :func:`run_job` mattes one shard's images and writes it
(like img2dataset: one job per shard, independent, so jobs can run in any order or in parallel and a
rerun skips the shards already committed). Assignment depends only on the file list, never on what a
matte gives, so it is known before any image is read and a rerun gives the same bytes.

Every job records ``plan_sha256`` (its chunks, file sizes and settings) and the settings in its stats.json;
a rerun goes through the one resume rule, :func:`udpgen.shards.jobs.check_resume`: a changed plan refuses
to mix with the old shards (naming the settings that differ) unless --overwrite.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from udpgen.errors import UdpgenError
from udpgen.io.images import is_image, list_images
from udpgen.settings import check_settings, setting
from udpgen.shards import Sample, ShardWriter, View, read_stats, sample_key, shard_name, split_of
from udpgen.shards.folder import size_or_missing
from udpgen.shards.schema import json_bytes

__all__ = ["Character", "Chunk", "Job", "HanddrawnSettings", "character_id", "discover", "fit_rgba",
           "prepare_view", "plan_jobs", "run_job", "run_jobs"]

SLUG_MAX = 40          # readable part of a character id (ids may be up to 80: keys and tar names stay short)
HASH_HEX = 8           # 32 bits of sha256(name): names that sanitise alike need ~65k of them to collide


@dataclass(frozen=True)
class Character:
    """A character: ``id`` (see :func:`character_id`), ``name`` (folder or file name relative to INPUT,
    as found) and its image files as posix paths relative to the INPUT root, sorted."""
    id: str
    name: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Chunk:
    """One future sample: chunk number ``chunk`` of character ``character`` (id) with these files."""
    character: str
    name: str
    chunk: int
    files: tuple[str, ...]


@dataclass(frozen=True)
class Job:
    """One shard: ``{split}-{index:06d}.tar`` holding ``chunks``; ``plan`` fingerprints its inputs;
    ``decisions``: (file, 'accept' | 'reject') of its files reviewed in ``udpgen matte-review``."""
    split: str
    index: int
    chunks: tuple[Chunk, ...]
    plan: str
    decisions: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return shard_name(self.split, self.index)

    @property
    def files(self) -> int:
        return sum(len(c.files) for c in self.chunks)


@dataclass(frozen=True)
class HanddrawnSettings:
    """size: side of the square output views (0 = keep each image's size); crop: cut each view to its
    alpha bounding box (plus 5 %) before fitting; min_confidence: mattes below it are listed in the stats
    (``low_confidence``), or left out (as failures) with skip_low; matte_max: longer side above which an
    image is shrunk before matting (0 = never); max_pixels: decompression-bomb limit."""
    size: int = setting(512, kind=int, low=0, high=8192)
    crop: bool = setting(False, kind=bool)
    min_confidence: float = setting(0.5, low=0, high=1)
    skip_low: bool = setting(False, kind=bool)
    matte_max: int = setting(2048, kind=int, low=0)
    max_pixels: int = setting(8192 * 8192, kind=int, low=1)

    def __post_init__(self):
        check_settings(self)


def character_id(name: str) -> str:
    """Stable shard id of a character named ``name`` (its folder name, or a one-shot image's file name).

    ``{slug}-{hash}``: slug = the NFC name's runs of characters outside [A-Za-z0-9_-] replaced by '_',
    trimmed, at most 40 characters ('character' when nothing is left, e.g. a Japanese name); hash = the
    first 8 hex digits of sha256 of the NFC name (UTF-8), so 'Alice B' and 'Alice_B', which sanitise alike,
    still differ. The split follows from the id (:func:`udpgen.shards.split_of`)."""
    # macOS hands out decomposed (NFD) file names, Linux keeps what was written: one canonical form,
    # or the same dataset copied between them would get other ids and another train/val split.
    n = unicodedata.normalize("NFC", name)
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", n).strip("_-")[:SLUG_MAX].strip("_-") or "character"
    return f"{slug}-{hashlib.sha256(n.encode()).hexdigest()[:HASH_HEX]}"


def _images_under(folder: Path, root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in list_images(folder))


def discover(input_path: str | os.PathLike) -> tuple[Path, list[Character]]:
    """INPUT folder (or one image file) -> (root the file paths are relative to, characters sorted by id).
    Sub-folders are characters (images searched recursively, hidden names skipped; a folder without
    images is ignored); each image directly in INPUT is a one-shot character named by its file name."""
    inp = Path(input_path)
    if inp.is_file():
        return inp.parent, [Character(character_id(inp.name), inp.name, (inp.name,))]
    if not inp.is_dir():
        raise UdpgenError(f"{inp}: no such file or folder")
    chars = []
    for p in sorted(inp.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            files = _images_under(p, inp)
            if files:
                chars.append(Character(character_id(p.name), p.name, tuple(files)))
        elif p.is_file() and is_image(p):
            chars.append(Character(character_id(p.name), p.name, (p.name,)))
    ids = [c.id for c in chars]
    if len(set(ids)) != len(ids):   # only for two names that are equal after NFC normalisation
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise UdpgenError(f"{inp}: several folders/files give the character id {dup[0]} (names equal up to "
                          "Unicode normalisation); rename one")
    return inp, sorted(chars, key=lambda c: c.id)


def _marker_path(markers_dir: Path | None, rel: str) -> Path | None:
    """Markers follow ``udpgen matte``: INPUT/x/y.jpg -> MARKERS/x/y.png."""
    if markers_dir is None:
        return None
    p = markers_dir / Path(rel).with_suffix(".png")
    return p if p.is_file() else None


def plan_jobs(root: Path, characters: list[Character], per_shard: int, views_per_sample: int,
              settings: HanddrawnSettings, markers_dir: Path | None = None,
              decisions: dict[str, str] | None = None) -> list[Job]:
    """Deal chunks into shards: per split (train, val), characters in id order, chunks in file order,
    ``per_shard`` samples per shard. Each job's plan is sha256 over its chunks with file sizes, the marker
    files used, the review decisions of its files (``decisions``: file relative to ``root`` -> 'accept' |
    'reject', :func:`udpgen.drawn.review.decisions_by_input`) and the settings: what the shard's bytes
    depend on, so a changed review remakes only the shards it touches."""
    decisions = decisions or {}
    if per_shard < 1 or views_per_sample < 1:
        raise UdpgenError("--per-shard and --views-per-sample must be at least 1")
    by_split: dict[str, list[Chunk]] = {"train": [], "val": []}
    for c in characters:
        for k in range(0, len(c.files), views_per_sample):
            by_split[split_of(c.id)].append(Chunk(c.id, c.name, k // views_per_sample,
                                                  c.files[k:k + views_per_sample]))
    jobs = []
    for split, chunks in by_split.items():
        for index, start in enumerate(range(0, len(chunks), per_shard)):
            part = tuple(chunks[start:start + per_shard])
            files = [[rel, size_or_missing(root / rel), size_or_missing(_marker_path(markers_dir, rel)),
                      decisions.get(rel)] for ch in part for rel in ch.files]
            plan = hashlib.sha256(json_bytes({"chunks": [[c.character, c.chunk] for c in part], "files": files,
                                               "settings": asdict(settings)})).hexdigest()
            reviewed = tuple((f[0], f[3]) for f in files if f[3] is not None)
            jobs.append(Job(split, index, part, plan, reviewed))
    return jobs


def fit_rgba(rgba: np.ndarray, size: int, crop: bool = False, margin: float = 0.05) -> np.ndarray:
    """(H, W, 4) uint8 straight RGBA -> (size, size, 4) uint8: scaled to fit (aspect kept, premultiplied
    so edges get no dark fringe), centred on a transparent square. size 0 returns it unscaled.
    crop: first cut to the bounding box of alpha > 0, grown by ``margin`` of its longer side."""
    if crop and (rgba[..., 3] > 0).any():
        ys, xs = np.nonzero(rgba[..., 3])
        m = int(round(margin * max(np.ptp(ys) + 1, np.ptp(xs) + 1)))
        rgba = rgba[max(0, ys.min() - m):ys.max() + 1 + m, max(0, xs.min() - m):xs.max() + 1 + m]
    if size == 0:
        return np.ascontiguousarray(rgba)
    h, w = rgba.shape[:2]
    s = size / max(h, w)
    nh, nw = min(size, max(1, round(h * s))), min(size, max(1, round(w * s)))
    a = rgba[..., 3:].astype(np.float32) / 255
    pre = np.concatenate([rgba[..., :3].astype(np.float32) * a, a * 255], axis=2)
    pre = cv2.resize(pre, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    alpha = np.clip(np.round(pre[..., 3]), 0, 255)
    rgb = np.where(alpha[..., None] > 0, pre[..., :3] * 255 / np.maximum(pre[..., 3:], 1e-6), 0)
    out = np.zeros((size, size, 4), np.uint8)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y:y + nh, x:x + nw, :3] = np.clip(np.round(rgb), 0, 255)
    out[y:y + nh, x:x + nw, 3] = alpha
    return out


def prepare_view(image: np.ndarray, markers: np.ndarray | None, settings: HanddrawnSettings
                 ) -> tuple[np.ndarray, float, str]:
    """(H, W, 3|4) uint8 image (+ optional marker scribbles) -> (RGBA view (size, size, 4) uint8,
    confidence, 'input' | 'matte'). Images with a meaningful alpha keep it (confidence 1). Raises
    UdpgenError when the matte is empty or keeps the whole image (no background along the border).
    Images longer than settings.matte_max (and size) are shrunk before matting, markers with them."""
    from udpgen.drawn.matting import alpha_is_meaningful, matte, require_character

    kept = alpha_is_meaningful(image)
    side = max(settings.matte_max, settings.size)
    if not kept and settings.matte_max and max(image.shape[:2]) > side:
        # Matting cost grows with the pixels (a 2048^2 page ~1 s, 4096^2 ~4 s and ~1 GB) while the view
        # keeps size^2. Not much below 4x the view: shrinking 2 px outlines to half a pixel mixes three
        # colours per edge pixel and the unmixing confidence collapses (measured: 0.80 at 4x, 0.0 at 2x).
        f = side / max(image.shape[:2])
        dsize = (max(8, round(image.shape[1] * f)), max(8, round(image.shape[0] * f)))
        image = cv2.resize(np.ascontiguousarray(image[..., :3]), dsize, interpolation=cv2.INTER_AREA)
        if markers is not None:
            markers = cv2.resize(markers, dsize, interpolation=cv2.INTER_NEAREST)
    res = matte(image, markers)
    require_character(res.rgba, kept)
    return fit_rgba(res.rgba, settings.size, settings.crop), float(res.confidence), "input" if kept else "matte"


def run_job(job: Job, root: Path, out_dir: Path, settings: HanddrawnSettings, markers_dir: Path | None = None,
            progress: Callable[[int], None] | None = None, report: Callable[[str], None] | None = None) -> dict:
    """Matte the job's images and write its shard atomically -> its stats (as in stats.json).

    Per-file problems (unreadable, decompression bomb, size mismatch with the markers, empty matte)
    are reported through ``report(message)``, recorded as ``failures`` [{key: file, reason}] and the job
    goes on; a chunk left with no view writes no sample. ``low_confidence`` lists [{key, file,
    confidence}] below settings.min_confidence. Files rejected in review are failures ('rejected in
    review'); accepted ones are kept whatever their confidence. Anything else (disk full, ...) aborts the
    shard."""
    from udpgen.io.images import read_image

    low: list[dict] = []
    decided = dict(job.decisions)
    with ShardWriter(out_dir, job.split, job.index) as w:
        for ch in job.chunks:
            views = []
            for rel in ch.files:
                if decided.get(rel) == "reject":
                    w.fail(rel, "rejected in review")
                    if progress is not None:
                        progress(1)
                    continue
                try:
                    image = read_image(root / rel, settings.max_pixels)
                    mp = _marker_path(markers_dir, rel)
                    markers = read_image(mp, settings.max_pixels) if mp is not None else None
                    if markers is not None and markers.shape[:2] != image.shape[:2]:
                        raise UdpgenError(f"markers {mp} are {markers.shape[1]}x{markers.shape[0]}, the image "
                                          f"is {image.shape[1]}x{image.shape[0]}")
                    rgba, conf, how = prepare_view(image, markers, settings)
                    if conf < settings.min_confidence and settings.skip_low and decided.get(rel) != "accept":
                        raise UdpgenError(f"matte confidence {conf:.3f} < {settings.min_confidence} (--skip-low)")
                except (UdpgenError, OSError, ValueError, cv2.error) as e:
                    reason = str(e).removeprefix(f"{root / rel}: ")
                    w.fail(rel, reason)
                    if report is not None:
                        report(f"{root / rel}: {reason}")
                else:
                    if conf < settings.min_confidence and decided.get(rel) != "accept":
                        low.append({"key": sample_key(ch.character, ch.chunk), "file": rel,
                                    "confidence": round(conf, 4)})
                    views.append(View(rgba, extra={"file": rel, "confidence": round(conf, 4), "alpha": how}))
                if progress is not None:
                    progress(1)
            if views:
                w.write(Sample(ch.character, ch.chunk, views, source="handdrawn", extra={"name": ch.name}))
        w.extra = {"source": "handdrawn", "plan_sha256": job.plan, "settings": asdict(settings), "images": job.files,
                   "low_confidence": low}
    return read_stats(out_dir, job.name)


def _init_worker() -> None:
    cv2.setNumThreads(1)   # the pool already uses every core; OpenCV's own threads would oversubscribe


def _run_job_in_worker(args) -> dict:
    return run_job(*args)


def run_jobs(jobs: list[Job], root: Path, out_dir: Path, settings: HanddrawnSettings,
             markers_dir: Path | None = None, workers: int = 1, progress: Callable[[int], None] | None = None,
             report: Callable[[str], None] | None = None, timeout: float | None = None,
             distributor: str = "processes", ray_address: str | None = None) -> list[dict]:
    """Run the jobs on :func:`udpgen.shards.jobs.run_jobs` (in order here with workers <= 1, else on worker
    processes; with ``distributor="ray"`` each job a Ray task, ``workers`` at a time, on the cluster at
    ``ray_address`` or a local Ray); each job is one shard, so the bytes do not depend on the order or the
    distributor. In a pool or on Ray, progress advances per finished job and messages come per job. Returns the shards that failed as a whole
    ({shard, reason}: a worker died or timed out twice, or the shard could not be written); a rerun
    retries them."""
    from udpgen.shards.jobs import run_jobs as run_shard_jobs

    if distributor == "processes" and (workers <= 1 or len(jobs) <= 1):
        outcomes = run_shard_jobs(jobs, lambda job: run_job(job, root, out_dir, settings, markers_dir, progress,
                                                            report))
    else:
        def on_done(o) -> None:
            if o.ok and report is not None:
                for f in o.result["failures"]:
                    report(f"{root / f['key']}: {f['reason']}")
            if progress is not None:
                progress(o.job[0].files)

        # On Ray the output folder is absolute: a worker on another node does not share this working directory
        where = Path(out_dir).absolute() if distributor == "ray" else out_dir
        outcomes = run_shard_jobs([(job, root, where, settings, markers_dir) for job in jobs], _run_job_in_worker,
                                  workers=workers, timeout=timeout, initializer=_init_worker, on_done=on_done,
                                  distributor=distributor, ray_address=ray_address)
    failed = [{"shard": jobs[o.index].name, "reason": o.error} for o in outcomes if not o.ok]
    if report is not None:
        for f in failed:
            report(f"{out_dir / f['shard']}: {f['reason']} (a rerun retries it)")
    return failed


