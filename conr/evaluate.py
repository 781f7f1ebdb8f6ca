"""``conr evaluate``: L_photo and LPIPS on the validation data per number of reference views n, the shape of
the paper's Table 1 (a model trained with m views, evaluated with sheets of n = 1..8 views).

The evaluation stream of :mod:`conr.data` (the items of :func:`conr.data.eval_keys`: the whole split, or
``--samples`` of it stratified by character; the training run's crop policy, data.crop_min, as in training
validation, or whole images with ``crops=False``; every item seeded by its sample key, so two runs see the
same items and crops, whatever ``--workers``) draws, per validation item, one target view and ``max_views`` reference views once; the
sheet of n views is the first n of them. So the rows differ in n only, not in which targets they measure.
With fewer than n + 1 views in a chunk the references repeat (the paper's one-shot rule).

Metrics: :mod:`conr.metrics`, the same function as ``conr train``'s validation: per n, averaged over items,
``photo`` (the whole pipeline), ``photo_gt`` (ground-truth UDP), ``nearest_ref`` (the baseline without a
network: a renderer worth its cost beats it), ``lpips`` / ``lpips_gt`` (only when both weight files resolve
locally, :func:`conr.losses.build_lpips`; nothing is downloaded; the variant is named in ``lpips_variant``,
else the reason is in ``notes``); once, the detector's ``udp`` and ``mask`` (Eq. 2-3). ``per_character``
adds the per-n rows of every character.

The U-Net baseline preset (cinn off) takes exactly ``model.views`` references: its other rows are empty.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from conr.config import RunConfig
from conr.metrics import Metrics, measure_batch
from conr.nn.conr import CoNR

COLUMNS = ("n", "samples", "labelled", "photo", "photo_gt", "nearest_ref", "lpips", "lpips_gt")


@torch.inference_mode()
def evaluate_views(model: CoNR, cfg: RunConfig, data: str, *, max_views: int = 8, max_samples: int | None = None,
                   source: str = "auto", holdout: int | None = None, batch: int = 8, workers: int = 0,
                   device: str | torch.device = "cpu", lpips=None, lpips_variant: str | None = None,
                   per_character: bool = False, crops: bool = True,
                   progress: Callable[[int], None] | None = None) -> dict:
    """Evaluate ``model`` (its run config ``cfg``) on the shards in ``data`` for n = 1..max_views.

    source: 'auto' (the val split when there is one, else held-out views when cfg.data.holdout_views > 0),
    'val' or 'holdout'; holdout: override cfg.data.holdout_views. max_samples: items (default
    cfg.data.val_samples). lpips: an LPIPS module or None, ``lpips_variant`` its name. crops: the training
    crop policy of ``cfg`` (as training validation); False: whole images (data.crop_min = 1).
    progress(items) is called after every batch. Returns {'source', 'samples', 'labelled', 'rows': [one dict
    per n with the COLUMNS], 'udp', 'mask', 'lpips_variant', 'notes'} (+ 'per_character': {character: rows}).
    Raises conr.data.DataError (one line) for unusable data.
    """
    from conr.data import DataError, check_shards, eval_loader, eval_source, unwrap_worker_error

    if not 1 <= max_views <= 64:
        raise DataError(f"--views {max_views}: expected 1..64 reference views")
    shards = check_shards(data, need_train=False, backgrounds=cfg.data.backgrounds)
    changes = {"num_workers": workers, "val_source": source}
    if not crops:
        changes["crop_min"] = 1.0
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
    metrics = Metrics(per_character)
    seen = 0
    model.eval()
    try:
        for b in eval_loader(shards, ecfg, src, batch=batch, limit=limit):
            take = min(len(b["key"]), limit - seen)
            if take <= 0:
                break
            b = {k: (v[:take].to(device) if isinstance(v, torch.Tensor) else v[:take]) for k, v in b.items()
                 if isinstance(v, (torch.Tensor, list))}
            measure_batch(model, b, ns, metrics, lpips)
            seen += take
            if progress is not None:
                progress(take)
    except DataError as e:
        raise unwrap_worker_error(e) from None
    if seen == 0:
        raise DataError(f"{data}: the {src} data gave no usable item (see the warnings above)")

    def rows(character: str | None = None) -> list[dict]:
        return [{"n": n, "samples": seen, "labelled": metrics.labelled,
                 **{key: metrics.mean(n, key, character) for key in COLUMNS[3:]}} for n in range(1, max_views + 1)]

    notes = [] if cfg.model.cinn else [f"the U-Net baseline takes exactly n = {cfg.model.views} views"]
    result = {"source": src, "samples": seen, "labelled": metrics.labelled, "trained_views": cfg.model.views,
              "rows": rows(), "udp": metrics.mean(None, "udp"), "mask": metrics.mean(None, "mask"),
              "lpips_variant": lpips_variant if lpips is not None else None, "notes": notes}
    if per_character:
        result["per_character"] = {c: rows(c) for c in metrics.characters()}
    return result


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
    for character, rows in result.get("per_character", {}).items():
        best = min((r for r in rows if r["photo"] is not None), key=lambda r: r["n"], default=None)
        last = max((r for r in rows if r["photo"] is not None), key=lambda r: r["n"], default=None)
        if best is not None:
            lines.append(f"  {character}: L_photo n={best['n']} {best['photo']:.4f} .. n={last['n']} {last['photo']:.4f}"
                         + (f", nearest-ref {last['nearest_ref']:.4f}" if last["nearest_ref"] is not None else ""))
    if result.get("udp") is not None:
        lines.append(f"detector: L_udp {result['udp']:.4f}, L_mask {result['mask']:.4f} (Eq. 2-3, labelled items)")
    if result.get("lpips_variant"):
        lines.append(f"LPIPS variant: {result['lpips_variant']}")
    lines += [f"note: {n}" for n in result["notes"]]
    return "\n".join(lines)
