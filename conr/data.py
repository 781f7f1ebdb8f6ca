"""Stream CoNR training batches from udpgen shards (DESIGN 3.6 -> 3.7).

One training sample is made from one shard sample (a character chunk, ``{character}-{chunk:04d}``):

1. a worker streams shards (``resampled``: drawn with replacement, endless; or ``split`` by rank, then by
   worker), groups tar members into samples through udpgen's one tar walker (:func:`tar_samples`),
   shuffles the still-compressed samples in a buffer, and skips and counts what it cannot use (reasons:
   read_error, missing_field, bad_metadata, decode_error) with one warning per reason and worker;
2. it picks one target view and m reference views of the chunk: m + 1 distinct views when there are
   enough, otherwise every other view at least once and repeats (the paper's one-shot rule: a character
   with a single image gives m copies of it as references);
3. it decodes only those views (8-bit RGBA and 16-bit UDP PNG, OpenCV), premultiplies, and applies the
   appendix's random crop: one crop for the target image and target UDP, and (by default) an independent
   crop per reference, so the renderer must match features across views instead of copying one into place;
4. it pastes the cropped target onto k random backgrounds with :func:`udpgen.composite.composite` (the
   implementation the shard writer uses), from a per-worker pool fed by ``bg-*.tar`` shards or the
   built-in set of :mod:`udpgen.backgrounds.sets`;
5. it batches in the worker (``wds.batched``); :class:`webdataset.WebLoader` moves whole batches.

Batch (a dict; B = per-rank micro-batch, S = model.image_size, m = model.views, k = model.composites):
    refs               (B, m, 4, S, S) float32, premultiplied RGB + alpha, in [0, 1]
    target_udp         (B, 4, S, S)    float32 UDP (x, y, z, occupancy) in [0, 1]; zeros when unlabelled
    target_rgba        (B, 4, S, S)    float32 premultiplied RGBA in [0, 1]
    target_composites  (B, k, 3, S, S) float32 RGB in [0, 1]: the target on k backgrounds
    labelled           (B,)            bool: the target view has a UDP
    key                list of B str   the shard sample each item came from
    skipped            dict[str, int]  this worker's running counts of skipped samples/shards, by reason
    worker             int             the worker that made the batch (to total ``skipped`` over workers)
Evaluation batches also hold ``ref_udp`` (B, m, 4, S, S) and ``ref_labelled`` (B, m) for baselines.

Determinism: a stream is seeded by (seed, segment start step, rank, worker), so the batches of a segment
are a function of those numbers; conr.train restarts the stream at segment boundaries and, on resume,
re-creates the segment and skips the batches already used. Evaluation: the items are chosen from the tar
headers before the stream starts (the whole split, or a seeded sample stratified by character: eval_keys),
and each item (view choice, the training crop policy, backgrounds) is seeded by its key.
"""
from __future__ import annotations

import functools
import json
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import webdataset as wds

from conr.config import RunConfig
from conr.errors import ConfigError, ConrError
from udpgen.io.alpha import premultiply as premultiply_alpha
from udpgen.shards.schema import MEMBER_RE

# OpenCV's own threads would oversubscribe the cores the DataLoader workers already use.
cv2.setNumThreads(1)



class DataError(ConrError):
    """The training data cannot be used: a missing or empty shard directory, shards of another schema, a
    stream that yields nothing usable. One message (DataLoader workers re-raise it by message alone)."""


