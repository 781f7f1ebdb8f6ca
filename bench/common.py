"""Helpers shared by the benchmarks: one-core pinning, timing medians, the result table and JSON."""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

from udpgen.io.atomic import write_bytes_atomic

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(os.environ.get("CONR_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def pin_one_core() -> None:
    """Measure on one core, as the issue figures are stated (numpy's BLAS threads too)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if hasattr(os, "sched_setaffinity"):
        # the last core: the first one also serves the OS and interactive work
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})


def median_seconds(fn, repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def report(name: str, rows: list[dict], extra: dict | None = None) -> Path:
    """Print ``rows`` as a table and write them, with the machine's description, to results/NAME.json."""
    cols = list(rows[0])
    width = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(width[c]) for c in cols))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": platform.platform(), "python": platform.python_version(),
               "cpu_count": os.cpu_count(), "rows": rows, **(extra or {})}
    write_bytes_atomic(out, json.dumps(payload, indent=2).encode())
    print(f"wrote {out}")
    return out


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
