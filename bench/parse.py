"""Parse speed of the MMD readers on one core, beside the per-element reference decoder in the same run.

Goal (issue 2): Gene_light.pmx (28,646 vertices, 224 bones) in under 100 ms median.

    python bench/parse.py [--repeats 15] [--model PATH ...]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import SHARED, median_seconds, pin_one_core, report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--model", action="append", type=Path, help="PMX/PMD files (default: Gene and the sample)")
    args = ap.parse_args()
    pin_one_core()
    from udpgen.mmd.pmd import parse_pmd
    from udpgen.mmd.pmx import parse_pmx

    repo = Path(__file__).resolve().parents[1]
    models = args.model or [p for p in (SHARED / "assets/gene/Gene_light.pmx", SHARED / "assets/gene/Gene.pmd",
                                        repo / "assets/sample/sample.pmx") if p.is_file()]
    rows = []
    for path in models:
        data = path.read_bytes()
        if data.startswith(b"PMX "):
            fast, _ = median_seconds(lambda: parse_pmx(data), args.repeats)
            ref, _ = median_seconds(lambda: parse_pmx(data, reference=True), max(3, args.repeats // 5))
            rows.append({"file": path.name, "bytes": len(data), "median_ms": fast * 1e3,
                         "reference_ms": ref * 1e3, "speedup": ref / fast, "goal_ms": 100.0,
                         "meets_goal": fast < 0.1})
        else:
            fast, _ = median_seconds(lambda: parse_pmd(data), args.repeats)
            rows.append({"file": path.name, "bytes": len(data), "median_ms": fast * 1e3, "reference_ms": "-",
                         "speedup": "-", "goal_ms": 100.0, "meets_goal": fast < 0.1})
    if not rows:
        sys.exit("no model files found: pass --model PATH or put ../shared beside the checkout")
    report("parse", rows, {"repeats": args.repeats, "cores": 1})


if __name__ == "__main__":
    main()