class _Skip(Exception):
    """A sample that is skipped and counted under ``reason``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.reason, str(self))


@dataclass(frozen=True)
class ShardSet:
    """The committed shards of a data directory (sorted paths)."""

    train: list[str]
    val: list[str]
    bg: list[str]


def _list(d: Path, split: str) -> list[str]:
    from udpgen.shards import list_shards

    return list_shards(d, split)


def resolve_backgrounds(setting: str, shards: ShardSet) -> list[str]:
    """``data.backgrounds`` -> the background sources the loader reads, checked at start-up.

    'auto': the ``bg-*.tar`` shards beside the training shards ([] = the built-in set); 'builtin': [];
    a folder: its committed ``bg-*.tar`` shards if it has any, else its images (udpgen.io.images.list_images,
    recursively). Raises ConfigError naming ``data.backgrounds`` and the path for a folder that does not
    exist or holds neither shards nor a readable image.
    """
    if setting == "auto":
        return list(shards.bg)
    if setting == "builtin":
        return []
    from udpgen.io.images import list_images, read_image

    d = Path(setting).expanduser()
    if not d.is_dir():
        raise ConfigError("data.backgrounds", setting, "no such folder (expected 'auto', 'builtin' or a folder of "
                          "bg-*.tar shards or images)")
    tars = _list(d, "bg")
    if tars:
        return tars
    images = [str(p) for p in list_images(d)]
    for path in images:  # one readable image is enough to start; unreadable ones are skipped later
        try:
            read_image(path)
            return images
        except Exception:  # noqa: BLE001 - any decode failure means "not readable"
            continue
    raise ConfigError("data.backgrounds", setting, "holds no bg-*.tar shard and no readable image")


def check_shards(data_dir: str | Path, need_train: bool = True, backgrounds: str = "auto") -> ShardSet:
    """List the shards of ``data_dir`` and check that the first readable train sample follows the schema.

    ``backgrounds`` (data.backgrounds) is resolved by :func:`resolve_backgrounds` into ``ShardSet.bg``.
    Raises DataError for a missing directory, no committed ``train-*.tar`` (a shard counts once its
    ``.stats.json`` exists), or samples that are not ``{key}.json`` + ``{key}.NNN.rgba.png`` members.
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise DataError(f"{d}: no such shard directory")
    shards = ShardSet(_list(d, "train"), _list(d, "val"), _list(d, "bg"))
    shards = ShardSet(shards.train, shards.val, resolve_backgrounds(backgrounds, shards))
    if need_train and not shards.train:
        raise DataError(f"{d}: no committed train-*.tar shards (a shard counts once its .stats.json exists; "
                        "make them with `udpgen synth` or `udpgen handdrawn`)")
    for path in shards.train[:3]:  # the first readable shard decides; a corrupt one is left to the stream
        try:
            members = _first_sample_members(path)
        except OSError:
            continue
        if members is None:
            continue
        names = sorted(members)
        if "json" not in members or not any((m := MEMBER_RE.match(n)) and m["kind"] == "rgba" for n in members):
            raise DataError(f"{path}: sample members {names[:6]} are not of the udpgen shard schema "
                            "({key}.json, {key}.NNN.rgba.png, {key}.NNN.udp.png; see docs/formats.md)")
        break
    return shards


def _first_sample_members(path: str) -> dict | None:
    """The member names of the shard's first sample (after its key), or None for an empty shard."""
    from udpgen.shards.reader import iter_members

    for _, members in iter_members(path, lambda e: False):
        return members
    return None


# ----------------------------------------------------------------------------------------------------
# One training item from one shard sample


