"""The one set of metrics, for ``conr train``'s validation and ``conr evaluate`` alike.

Per validation item and per number of reference views n (the sheet is the first n references of the item):

* ``photo``: L_photo of the whole pipeline (the UDP detector on the target's k composites, their fused UDP
  driving the renderer): mean |RGB_pred - RGB_target| over the image, premultiplied RGB in [0, 1] (alpha
  is not counted twice: premultiplied colour already carries the silhouette), every item;
* ``photo_gt``: the same with the renderer driven by the target's ground-truth UDP (labelled items);
* ``nearest_ref``: a baseline without a network: the reference whose UDP is nearest the target's (mean L1
  over all four channels), taken as the output, scored as ``photo`` (labelled items);
* ``lpips`` / ``lpips_gt``: LPIPS of the two outputs' RGB when the weights resolve locally; the variant is
  named in the result (``lpips_variant``);
* ``udp`` and ``mask``: Eq. 2 (mean |xyz| error inside the ground-truth occupancy) and Eq. 3 (BCE of the
  fused occupancy) of the detector on the composites, labelled items; they do not depend on n.

Sums are kept per n and, when asked, per character (the key before its chunk number), so a table can be
printed per n = 1..8 and per character (``conr evaluate --per-character``).
"""
from __future__ import annotations

import math
from collections import defaultdict

import torch

from conr.data import character_of  # noqa: F401 - one definition, shared with the selection of items
from conr.losses import mask_loss, udp_loss
from conr.nn.detector import fuse_detections

__all__ = ["PER_N", "Metrics", "nearest_reference", "measure_batch", "character_of", "lpips_variant"]

PER_N = ("photo", "photo_gt", "nearest_ref", "lpips", "lpips_gt")
DETECTOR = ("udp", "mask")


def lpips_variant(train_cfg) -> str:
    """The LPIPS the metrics use, named as papers should: :class:`conr.losses.LPIPS` with the configured files."""
    return (f"LPIPS v0.1, VGG16 features ({train_cfg.lpips_backbone}), linear heads ({train_cfg.lpips_linear}); "
            "inputs premultiplied RGB in [0, 1], scaled to [-1, 1]; spatial mean")


def nearest_reference(refs: torch.Tensor, ref_udp: torch.Tensor, ref_labelled: torch.Tensor,
                      target_udp: torch.Tensor) -> torch.Tensor:
    """refs (B, n, 4, S, S), ref_udp (B, n, 4, S, S), ref_labelled (B, n) bool, target_udp (B, 4, S, S) ->
    (B, 4, S, S): per item the reference whose UDP has the smallest mean |difference| to the target's (the
    first reference when none is labelled)."""
    dist = (ref_udp - target_udp.unsqueeze(1)).abs().mean((2, 3, 4))              # (B, n)
    dist = torch.where(ref_labelled, dist, torch.full_like(dist, math.inf))
    idx = torch.where(ref_labelled.any(1), dist.argmin(1), torch.zeros_like(dist[:, 0], dtype=torch.long))
    return refs[torch.arange(refs.shape[0]), idx]


def _photo(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, 4, S, S) premultiplied RGBA pair -> (B,) mean |RGB difference|."""
    return (pred[:, :3].float() - target[:, :3].float()).abs().mean((1, 2, 3))


class Metrics:
    """Running sums of :func:`measure_batch`; ``result()`` gives the means."""

    def __init__(self, per_character: bool = False):
        self.per_character = per_character
        self.sums: dict = defaultdict(lambda: [0.0, 0])           # (n, key) or (n, key, character) -> [sum, count]
        self.samples = self.labelled = 0

    def add(self, n, key: str, values: torch.Tensor, keys: list[str] | None = None) -> None:
        """``values`` (b,) per item; ``keys`` their sample keys (for the per-character sums)."""
        v = values.detach().float().cpu()
        s = self.sums[(n, key)]
        s[0] += float(v.sum())
        s[1] += int(v.numel())
        if self.per_character and keys is not None:
            for k, x in zip(keys, v.tolist()):
                c = self.sums[(n, key, character_of(k))]
                c[0] += x
                c[1] += 1

    def mean(self, n, key: str, character: str | None = None) -> float | None:
        total, count = self.sums.get((n, key) if character is None else (n, key, character), (0.0, 0))
        return total / count if count else None

    def characters(self) -> list[str]:
        return sorted({k[2] for k in self.sums if len(k) == 3})


@torch.no_grad()
def measure_batch(model, b: dict, ns: list[int], metrics: Metrics, lpips=None) -> dict:
    """Score one evaluation batch (tensors on the model's device; ``b['key']`` the sample keys) for every n in
    ``ns`` (at most the batch's reference count) into ``metrics``. Returns the outputs of the largest n:
    {'pred' (B, 4, S, S) pipeline output, 'pred_gt' (B, 4, S, S) ground-truth-UDP output, 'udp' (B, 4, S, S)
    fused detection}."""
    lab = b["labelled"]
    keys = list(b.get("key", [])) or None
    lab_keys = [k for k, m in zip(keys, lab.tolist()) if m] if keys else None
    B, k = b["target_composites"].shape[:2]
    det = model.detect(b["target_composites"].flatten(0, 1)).unflatten(0, (B, k))    # (B, k, 4, S, S)
    fused = fuse_detections(det)
    udps = torch.stack((fused, b["target_udp"]), 1)                                  # (B, 2, 4, S, S)
    target = b["target_rgba"]
    if lab.any():
        m = int(lab.sum())
        metrics.add(None, "udp", udp_loss(det, b["target_udp"], lab).reshape(1).repeat(m))
        metrics.add(None, "mask", mask_loss(det, b["target_udp"], lab).reshape(1).repeat(m))
    out = None
    for n in ns:
        if n > b["refs"].shape[1]:
            continue
        out = model.render(model.encode(b["refs"][:, :n]), udps).float()            # the sheet encoded once
        metrics.add(n, "photo", _photo(out[:, 0], target), keys)
        if lab.any():
            metrics.add(n, "photo_gt", _photo(out[lab, 1], target[lab]), lab_keys)
            base = nearest_reference(b["refs"][:, :n], b["ref_udp"][:, :n], b["ref_labelled"][:, :n],
                                     b["target_udp"])
            metrics.add(n, "nearest_ref", _photo(base[lab], target[lab]), lab_keys)
        if lpips is not None:
            metrics.add(n, "lpips", lpips(out[:, 0, :3], target[:, :3]), keys)
            if lab.any():
                metrics.add(n, "lpips_gt", lpips(out[lab, 1, :3], target[lab, :3]), lab_keys)
    metrics.samples += B
    metrics.labelled += int(lab.sum())
    if out is None:
        return {}
    return {"pred": out[:, 0], "pred_gt": out[:, 1], "udp": fused.float()}
