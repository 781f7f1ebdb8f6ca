"""The character family: characters generated per second, and how different a family is (pairwise distances of
the characters' A-pose renders: silhouette IoU and colour-histogram distance; near-duplicates counted).

Baseline in the same run: the same distances between the sample character and itself re-rendered (identical
by construction: IoU 1, histogram distance 0) are the floor a duplicate would show.

    python bench/characters.py [--count 100] [--seed 0] [--size 96]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import report  # noqa: E402

# a pair is a near-duplicate when its silhouettes overlap this much AND its colours are this close
NEAR_IOU, NEAR_HIST = 0.95, 0.2


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=96, help="render side for the distance report")
    args = ap.parse_args(argv)

    from udpgen.mmd.pmx import read_pmx
    from udpgen.render import Renderer
    from udpgen.sample import family

    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for i in range(args.count):                     # one character at a time, so the times are per character
            t0 = time.perf_counter()
            family.write_family(tmp, i + 1, args.seed)
            times.append(time.perf_counter() - t0)
        paths = [Path(tmp) / family.character_name(args.seed, i) / f"{family.character_name(args.seed, i)}.pmx"
                 for i in range(args.count)]
        with Renderer(args.size) as r:
            rgbas = [family.apose_render(r, read_pmx(p)) for p in paths]
            from udpgen.sample.character import write_sample
            write_sample(Path(tmp) / "_sample")
            s = read_pmx(Path(tmp) / "_sample" / "sample.pmx")
            same = family.pairwise_distances([family.apose_render(r, s), family.apose_render(r, s)])
    d = family.pairwise_distances(rgbas)
    iu = np.triu_indices(args.count, 1)
    iou, hist = d["iou"][iu], d["hist"][iu]
    near = int(((iou >= NEAR_IOU) & (hist <= NEAR_HIST)).sum())
    med = statistics.median(times)
    rows = [{"count": args.count, "size": args.size, "s_per_char_median": med, "chars_per_s": 1 / med,
             "pairs": len(iou), "iou_median": float(np.median(iou)), "iou_max": float(iou.max()),
             "hist_median": float(np.median(hist)), "hist_min": float(hist.min()), "near_duplicates": near,
             "baseline_same_iou": float(same["iou"][0, 1]), "baseline_same_hist": float(same["hist"][0, 1])}]
    report("characters", rows, {"near_rule": {"iou_ge": NEAR_IOU, "hist_le": NEAR_HIST}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