def _square(img: np.ndarray) -> np.ndarray:
    """Pad a non-square image with zeros (transparent / background UDP) to a centred square."""
    h, w = img.shape[:2]
    if h == w:
        return img
    s = max(h, w)
    out = np.zeros((s, s) + img.shape[2:], img.dtype)
    out[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = img
    return out


def _crop_box(rng: np.random.Generator, side: int, crop_min: float) -> tuple[int, int, int]:
    """(y, x, c): a random c x c square inside side x side, c / side uniform in [crop_min, 1]."""
    c = side if crop_min >= 1 else max(1, int(round(side * rng.uniform(crop_min, 1.0))))
    return int(rng.integers(0, side - c + 1)), int(rng.integers(0, side - c + 1)), c


def resize_nearest(img: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """(H, W, ...) -> (height, width, ...) by centre-aligned nearest sampling, same dtype: destination pixel i
    takes the source pixel under its centre, floor((i + 0.5) H / height), on the pixel-centre grid that
    cv2's INTER_AREA / INTER_LINEAR use for images, so a UDP resized with it stays aligned sub-pixel with
    its image. (cv2.INTER_NEAREST takes floor(i H / height): up to half a destination pixel up-left.)
    Nearest because blending landmarks (or landmarks with the zero background) invents landmarks."""
    width = height if width is None else width
    h, w = img.shape[:2]
    iy = np.minimum(((np.arange(height) + 0.5) * (h / height)).astype(np.intp), h - 1)
    ix = np.minimum(((np.arange(width) + 0.5) * (w / width)).astype(np.intp), w - 1)
    return np.ascontiguousarray(img[iy][:, ix])


def _crop_resize(img: np.ndarray, box, size: int, nearest: bool = False, premultiply: bool = False) -> np.ndarray:
    """Crop ``box`` out of a square image and resize it to size x size -> float32. premultiply: ``img`` is
    uint8 straight-alpha RGBA, premultiplied after the crop (less to convert) and before the resize
    (filtering straight colour would bleed the colour of transparent pixels into the edges)."""
    y, x, c = box
    if nearest:  # UDPs: centre-aligned nearest, aligned with the RGBA's filters
        return resize_nearest(img[y:y + c, x:x + c], size)
    img = img[y:y + c, x:x + c]
    if premultiply:
        img = premultiply_alpha(img)
    if c != size:
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if c > size else cv2.INTER_LINEAR)
        np.clip(img, 0, 1, out=img)  # float rounding of the filters can step a hair outside [0, 1]
    return np.ascontiguousarray(img)


def choose_views(rng: np.random.Generator, n_views: int, m: int, holdout: int = 0,
                 evaluate: bool = False) -> tuple[int, list[int]] | None:
    """Pick (target, m references) among ``n_views`` views of a chunk.

    Training (evaluate False): views beyond ``n_views - holdout`` are left out when the chunk has more than
    ``holdout`` views. The target and references are distinct while there are m + 1 views; with fewer,
    every other view is used once and the rest are repeats, and a single view is its own reference (the
    paper's one-shot samples). Evaluation: the target is one of the last ``holdout`` views (None when the
    chunk has no more than ``holdout`` views) and the references come from the others.
    """
    usable = n_views - holdout if n_views > holdout else n_views
    if evaluate:
        if holdout == 0 or n_views <= holdout:
            return None
        target, pool = int(rng.integers(usable, n_views)), list(range(usable))
    else:
        order = [int(i) for i in rng.permutation(usable)]
        target, pool = order[0], order[1:] or order[:1]
    pool = [pool[int(i)] for i in rng.permutation(len(pool))]
    refs = pool[:m] + [pool[int(i)] for i in rng.integers(0, len(pool), max(0, m - len(pool)))]
    return target, refs


class ItemMaker:
    """Shard sample (a WebDataset dict of member bytes) -> training item (numpy, channels first).

    Args:
        cfg: the run config (model.image_size, model.views, model.composites, data.crop_*, holdout_views).
        evaluate: evaluation items (held-out target when ``holdout``, ``ref_udp`` included). Their crops
            follow the training policy (data.crop_min, data.crop_refs_independent) drawn from the caller's
            rng, which the evaluation stream seeds per item key: deterministic per item.
        holdout: draw the target from the held-out views (evaluation on held-out poses).
    Raises _Skip for a sample that cannot be used.
    """

    def __init__(self, cfg: RunConfig, evaluate: bool = False, holdout: bool = False):
        self.size, self.m, self.k = cfg.model.image_size, cfg.model.views, cfg.model.composites
        self.crop_min = cfg.data.crop_min
        self.independent = cfg.data.crop_refs_independent
        self.holdout = cfg.data.holdout_views if (holdout or not evaluate) else 0
        self.evaluate, self.pick_holdout = evaluate, holdout

    def __call__(self, sample: dict, rng: np.random.Generator, backgrounds: list[np.ndarray]) -> dict:
        from udpgen.backgrounds.composite import composite
        from udpgen.errors import UdpgenError
        from udpgen.shards import decode_rgba
        from udpgen.io.udp import decode_png16

        key = sample.get("__key__", "?")
        if "json" not in sample:
            raise _Skip("missing_field", f"{key}: no {key}.json")
        try:
            meta = json.loads(sample["json"])
            views_meta = meta["views"]
            assert isinstance(views_meta, list) and views_meta
        except Exception:  # noqa: BLE001 - any malformed metadata means: skip this sample
            raise _Skip("bad_metadata", f"{key}.json is not the shard metadata") from None
        n = len(views_meta)
        rgba_b = [sample.get(f"{i:03d}.rgba.png") for i in range(n)]
        udp_b = [sample.get(f"{i:03d}.udp.png") for i in range(n)]
        if any(b is None for b in rgba_b):
            raise _Skip("missing_field", f"{key}: {rgba_b.index(None):03d}.rgba.png missing")
        for i, vm in enumerate(views_meta):
            if isinstance(vm, dict) and vm.get("labelled") and udp_b[i] is None:
                raise _Skip("missing_field", f"{key}: {i:03d}.udp.png missing for a labelled view")
        picked = choose_views(rng, n, self.m, self.holdout, evaluate=self.pick_holdout)
        if picked is None:
            raise _Skip("no_holdout_view", f"{key}: {n} view(s), none held out")
        target, refs = picked
        need = sorted({target, *refs})
        try:
            rgba = {i: _square(decode_rgba(rgba_b[i], f"{key}.{i:03d}.rgba.png")) for i in need}
            udp = {i: _square(decode_png16(udp_b[i], f"{key}.{i:03d}.udp.png"))
                   for i in need if udp_b[i] is not None and (self.evaluate or i == target)}
        except UdpgenError as e:
            raise _Skip("decode_error", str(e)) from None
        S = self.size
        # Crops: one for everything of the target, one per reference (or the target's for all).
        tbox = _crop_box(rng, rgba[target].shape[0], self.crop_min)
        t_rgba = _crop_resize(rgba[target], tbox, S, premultiply=True)
        labelled = target in udp
        t_udp = _crop_resize(udp[target], tbox, S, nearest=True) if labelled else np.zeros((S, S, 4), np.float32)
        ref_imgs, ref_udps = [], []
        for i in refs:
            same = rgba[i].shape == rgba[target].shape
            box = tbox if same and not self.independent else _crop_box(rng, rgba[i].shape[0], self.crop_min)
            ref_imgs.append(_crop_resize(rgba[i], box, S, premultiply=True))
            if self.evaluate:
                ref_udps.append(_crop_resize(udp[i], box, S, nearest=True) if i in udp
                                else np.zeros((S, S, 4), np.float32))
        comps = composite(t_rgba, backgrounds, self.k, rng, premultiplied=True).images  # (k, S, S, 3)
        item = {"refs": np.stack(ref_imgs).transpose(0, 3, 1, 2), "target_udp": t_udp.transpose(2, 0, 1),
                "target_rgba": t_rgba.transpose(2, 0, 1), "target_composites": comps.transpose(0, 3, 1, 2),
                "labelled": labelled, "key": key}
        if self.evaluate:
            item["ref_udp"] = np.stack(ref_udps).transpose(0, 3, 1, 2)
            item["ref_labelled"] = np.array([i in udp for i in refs])
        return item


# ----------------------------------------------------------------------------------------------------
# Backgrounds


class BackgroundPool:
    """A worker's decoded backgrounds: ``size`` backgrounds (H, W, 3) uint8 RGB of side ``side``; after
    each sample, ``refresh`` random slots (on average) are replaced by the next background of the (cycled,
    reshuffled) ``bg-*.tar`` stream. With no shards (``paths`` empty) the built-in set of
    udpgen.backgrounds.sets is used."""

    def __init__(self, paths: list[str], side: int, size: int, refresh: float, rng: np.random.Generator, skip):
        self.paths, self.side, self.refresh, self.rng, self.skip = paths, side, refresh, rng, skip
        self.debt = 0.0
        if not paths:
            from udpgen.backgrounds.sets import iter_backgrounds

            self.pool = [img for _, img in iter_backgrounds(None, side, int(rng.integers(2**31)))]
            self.stream = None
            return
        self.images = not paths[0].endswith(".tar")  # a folder of images (resolve_backgrounds)
        self.stream = self._image_stream() if self.images else self._stream()
        self.pool = [img for _, img in zip(range(size), self.stream)]
        if not self.pool:
            raise DataError(f"background shards {paths[:2]}... hold no readable background")

    def _image_stream(self):
        from udpgen.backgrounds.sets import iter_backgrounds

        while True:
            got = 0
            order = [self.paths[int(i)] for i in self.rng.permutation(len(self.paths))]
            for _, img in iter_backgrounds(order, self.side, int(self.rng.integers(2**31)), max_hamming=-1,
                                           on_error=lambda path, exc: None):
                got += 1
                yield img
            if not got:
                return

    def _stream(self):
        from udpgen.backgrounds.sets import fit
        from udpgen.shards import iter_backgrounds

        while True:
            got = 0
            for path in [self.paths[int(i)] for i in self.rng.permutation(len(self.paths))]:
                for _, img in iter_backgrounds(path, handler=self.skip):
                    got += 1
                    yield fit(img, self.side, self.rng)
            if not got:
                return

    def step(self) -> None:
        if self.stream is None:
            return
        self.debt += self.refresh
        while self.debt >= 1:
            self.debt -= 1
            img = next(self.stream, None)
            if img is None:
                return
            self.pool[int(self.rng.integers(len(self.pool)))] = img


# ----------------------------------------------------------------------------------------------------
# The stream: shards -> samples -> shuffled -> items -> batches, in each worker


def _shuffle(samples, bufsize: int, initial: int, rng: np.random.Generator):
    """Shuffle a stream in a buffer (of compressed samples: cheap to hold). The buffer fills to ``initial``
    before the first yield, then grows by one every other sample up to ``bufsize``."""
    buf, grow = [], False
    for x in samples:
        buf.append(x)
        if len(buf) < initial:
            continue
        if len(buf) < bufsize:
            grow = not grow
            if grow:
                continue
        j = int(rng.integers(len(buf)))
        buf[j], buf[-1] = buf[-1], buf[j]
        yield buf.pop()
    rng.shuffle(buf)
    yield from buf


def tar_samples(urls, on_error):
    """Stream shards -> WebDataset-style samples {'__key__', '__url__', member: bytes} through udpgen's one
    tar walker (:func:`udpgen.shards.reader.iter_members`), which also checks each shard's end: a truncated
    or damaged shard (tarfile, and so webdataset, would end it quietly) reaches ``on_error`` as a DataError
    and the stream goes on with the next shard."""
    from udpgen.shards.reader import iter_members

    for url in urls:
        def handler(exc: Exception, url=url) -> bool:
            on_error(DataError(f"{url}: {exc}"))
            return True

        try:
            for key, members in iter_members(url, handler):
                yield {"__key__": key, "__url__": url, **members}
        except OSError as e:                    # the file itself: missing, unreadable
            on_error(DataError(f"{url}: {type(e).__name__}: {e}"))


def collate(items: list[dict]) -> dict:
    """Stack items into the batch of the module docstring (``skipped``/``worker`` are added by the stream)."""
    batch = {k: torch.from_numpy(np.stack([it[k] for it in items])) for k in items[0]
             if k not in ("key", "labelled")}
    batch["labelled"] = torch.tensor([bool(it["labelled"]) for it in items])
    batch["key"] = [it["key"] for it in items]
    return batch


class ShardStream(torch.utils.data.IterableDataset):
    """An endless (train) or one-pass (evaluation) stream of batches; see the module docstring.

    Args:
        cfg: run config. urls: shard paths. bg: background shard paths ([] = built-in set).
        batch: items per batch (the per-rank micro-batch). seed: ints seeding the stream, e.g.
            (train.seed, segment start, rank); the worker id is appended inside the worker.
        mode: 'resampled' | 'split' (endless training streams) or 'once' (one pass, evaluation).
        rank, world: DDP rank and world size ('split' takes shards[rank::world], then by worker).
        evaluate, holdout: evaluation items (see :class:`ItemMaker`).
        keys: only the samples with these keys become items (the others are passed over unread and
            uncounted); None = all.
    """

    def __init__(self, cfg: RunConfig, urls: list[str], bg: list[str], batch: int, seed: tuple[int, ...],
                 mode: str = "resampled", rank: int = 0, world: int = 1, evaluate: bool = False,
                 holdout: bool = False, keys: frozenset[str] | None = None):
        super().__init__()
        if not urls:
            raise DataError("no shards to stream")
        self.cfg, self.urls, self.bg, self.batch, self.seed = cfg, list(urls), list(bg), batch, tuple(seed)
        self.mode, self.rank, self.world, self.evaluate = mode, rank, world, evaluate
        self.keys = None if keys is None else frozenset(keys)
        self.maker = ItemMaker(cfg, evaluate=evaluate, holdout=holdout)

    def _urls(self, worker: int, workers: int, rng: np.random.Generator):
        if self.mode == "resampled":
            while True:
                yield self.urls[int(rng.integers(len(self.urls)))]
        # 'split' as wds.split_by_node + wds.split_by_worker, with rank and worker passed in explicitly
        # (they also seed the stream); 'once' splits by worker only: evaluation runs on one rank.
        mine = self.urls[self.rank::self.world] if self.mode == "split" else self.urls
        mine = mine[worker::workers]
        if self.mode == "once":
            yield from mine
            return
        if not mine:
            raise DataError(f"shard_mode 'split' needs at least world_size x workers = "
                            f"{self.world * workers} train shards, there are {len(self.urls)}")
        while True:
            yield from [mine[int(i)] for i in rng.permutation(len(mine))]

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        shard_rng, shuffle_rng, item_rng, bg_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence([*self.seed, worker]).spawn(4))
        counts: Counter = Counter()
        warned: set = set()

        def skip(reason: str, detail: str) -> None:
            counts[reason] += 1
            if reason not in warned:  # one warning per reason and worker; the counts go with every batch
                warned.add(reason)
                warnings.warn(f"conr.data: skipping ({reason}): {detail}", stacklevel=2)

        def on_read_error(exc: Exception) -> bool:  # a webdataset-style handler: count, warn, go on
            skip("read_error", str(exc))
            return True

        if self.evaluate:  # the same pool in every worker, never refreshed: items depend on their key only
            bg_rng = np.random.default_rng([*self.seed, 7])
        side = int(round(self.cfg.model.image_size * 1.5))
        pool = BackgroundPool(self.bg, side, self.cfg.data.bg_pool, 0 if self.evaluate else self.cfg.data.bg_refresh,
                              bg_rng, lambda e: on_read_error(e))
        samples = tar_samples(self._urls(worker, workers, shard_rng), on_read_error)
        if not self.evaluate:
            samples = _shuffle(samples, self.cfg.data.shuffle_buffer, self.cfg.data.shuffle_initial, shuffle_rng)

        def items():
            streak = 0
            for sample in samples:
                key = str(sample.get("__key__", ""))
                if self.keys is not None and key not in self.keys:
                    continue
                rng = np.random.default_rng([*self.seed, zlib.crc32(key.encode())]) if self.evaluate else item_rng
                try:
                    item = self.maker(sample, rng, pool.pool)
                except _Skip as e:
                    if e.reason != "no_holdout_view":
                        skip(e.reason, str(e))
                        streak += 1
                    if streak >= self.cfg.data.max_bad_streak:
                        raise DataError(f"{streak} unusable samples in a row (last: {e}); are these shards of "
                                        "the udpgen schema (docs/formats.md)?") from None
                    continue
                streak = 0
                pool.step()
                yield item

        def collate_counted(batch_items):
            batch = collate(batch_items)
            batch["skipped"], batch["worker"] = dict(counts), worker
            return batch

        yield from wds.batched(self.batch, collation_fn=collate_counted, partial=self.evaluate)(items())


