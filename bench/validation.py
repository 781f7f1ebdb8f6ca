"""Validation fidelity, before/after in one run: `python -m bench.validation [--characters 24]`.

Three rows of issue #15, each measured on generated data (conr.toy, 64 px) beside the old rule:

* defect 3, which items validation measures: characters covered by ``data.val_samples`` = number of
  characters items, for the old rule (the first items the loader yields, in shard order; 0 and 2 workers)
  and for :func:`conr.data.eval_keys` (the whole split or a seeded sample stratified by character), and
  whether 0 and 2 workers give the same items; and what listing the split costs (tar headers vs reading it);
* defect 10, crops: mean alpha coverage of the validation targets (the whole split) without crops (the old rule), with the
  training crop policy (now), and of training batches drawn from the same val shards, at data.crop_min 0.8;
* defect 11, UDP/RGBA alignment: the largest column-centroid gap (destination px) between a bar one
  destination pixel wide resized by the RGBA path (area / bilinear) and the UDP path, over every sub-pixel
  offset, for cv2.INTER_NEAREST (the old rule) and the centre-aligned nearest of conr.data._crop_resize.

Writes bench/results/validation.json.
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # run from a checkout
from bench.common import report  # noqa: E402

S = 64


def _first_items(shards, cfg, cap: int, workers: int) -> list[str]:
    """The old rule: the first ``cap`` items of an unfiltered evaluation stream."""
    from conr.data import ShardStream, _loader

    stream = ShardStream(cfg, shards.val, shards.bg, 4, (cfg.train.seed, 0x5EED), mode="once", evaluate=True)
    keys = [k for b in _loader(stream, min(workers, len(shards.val)), False) for k in b["key"]]
    return sorted(keys[:cap])


def _selected(shards, cfg, workers: int) -> list[str]:
    import dataclasses

    from conr.data import eval_loader

    c = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, num_workers=workers))
    return sorted(k for b in eval_loader(shards, c, "val", batch=4) for k in b["key"])


def selection_rows(shards, cfg, characters: int) -> list[dict]:
    from conr.data import character_of

    rows = []
    for rule, fn in (("first in shard order (old)", lambda w: _first_items(shards, cfg, cfg.data.val_samples, w)),
                     ("stratified sample (eval_keys)", lambda w: _selected(shards, cfg, w))):
        k0, k2 = fn(0), fn(2)
        rows.append({"defect": 3, "measure": f"characters covered of {characters}, {rule}",
                     "workers_0": len({character_of(k) for k in k0}), "workers_2": len({character_of(k) for k in k2}),
                     "same_items": k0 == k2})
    return rows


def crop_rows(shards, cfg) -> list[dict]:
    import dataclasses

    import torch

    from conr.data import eval_loader, train_loader

    def cover(c):
        return float(torch.cat([b["target_rgba"][:, 3].mean((1, 2)) for b in eval_loader(shards, c, "val", batch=4)]
                               ).mean())

    whole = cover(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, crop_min=1.0)))
    now = cover(cfg)
    # the training stream over the same (val) characters, so only the crop policy differs
    it = iter(train_loader(dataclasses.replace(shards, train=shards.val), cfg, batch=8, segment=0))
    train = float(torch.cat([next(it)["target_rgba"][:, 3].mean((1, 2)) for _ in range(24)]).mean())
    return [{"defect": 10, "measure": f"mean target alpha coverage, crop_min {cfg.data.crop_min}",
             "val_uncropped_old": whole, "val_cropped_now": now, "train_batches": train}]


def listing_rows(shards) -> list[dict]:
    """What choosing the items costs: the val split listed from the tar headers vs read whole."""
    from bench.common import median_seconds
    from udpgen.shards.reader import iter_keys, iter_members

    keys, _ = median_seconds(lambda: [k for p in shards.val for k, _ in iter_keys(p)], 5)
    whole, _ = median_seconds(lambda: [k for p in shards.val for k, _ in iter_members(p)], 5)
    mib = sum(_Path(p).stat().st_size for p in shards.val) / 2**20
    return [{"defect": 3, "measure": f"list the val split ({len(shards.val)} shards, {mib:.1f} MiB), s",
             "iter_keys_headers": keys, "iter_members_read_all": whole, "ratio": whole / keys}]


def alignment_rows() -> list[dict]:
    import cv2

    from conr.data import _crop_resize

    def centroid(w):
        return float((w * np.arange(w.size)).sum() / w.sum())

    rows = []
    for crop in (256, 128, 100, 80, 51, 48):
        width = int(np.ceil(crop / S))
        gaps = {"old": 0.0, "now": 0.0}
        for offset in range(width + 1):
            x0 = crop // 2 + offset
            rgba = np.zeros((crop, crop, 4), np.uint8)
            rgba[:, x0:x0 + width] = 255
            udp = np.zeros((crop, crop, 4), np.float32)
            udp[:, x0:x0 + width] = 1
            a = centroid(_crop_resize(rgba, (0, 0, crop), S, premultiply=True)[..., 3].sum(0))
            old = cv2.resize(udp, (S, S), interpolation=cv2.INTER_NEAREST)[..., 3].sum(0)
            now = _crop_resize(udp, (0, 0, crop), S, nearest=True)[..., 3].sum(0)
            gaps["old"] = max(gaps["old"], abs(a - centroid(old)) if old.sum() else float("inf"))
            gaps["now"] = max(gaps["now"], abs(a - centroid(now)) if now.sum() else float("inf"))
        rows.append({"defect": 11, "measure": f"max UDP-RGBA centroid gap (dst px), {crop} -> {S}",
                     "cv2_nearest_old": gaps["old"], "centre_nearest_now": gaps["now"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--characters", type=int, default=24, help="val characters (4 chunks each)")
    args = ap.parse_args()
    import dataclasses

    from conr.config import load_config
    from conr.toy import write_toy_shards

    with tempfile.TemporaryDirectory() as d:
        shards = write_toy_shards(d, characters=args.characters + 2, views=3, size=S, val_characters=args.characters,
                                  per_shard=3, chunks=4, backgrounds=2)
        cfg = load_config("tiny", [f"data.val_samples={args.characters}", "model.image_size=64"])
        whole_split = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val_samples=4 * args.characters))
        rows = selection_rows(shards, cfg, args.characters) + crop_rows(shards, whole_split)
        listing = listing_rows(shards)
    rows += alignment_rows()
    # one table per defect: the rows have different columns
    for defect in (3, 10, 11):
        report(f"validation-{defect}", [r for r in rows if r["defect"] == defect])
    report("validation-listing", listing)


if __name__ == "__main__":
    main()
