"""The metrics' definitions on one fixed checkpoint: how far the numbers move with what issue #15 defect 10
changed, so figures from before and after the change can be told apart.

A tiny CoNR is trained for ``--steps`` on toy shards (conr.toy, a temporary folder; or ``--checkpoint CK
--data SHARDS``), then its validation split is measured by :func:`conr.evaluate.evaluate_views` four ways,
on the same items:

* ``photo`` as conr.metrics defines it now (mean |RGB| of premultiplied colour) and as before (``photo_rgba``:
  the mean over the four channels, alpha counted again beside the colour that already carries it);
* on training-like crops (data.crop_min, the default of validation and ``conr evaluate`` now) and on whole
  images (``--no-crop``; validation before the change).

Usage:
  python bench/metrics.py                 # 200 steps of the tiny preset (a few minutes on one core)
  python bench/metrics.py --checkpoint RUN/ckpt/last.pt --data SHARDS
Writes bench/results/metrics.json.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from bench.common import report  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _photo_rgba(pred, target):
    """The definition before the change: (B, 4, S, S) pair -> (B,) mean |difference| over RGBA."""
    return (pred.float() - target.float()).abs().mean((1, 2, 3))


def measure(ckpt: Path, data: Path, samples: int) -> list[dict]:
    import conr.metrics as M
    from conr.evaluate import evaluate_views
    from conr.infer import model_from_checkpoint

    model, cfg = model_from_checkpoint(ckpt)
    n = cfg.model.views
    rows, now = [], M._photo
    for crops in (True, False):
        out = {}
        for name, fn in (("photo", now), ("photo_rgba", _photo_rgba)):
            M._photo = fn                   # the one place measure_batch scores a pair
            try:
                ev = evaluate_views(model, cfg, str(data), max_views=n, max_samples=samples, source="val",
                                    crops=crops)
            finally:
                M._photo = now
            r = ev["rows"][n - 1]
            out[name], out[name + "_nearest_ref"] = r["photo"], r["nearest_ref"]
            out["items"] = ev["samples"]
        rows.append({"images": "crops (now)" if crops else "whole (before)", "n": n, "items": out["items"],
                     "photo_rgb": out["photo"], "photo_rgba": out["photo_rgba"],
                     "rgba_over_rgb": out["photo_rgba"] / out["photo"],
                     "nearest_ref_rgb": out["photo_nearest_ref"], "nearest_ref_rgba": out["photo_rgba_nearest_ref"]})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, help="a conr train checkpoint (default: train one)")
    ap.add_argument("--data", type=Path, help="its shards (with --checkpoint)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--samples", type=int, default=64, help="validation items")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, data = a.checkpoint, a.data
        if ckpt is None:
            from conr.toy import write_toy_shards

            data = Path(tmp) / "data"
            write_toy_shards(data, characters=24, views=6, size=64, val_characters=8, per_shard=4, chunks=4)
            run = Path(tmp) / "run"
            subprocess.run([sys.executable, "-m", "conr.cli", "train", "--config", "tiny", "--data", str(data),
                            "--out", str(run), "--steps", str(a.steps), "--set", "data.num_workers=0",
                            "--set", "train.progress=false", "--set", "train.tensorboard=false"],
                           cwd=REPO, check=True, capture_output=True)
            ckpt = run / "ckpt" / "last.pt"
        rows = measure(ckpt, data, a.samples)
    report("metrics", rows, {"checkpoint": str(a.checkpoint or f"tiny, {a.steps} steps on toy shards")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