def _loader(stream: ShardStream, workers: int, pin_memory: bool) -> wds.WebLoader:
    kw = {"prefetch_factor": stream.cfg.data.prefetch_factor} if workers else {}
    # an own generator for the DataLoader's worker base seed: the global torch RNG stays untouched (and
    # the stream does not use it: its seeds are explicit)
    gen = torch.Generator().manual_seed(zlib.crc32(repr(stream.seed).encode()))
    return wds.WebLoader(stream, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin_memory,
                         generator=gen, **kw)


def check_split(shards: ShardSet, cfg: RunConfig, world: int) -> None:
    """'split' gives every rank and worker its own shards: there must be enough of them."""
    parts = world * max(cfg.data.num_workers, 1)
    if cfg.data.shard_mode == "split" and len(shards.train) < parts:
        raise DataError(f"data.shard_mode 'split' needs at least world_size x workers = {parts} train shards, "
                        f"there are {len(shards.train)} (use shard_mode 'resampled' or fewer workers)")


def train_loader(shards: ShardSet, cfg: RunConfig, *, batch: int, segment: int, rank: int = 0, world: int = 1,
                 pin_memory: bool = False) -> wds.WebLoader:
    """The endless training stream of one rank for the data segment starting at optimizer step ``segment``:
    batches of ``batch`` items, seeded by (train.seed, segment, rank, worker)."""
    check_split(shards, cfg, world)
    stream = ShardStream(cfg, shards.train, shards.bg, batch, (cfg.train.seed, segment, rank),
                         mode=cfg.data.shard_mode, rank=rank, world=world)
    return _loader(stream, cfg.data.num_workers, pin_memory)


