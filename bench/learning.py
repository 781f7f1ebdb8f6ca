"""Does the `tiny` preset learn on CPU? `python -m bench.learning --data SHARDS [--steps 600]`.

Trains the tiny preset (conr.train, CPU) on the shards with one view of every chunk held out
(data.holdout_views = 1): those poses are never a target or a reference in training. Validation renders
each held-out pose from its ground-truth UDP and the chunk's other views (the inference use: a new pose of
a known character) and reports L_photo, the L1 of premultiplied RGBA, at step 0 and every --eval-every
steps (the whole pipeline, detector -> renderer, is reported beside it as ``photo_pipeline``).

Baselines on exactly the same evaluation items (conr.data.eval_loader is deterministic):
  nearest-reference   the reference whose UDP is closest (mean |UDP_ref - UDP_target|) to the target's,
                      copied as the output: what a pose lookup in the character sheet gives;
  oracle-reference    the reference with the lowest L1 to the target (an upper bound for copying);
  empty               a fully transparent image (what a renderer that collapsed to alpha = 0 scores).

Pass criteria (printed and in the JSON): final L_photo < 0.6 x its step-0 value, and below the
nearest-reference baseline. The empty baseline is there to show the first criterion alone is not learning.

Meant for real shards from the synthetic generator (`udpgen synth`); --toy generates the toy shards of
conr.data.write_toy_shards instead (for testing the script). Writes bench/results/learning.json.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))  # run from a checkout
from bench.common import report  # noqa: E402


def baselines(shards, cfg, max_samples: int) -> dict:
    """L1 of the baselines over the labelled held-out items (the items photo_gt is measured on)."""
    from conr.data import eval_loader

    sums = {"nearest-reference": 0.0, "oracle-reference": 0.0, "empty": 0.0}
    n = seen = 0
    for batch in eval_loader(shards, cfg, "holdout", batch=8, limit=max_samples):
        for i in range(len(batch["key"])):
            seen += 1
            if seen > max_samples:
                break
            if not batch["labelled"][i] or not batch["ref_labelled"][i].any():
                continue
            target, refs = batch["target_rgba"][i], batch["refs"][i]                  # (4, S, S), (m, 4, S, S)
            udp_d = (batch["ref_udp"][i] - batch["target_udp"][i]).abs().mean((1, 2, 3))
            udp_d[~batch["ref_labelled"][i]] = float("inf")
            l1 = (refs - target).abs().mean((1, 2, 3))
            sums["nearest-reference"] += float(l1[udp_d.argmin()])
            sums["oracle-reference"] += float(l1.min())
            sums["empty"] += float(target.abs().mean())
            n += 1
    return {k: v / max(n, 1) for k, v in sums.items()} | {"items": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", help="shard folder (train-*.tar with chunks of several views)")
    src.add_argument("--toy", action="store_true", help="generate toy shards instead (tests the script)")
    ap.add_argument("--steps", type=int, default=600, help="optimizer steps of the tiny preset")
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-samples", type=int, default=64)
    ap.add_argument("--out", help="run folder (default: a temporary one)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="more config overrides on top of the tiny preset")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from conr.config import load_config
    from conr.data import check_shards, write_toy_shards
    from conr.train import train

    tmp = tempfile.TemporaryDirectory()
    data = args.data
    if args.toy:
        data = str(Path(tmp.name) / "shards")
        write_toy_shards(data, characters=24, views=8, size=64, val_characters=2, per_shard=4)
    cfg = load_config("tiny", [f"train.steps={args.steps}", f"train.val_every={args.eval_every}",
                               "train.val_at_start=true", "data.holdout_views=1", "data.val_source=holdout",
                               f"data.val_samples={args.eval_samples}", "train.progress=false",
                               "train.tensorboard=false", "train.ckpt_every=0", *args.overrides])
    out = Path(args.out) if args.out else Path(tmp.name) / "run"
    t0 = time.perf_counter()
    train(cfg, data, out, log=lambda m: print(m, flush=True))
    wall = time.perf_counter() - t0
    base = baselines(check_shards(data), cfg, args.eval_samples)

    vals = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [r for r in vals if r["split"] == "val"]
    first, last = vals[0], vals[-1]
    rows = [{"step": r["step"], "photo": r.get("photo_gt", float("nan")), "photo_pipeline": r["photo"],
             "ratio_to_step0": r.get("photo_gt", float("nan")) / first.get("photo_gt", float("nan")),
             "udp": r.get("udp", float("nan")), "mask": r.get("mask", float("nan"))} for r in vals]
    final = rows[-1]["photo"]
    checks = {"below_0.6x_step0": final < 0.6 * rows[0]["photo"],
              "below_nearest_reference": final < base["nearest-reference"],
              "below_empty_image": final < base["empty"]}
    extra = {"data": "toy shards (generated)" if args.toy else args.data, "steps": args.steps,
             "wall_s": wall, "config": cfg.to_dict(), "baselines": base, "checks": checks,
             "eval_items": last.get("labelled")}
    report("learning", rows, extra)
    print("baselines (same items): " + ", ".join(f"{k} {v:.4f}" for k, v in base.items() if k != "items")
          + f" over {base['items']} items")
    print(f"{args.steps} steps in {wall:.0f} s; " + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}"
                                                        for k, v in checks.items()))
    tmp.cleanup()


if __name__ == "__main__":
    main()
