"""``udpgen doctor`` throughput: models checked per second on a folder of 100 models.

The folder: the bundled sample, Gene (Gene_light.pmx with its textures and Gene.pmd, when ../shared is
present), characters of the generated family, and every model of the generated robustness corpus
(tests/robustness_corpus.py: each tolerated oddity, a texture zoo, skeletons, accessories, a stage, truncated,
empty and random files), repeated by copying (each copy in its own folder, textures beside it) up to
``--models``. Baseline in the same run: the same folder checked
without the test render (``--no-render``), so the ratio is what the render costs. Each mode runs
``--repeats`` times, alternating; per-model times come from the progress callback.

    python bench/doctor.py [--models 100] [--repeats 3] [--family 4] [--workers 1]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from bench.common import SHARED, pin_one_core, report  # noqa: E402


def build_zoo(root: Path, count: int, family_count: int) -> dict[str, str]:
    """Write ``count`` models under ``root``; returns {folder name: kind}."""
    from udpgen.sample import family

    base = root / "_base"
    bases: list[tuple[str, Path, list[str]]] = []       # (kind, folder, files to copy)
    (base / "sample").mkdir(parents=True)
    shutil.copy(REPO / "assets/sample/sample.pmx", base / "sample")
    shutil.copytree(REPO / "assets/sample/tex", base / "sample/tex")
    bases.append(("sample", base / "sample", ["sample.pmx", "tex"]))
    gene = SHARED / "assets" / "gene"
    if (gene / "Gene_light.pmx").is_file():
        bases.append(("gene_pmx", gene, ["Gene_light.pmx", "light"]))
        bases.append(("gene_pmd", gene, ["Gene.pmd"]))
    family.write_family(base / "family", family_count, seed=0)
    for d in sorted((base / "family").iterdir()):
        bases.append(("family", d, [d.name + ".pmx", "tex"]))
    from robustness_corpus import write_corpus

    for name, e in write_corpus(base / "corpus").items():       # every oddity, broken and non-character file
        if e.kind != "model":
            continue
        rel = Path(name)
        folder = base / "corpus" / rel.parent
        extra = ["tex"] if rel.parent == Path(".") and e.readable else [] if rel.parent == Path(".") else ["Tex"]
        bases.append((f"corpus_{rel.stem}", folder, [rel.name] + extra))
    kinds = {}
    zoo = root / "zoo"
    for i in range(count):
        kind, src, files = bases[i % len(bases)]
        dst = zoo / f"m{i:03d}"
        dst.mkdir(parents=True)
        for f in files:
            (shutil.copytree if (src / f).is_dir() else shutil.copy)(src / f, dst / f)
        kinds[dst.name] = kind
    return kinds


def one_run(zoo: Path, motions: Path, render: bool, workers: int) -> tuple[float, dict, list[float]]:
    """(seconds, report, per-model seconds in completion order)."""
    from udpgen.synth.doctor import DoctorSettings, doctor

    stamps = []
    t0 = time.perf_counter()
    rep = doctor(zoo, motions, DoctorSettings(render=render, workers=workers),
                 progress=lambda _n: stamps.append(time.perf_counter()))
    total = time.perf_counter() - t0
    per = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]
    return total, rep, per


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--family", type=int, default=4, help="generated family characters among the base models")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    if args.workers == 1:
        pin_one_core()

    with tempfile.TemporaryDirectory() as tmp:
        kinds = build_zoo(Path(tmp), args.models, args.family)
        motions = REPO / "assets/sample/wave.vmd"
        runs = defaultdict(list)
        per_kind = defaultdict(lambda: defaultdict(list))
        verdicts = {}
        one_run(Path(tmp) / "zoo", motions, True, args.workers)          # warm-up: imports, GL context
        for _ in range(args.repeats):
            for render in (False, True):
                total, rep, per = one_run(Path(tmp) / "zoo", motions, render, args.workers)
                runs[render].append(total)
                if args.workers == 1:                                    # in job order: per model
                    for row, s in zip(rep["models"], per):
                        per_kind[render][kinds[Path(row["file"]).parent.name]].append(s)
                verdicts[render] = rep["summary"]["models"]
    rows = []
    base = statistics.median(runs[False])
    for render in (False, True):
        med = statistics.median(runs[render])
        every = [x for v in per_kind[render].values() for x in v]
        rows.append({"mode": "with test render" if render else "no render (baseline)", "models": args.models,
                     "workers": args.workers, "repeats": args.repeats, "run_s_median": med,
                     "models_per_s": args.models / med,
                     "ms_per_model_median": 1000 * statistics.median(every) if every else None,
                     "time_vs_baseline": med / base,
                     "ok/warn/unusable": "{ok}/{warnings}/{unusable}".format(**verdicts[render])})
    kind_ms = {("render" if r else "no_render"): {k: 1000 * statistics.median(v) for k, v in sorted(d.items())}
               for r, d in per_kind.items()}
    for mode, d in kind_ms.items():
        print(f"median ms per model ({mode}): " + ", ".join(f"{k} {v:.1f}" for k, v in d.items()))
    report("doctor", rows, {"runs_s": {("render" if r else "no_render"): v for r, v in runs.items()},
                            "median_ms_per_model_by_kind": kind_ms,
                            "base_kinds": sorted(set(kinds.values())), "gene": "gene_pmx" in kinds.values()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