def eval_source(shards: ShardSet, cfg: RunConfig) -> str:
    """Resolve data.val_source: 'val', 'holdout' or 'none'."""
    source = cfg.data.val_source
    if source == "auto":
        source = "val" if shards.val else "holdout" if cfg.data.holdout_views else "none"
    if source == "val" and not shards.val:
        raise DataError("data.val_source is 'val' but the data directory has no committed val-*.tar shards")
    if source == "holdout" and not cfg.data.holdout_views:
        raise DataError("data.val_source is 'holdout' but data.holdout_views is 0")
    return source


def character_of(key: str) -> str:
    """'alice-0003' -> 'alice' (sample keys are '{character}-{chunk:04d}', udpgen.shards.schema.sample_key)."""
    return key.rsplit("-", 1)[0]


@functools.lru_cache(maxsize=8)
def _eval_keys(urls: tuple[str, ...], holdout: int, limit: int, seed: int) -> tuple[tuple[str, str], ...]:
    """((shard, key), ...) of the evaluation items; see :func:`eval_keys`. Cached: shards are immutable once
    committed, and a run validates on the same items many times."""
    from udpgen.shards.reader import iter_keys

    found: dict[str, str] = {}                              # key -> its shard (the first, should one repeat)
    for url in urls:
        for key, names in iter_keys(url):
            views = sum(1 for n in names if (m := MEMBER_RE.match(n)) and m["kind"] == "rgba")
            if "json" in names and views and (not holdout or views > holdout):
                found.setdefault(key, url)
    keys = sorted(found)
    if len(keys) > limit:
        # stratified by character: a seeded order of the characters and of each one's chunks, then round
        # robin (every character's r-th chunk before any character's (r+1)-th) up to the cap
        rng = np.random.default_rng([seed, 0x5EED, 1])
        by_char: dict[str, list[str]] = {}
        for key in keys:
            by_char.setdefault(character_of(key), []).append(key)
        chars = [sorted(by_char)[int(i)] for i in rng.permutation(len(by_char))]
        queues = [[by_char[c][int(i)] for i in rng.permutation(len(by_char[c]))] for c in chars]
        picked: list[str] = []
        for r in range(max(len(q) for q in queues)):
            picked += [q[r] for q in queues if r < len(q)][:limit - len(picked)]
            if len(picked) >= limit:
                break
        keys = sorted(picked)
    return tuple((found[k], k) for k in keys)


