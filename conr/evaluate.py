"""``conr evaluate``: L_photo and LPIPS on the validation data per number of reference views n, the shape of
the paper's Table 1 (a model trained with m views, evaluated with sheets of n = 1..8 views).

The evaluation stream of :mod:`conr.data` (no random crops; every item seeded by its sample key, so two runs
see the same items) draws, per validation item, one target view and ``max_views`` reference views once; the
sheet of n views is the first n of them. So the rows differ in n only, not in which targets they measure.
With fewer than n + 1 views in a chunk the references repeat (the paper's one-shot rule).

Metrics, per n, averaged over items (premultiplied RGBA in [0, 1], as the training losses):

* ``photo``: L_photo of the whole pipeline as the paper trains it: the UDP detector on the target's k
  composites, their fused UDP driving the renderer (every item; ``conr train``'s validation "photo");
* ``photo_gt``: L_photo with the renderer driven by the target's ground-truth UDP (labelled items);
* ``nearest_ref``: a baseline without a network: the reference view whose UDP is nearest (mean L1 over all
  four channels) to the target's UDP, taken as the output (labelled items with labelled references). A
  renderer worth its cost beats it;
* ``lpips`` / ``lpips_gt``: LPIPS(vgg) of the same two outputs, only when both weight files resolve locally
  (:func:`conr.losses.build_lpips`; nothing is downloaded), else left out with the reason in ``notes``.

The U-Net baseline preset (cinn off) takes exactly ``model.views`` references: its other rows are empty.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from conr.config import RunConfig
from conr.nn.conr import CoNR
from conr.nn.detector import fuse_detections

COLUMNS = ("n", "samples", "labelled", "photo", "photo_gt", "nearest_ref", "lpips", "lpips_gt")


def _sum(store: dict, key: str, values: torch.Tensor) -> None:
    total, count = store.get(key, (0.0, 0))
    store[key] = (total + float(values.sum()), count + int(values.numel()))


def nearest_reference(refs: torch.Tensor, ref_udp: torch.Tensor, ref_labelled: torch.Tensor,
                      target_udp: torch.Tensor) -> torch.Tensor:
    """refs (B, n, 4, S, S), ref_udp (B, n, 4, S, S), ref_labelled (B, n) bool, target_udp (B, 4, S, S) ->
    (B, 4, S, S): per item the reference whose UDP has the smallest mean |difference| to the target's (the
    first reference when none is labelled)."""
    dist = (ref_udp - target_udp.unsqueeze(1)).abs().mean((2, 3, 4))              # (B, n)
    dist = torch.where(ref_labelled, dist, torch.full_like(dist, math.inf))
    idx = torch.where(ref_labelled.any(1), dist.argmin(1), torch.zeros_like(dist[:, 0], dtype=torch.long))
    return refs[torch.arange(refs.shape[0]), idx]


@torch.inference_mode()
def evaluate_views(model: CoNR, cfg: RunConfig, data: str, *, max_views: int = 8, max_samples: int | None = None,
                   source: str = "auto", holdout: int | None = None, batch: int = 8, workers: int = 0,
                   device: str | torch.device = "cpu",
                   lpips=None, progress: Callable[[int], None] | None = None) -> dict:
    """Evaluate ``model`` (its run config ``cfg``) on the shards in ``data`` for n = 1..max_views.

    source: 'auto' (the val split when there is one, else held-out views when cfg.data.holdout_views > 0),
    'val' or 'holdout'; holdout: override cfg.data.holdout_views. max_samples: items (default
    cfg.data.val_samples). lpips: an LPIPS module or None.
    progress(items) is called after every batch. Returns {'source', 'samples', 'rows': [one dict per n with
    the COLUMNS], 'notes'}. Raises conr.data.DataError (one line) for unusable data.
    """
    from conr.data import DataError, check_shards, eval_loader, eval_source, unwrap_worker_error

    if not 1 <= max_views <= 64:
        raise DataError(f"--views {max_views}: expected 1..64 reference views")
    shards = check_shards(data, need_train=False, backgrounds=cfg.data.backgrounds)
    changes = {"num_workers": workers, "val_source": source}
    if holdout is not None:
        changes["holdout_views"] = holdout
    ecfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **changes))
    ecfg = dataclasses.replace(ecfg, model=ecfg.model.replace(views=max_views))
    src = eval_source(shards, ecfg)
    if src == "none":
        raise DataError(f"{data}: nothing to evaluate on: no committed val-*.tar shards and no held-out views "
                        "(use --source holdout --holdout N to hold out the last N views of every train chunk)")
    limit = max_samples or cfg.data.val_samples
    ns = list(range(1, max_views + 1)) if cfg.model.cinn else [cfg.model.views]
    sums: dict[int, dict] = {n: {} for n in ns}
    seen = labelled = 0
    model.eval()
    try:
        for b in eval_loader(shards, ecfg, src, batch=batch):
            take = min(len(b["key"]), limit - seen)
            if take <= 0:
                break
            b = {k: v[:take].to(device) for k, v in b.items() if isinstance(v, torch.Tensor)}
            lab = b["labelled"]
            B, k = b["target_composites"].shape[:2]
            det = model.detect(b["target_composites"].flatten(0, 1)).unflatten(0, (B, k))
            udps = torch.stack((fuse_detections(det), b["target_udp"]), 1)        # (B, 2, 4, S, S)
            target = b["target_rgba"]
            for n in ns:
                if n > b["refs"].shape[1]:
                    continue
                out = model.render(model.encode(b["refs"][:, :n]), udps).float()    # the sheet encoded once
                s = sums[n]
                _sum(s, "photo", (out[:, 0] - target).abs().mean((1, 2, 3)))
                if lab.any():
                    _sum(s, "photo_gt", (out[lab, 1] - target[lab]).abs().mean((1, 2, 3)))
                    base = nearest_reference(b["refs"][:, :n], b["ref_udp"][:, :n], b["ref_labelled"][:, :n],
                                             b["target_udp"])
                    _sum(s, "nearest_ref", (base[lab] - target[lab]).abs().mean((1, 2, 3)))
                if lpips is not None:
                    _sum(s, "lpips", lpips(out[:, 0, :3], target[:, :3]))
                    if lab.any():
                        _sum(s, "lpips_gt", lpips(out[lab, 1, :3], target[lab, :3]))
            seen += take
            labelled += int(lab.sum())
            if progress is not None:
                progress(take)
    except DataError as e:
        raise unwrap_worker_error(e) from None
    if seen == 0:
        raise DataError(f"{data}: the {src} data gave no usable item (see the warnings above)")
    rows = []
    for n in range(1, max_views + 1):
        row = {"n": n, "samples": seen, "labelled": labelled}
        for key in COLUMNS[3:]:
            total, count = sums.get(n, {}).get(key, (0.0, 0))
            row[key] = total / count if count else None
        rows.append(row)
    notes = [] if cfg.model.cinn else [f"the U-Net baseline takes exactly n = {cfg.model.views} views"]
    return {"source": src, "samples": seen, "labelled": labelled, "trained_views": cfg.model.views,
            "rows": rows, "notes": notes}


def format_table(result: dict) -> str:
    """The rows of :func:`evaluate_views` as a text table (empty cells '-'; LPIPS columns only when measured)."""
    cols = [c for c in COLUMNS if c in ("n", "photo", "photo_gt", "nearest_ref")
            or any(r.get(c) is not None for r in result["rows"])]
    cols = [c for c in cols if c not in ("samples", "labelled")]
    head = {"n": "n", "photo": "L_photo", "photo_gt": "L_photo(gt UDP)", "nearest_ref": "nearest-ref",
            "lpips": "LPIPS", "lpips_gt": "LPIPS(gt UDP)"}
    lines = [f"{result['source']} data, {result['samples']} items ({result['labelled']} labelled); "
             f"model trained with m = {result['trained_views']} views"]
    widths = {c: max(len(head[c]), 8) for c in cols}
    lines.append("  ".join(head[c].rjust(widths[c]) for c in cols))
    for r in result["rows"]:
        cells = [str(r[c]) if c == "n" else ("-" if r[c] is None else f"{r[c]:.4f}") for c in cols]
        lines.append("  ".join(v.rjust(widths[c]) for v, c in zip(cells, cols)))
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)
