"""What broken inputs cost a synth run: views/s on a folder mixing good and broken files vs the same good files alone.

Issue #13: failures are data and must cost almost nothing. The clean folder holds usable characters from the
generated robustness corpus (tests/robustness_corpus.py: the sample as written by our writer, its odd-data
variants and the texture zoo); the mixed folder holds the same characters plus ``--broken`` copies of each
broken or non-character file of the corpus (truncated, empty, random bytes, skeletons, accessories, stages,
truncated and camera/morph-only motions). Both run end to end with ``--workers`` workers; the ratio of the
medians over ``--repeats`` runs is the figure.

    python bench/robustness.py [--size 128] [--poses 32] [--broken 10] [--workers 2] [--repeats 5]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
from bench.common import report  # noqa: E402

GOOD = ("utf8.pmx", "english_bones.pmx", "nan_vertices.pmx", "cyclic_parents.pmx")


def _folders(root: Path, copies: int) -> tuple[Path, Path, Path, int]:
    """(clean models, mixed models, mixed motions, broken files in the mixed folders)."""
    from robustness_corpus import write_corpus

    corpus = root / "corpus"
    entries = write_corpus(corpus)
    clean, mixed, motions = root / "clean", root / "mixed", root / "motions"
    for d in (clean, mixed, motions):
        d.mkdir()
    for d in (clean, mixed):
        shutil.copytree(corpus / "tex", d / "tex")
        for name in GOOD:
            shutil.copy(corpus / name, d / name)
    shutil.copy(corpus / "motions" / "wave.vmd", motions / "wave.vmd")
    broken = 0
    for name, e in entries.items():
        if e.usable:
            continue
        src = corpus / name
        dest = motions if e.kind == "motion" else mixed
        for k in range(copies):
            shutil.copy(src, dest / f"{src.stem}-{k}{src.suffix}")
            broken += 1
    return clean, mixed, motions, broken


def _run(models: Path, motions: Path | None, out: Path, size: int, poses: int, workers: int) -> tuple[float, dict]:
    from udpgen.synth.job import SynthConfig, synthesize

    shutil.rmtree(out, ignore_errors=True)
    cfg = SynthConfig(size=size, poses=poses, motion_frames=2, views=1, samples_per_shard=2)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = synthesize(models, motions, out, cfg, workers=workers)
    return time.perf_counter() - t, s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--poses", type=int, default=32, help="random poses per character")
    ap.add_argument("--broken", type=int, default=10, help="copies of each broken corpus file in the mixed run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-robust-") as tmp:
        root = Path(tmp)
        clean, mixed, motions, broken = _folders(root, args.broken)
        clean_motions = root / "clean_motions"
        clean_motions.mkdir()
        shutil.copy(motions / "wave.vmd", clean_motions / "wave.vmd")
        rates = {"clean": [], "mixed": []}
        summary = {}
        for _ in range(args.repeats):          # interleaved, so drift in the machine hits both alike
            for label, models, mot in (("clean", clean, clean_motions), ("mixed", mixed, motions)):
                dt, s = _run(models, mot, root / f"out-{label}", args.size, args.poses, args.workers)
                rates[label].append(s["views_written"] / dt)
                summary[label] = s
    med = {k: statistics.median(v) for k, v in rates.items()}
    rows = [{"folder": k, "characters": summary[k]["characters"], "inputs_skipped": len(summary[k]["skipped"]),
             "views": summary[k]["views_written"], "views_failed": summary[k]["views_failed"],
             "views_per_s_median": med[k], "runs": [round(r, 2) for r in rates[k]],
             "vs_clean": med[k] / med["clean"]} for k in ("clean", "mixed")]
    report("robustness", rows, {"broken_files": broken, "size": args.size, "poses": args.poses,
                                "workers": args.workers, "note": "end-to-end synthesize(), planning included; "
                                "mixed = clean + broken copies; vs_clean = ratio of medians"})


if __name__ == "__main__":
    main()