def _selection(shards: ShardSet, cfg: RunConfig, source: str, limit: int | None) -> tuple[tuple[str, str], ...]:
    """((shard, key), ...) of :func:`eval_keys`; DataError when there is none."""
    urls = shards.val if source == "val" else shards.train
    holdout = cfg.data.holdout_views if source == "holdout" else 0
    selected = _eval_keys(tuple(urls), holdout, limit or cfg.data.val_samples, cfg.train.seed)
    if not selected:
        raise DataError(f"the {source} data holds no usable sample (no {{key}}.json + {{key}}.NNN.rgba.png member "
                        "group" + (f" with more than {holdout} views)" if holdout else ")"))
    return selected


def eval_keys(shards: ShardSet, cfg: RunConfig, source: str, limit: int | None = None) -> list[str]:
    """The keys of the evaluation items, sorted: every usable sample of the val split ('val') or every
    train chunk with more than data.holdout_views views ('holdout'), listed from the tar headers
    (:func:`udpgen.shards.reader.iter_keys`); when there are more than ``limit`` (default
    data.val_samples), a sample of ``limit`` stratified by character, seeded by train.seed. A function of
    the shards and those settings only: the same for any number of loader workers. Raises DataError when
    the split holds no usable sample (conr train checks this at start-up)."""
    return [k for _, k in _selection(shards, cfg, source, limit)]


def eval_loader(shards: ShardSet, cfg: RunConfig, source: str, *, batch: int,
                limit: int | None = None) -> wds.WebLoader:
    """One deterministic pass over the items of :func:`eval_keys` (``limit``: the cap, default
    data.val_samples): the val split, or held-out views of the train split. The items go through the
    training crop policy (data.crop_min, data.crop_refs_independent: one random crop for the target image
    and UDP, one per reference), so validation losses measure the task the training losses do; each item's
    view choice, crops and backgrounds are seeded by (train.seed, key): the same items look the same at
    every validation and for any number of workers (only the order of the batches depends on the workers;
    the metrics are means over items)."""
    selected = _selection(shards, cfg, source, limit)
    used = {u for u, _ in selected}
    urls = [u for u in (shards.val if source == "val" else shards.train) if u in used]  # only shards with an item
    stream = ShardStream(cfg, urls, shards.bg, batch, (cfg.train.seed, 0x5EED), mode="once", evaluate=True,
                         holdout=source == "holdout", keys=frozenset(k for _, k in selected))
    return _loader(stream, min(cfg.data.num_workers, len(urls)), False)


class SkipTotals:
    """Totals of the per-worker running ``skipped`` counts over all batches seen (and earlier streams)."""

    def __init__(self, base: dict | None = None):
        self.base, self.current = Counter(base or {}), {}

    def update(self, batch: dict) -> None:
        self.current[batch.get("worker", 0)] = batch.get("skipped", {})

    def new_stream(self) -> None:
        """A new stream restarts the workers' counts: fold the finished stream into the base."""
        self.base = Counter(self.total())
        self.current = {}

    def total(self) -> dict[str, int]:
        out = Counter(self.base)
        for c in self.current.values():
            out.update(c)
        return dict(sorted(out.items()))


def unwrap_worker_error(e: Exception) -> Exception:
    """A DataError raised in a DataLoader worker comes back with the worker's traceback in its message:
    keep its own last line, so the command line can print one line."""
    if isinstance(e, DataError):
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        last = lines[-1] if lines else ""
        if "DataError: " in last:
            return DataError(last.split("DataError: ", 1)[1])
    return e
