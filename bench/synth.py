"""End-to-end synthetic generation speed: render + encode + write, per worker, and 1 -> N worker scaling.

Goal (issue 5): the end-to-end rate stays within 80% of the renderer-only rate measured in the same run
(same models, poses, cameras and size). "Per worker" is one worker on one core: the renderer-only and the
one-worker runs are pinned to one core (Mesa's llvmpipe threads included); the ``--workers`` runs get
every core. A run pays a fixed start (GL context, model upload, landmarks, pose sampling) and then a per-view
cost; both are measured (two run lengths) and reported apart, and the goal and the scaling are judged on
the steady per-view rates. Also reports shard bytes per pair. On a GPU machine (EGL on the GPU, issue 4's
1000+ pairs/s goal), ``--workers`` = its core count gives the many-worker figure.

    python bench/synth.py [--size 256] [--poses 32 128] [--models DIR] [--workers 2]

``--distributor ray`` (needs the ``[ray]`` extra) compares the two distributors of udpgen.shards.jobs
instead, in one run on the same models and settings: steady views/s and start-up with 1 and 2 workers
for ``processes`` and ``ray`` (a local Ray of 2 CPUs, started once outside the timings; all on every core,
no pinning), Ray's per-shard overhead (steady seconds per shard of ray minus processes, and the steady cost
of an empty job on each distributor), and whether the long runs' shards are byte-identical across them.

    python bench/synth.py --distributor ray [--size 128] [--poses 128 768] [--models DIR] [--repeats 3]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import SHARED, pin_one_core, report  # noqa: E402


def renderer_only(models_dir: Path, size: int, poses: int) -> tuple[float, int]:
    """Views per second of pose + render alone (no PNG encoding, no tar), on the plan's own views."""
    from udpgen.synth import job as synth
    from udpgen.synth.job import SynthConfig, _character, _init_worker, _render_view, plan

    cfg = SynthConfig(size=size, poses=poses, motion_frames=0, views=1, physics="off")
    p = plan(models_dir, None, cfg)
    _init_worker(cfg)
    from udpgen.render import Renderer
    synth._WORKER["renderer"] = renderer = Renderer(size)
    specs = [(s.model, v) for j in p.jobs for s in j.samples for v in s.views]
    with tempfile.TemporaryDirectory() as tmp:
        for m, _ in specs[:1]:
            _character(p, m, Path(tmp))                                  # load outside the timing
        rates = []
        for _ in range(3):                     # median of three passes: one pass is only a few seconds
            synth._WORKER.pop("posed", None)    # every view poses afresh, as in the end-to-end runs
            t = time.perf_counter()
            for m, v in specs:
                model, _, char, poses_, sim = _character(p, m, Path(tmp))
                _render_view(p, m, v, model, char, poses_, renderer, sim)
            rates.append(len(specs) / (time.perf_counter() - t))
    return statistics.median(rates), len(specs)


VIEWS_PER_SHARD = 16     # samples_per_shard=2 x views_per_sample=8 (one camera per pose)


def end_to_end(models_dir: Path, size: int, poses: int, workers: int,
               distributor: str = "processes") -> tuple[float, int, int, dict]:
    """(views/s, views written, shard bytes, {tar name: sha256}) of one synth run."""
    from udpgen.synth.job import SynthConfig, synthesize

    out = Path(tempfile.mkdtemp(prefix="bench-synth-"))
    try:
        cfg = SynthConfig(size=size, poses=poses, motion_frames=0, views=1, samples_per_shard=2, physics="off")
        t = time.perf_counter()
        s = synthesize(models_dir, None, out, cfg, workers=workers, distributor=distributor)
        dt = time.perf_counter() - t
        tars = sorted(out.glob("*.tar"))
        nbytes = sum(p.stat().st_size for p in tars)
        hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tars}
        return s["views_written"] / dt, s["views_written"], nbytes, hashes
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _steady(models: Path, size: int, short: int, long: int, workers: int, distributor: str = "processes"):
    """(steady views/s, start-up seconds, views/s of the long run, its views, its shard bytes, its hashes)."""
    rate_s, n_s, _, _ = end_to_end(models, size, short, workers, distributor)
    rate_l, n_l, nbytes, hashes = end_to_end(models, size, long, workers, distributor)
    t_s, t_l = n_s / rate_s, n_l / rate_l
    steady = (n_l - n_s) / (t_l - t_s)               # views/s once started
    return steady, t_s - n_s / steady, rate_l, n_l, nbytes, hashes


def _noop(job):
    return job


def _empty_job_s(distributor: str, workers: int, n: int = 1000) -> float:
    """Steady seconds per job of a job that does nothing: the distributor's own cost per job, from the
    spacing of the jobs' completions (so that starting the workers does not count)."""
    from udpgen.shards.jobs import run_jobs

    done: list[float] = []
    out = run_jobs(list(range(n)), _noop, workers=workers, distributor=distributor,
                   on_done=lambda o: done.append(time.perf_counter()))
    assert all(o.ok for o in out)
    return (done[-1] - done[n // 10]) / (n - 1 - n // 10)      # from the 10th percentile: workers are up


def compare_distributors(models: Path, size: int, short: int, long: int, repeats: int) -> list[dict]:
    """Rows per (workers, distributor): medians over ``repeats`` (the two distributors alternating, so that
    the load of a shared machine falls on both) of steady and long-run views/s and start-up; the per-shard
    overhead against processes; the empty-job cost; whether every long run's shards matched."""
    import ray

    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t
    names = ("processes", "ray")
    rows = []
    try:
        for w in (1, 2):
            runs: dict[str, list] = {d: [] for d in names}
            identical = True
            for r in range(repeats):
                for d in (names if r % 2 == 0 else names[::-1]):
                    runs[d].append(_steady(models, size, short * w, long * w, w, d))
                identical &= runs["processes"][-1][5] == runs["ray"][-1][5] and len(runs["ray"][-1][5]) > 0
            med = {d: [statistics.median(x[i] for x in runs[d]) for i in range(3)] for d in names}
            for d in names:
                steady, fixed, rate_l = med[d]
                rows.append({"distributor": d, "workers": w, "views": runs[d][0][3], "shards": len(runs[d][0][5]),
                             "steady_per_s": steady, "startup_s": fixed, "long_run_per_s": rate_l,
                             "steady_vs_processes": steady / med["processes"][0],
                             "shard_overhead_ms": 1000 * VIEWS_PER_SHARD * (1 / steady - 1 / med["processes"][0]),
                             "empty_job_ms": 1000 * _empty_job_s(d, w), "identical_shards": identical})
    finally:
        ray.shutdown()
    for r in rows:
        r["ray_cluster_start_s"] = ray_start
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--poses", type=int, nargs=2, default=[32, 128], help="views of the short and the long run")
    ap.add_argument("--models", type=Path, action="append")
    ap.add_argument("--workers", type=int, default=2, help="workers of the scaling run (a GPU machine: its cores)")
    ap.add_argument("--distributor", choices=["processes", "ray"], default="processes",
                    help="ray: compare the processes and ray distributors instead (1 and 2 workers)")
    ap.add_argument("--repeats", type=int, default=3, help="with --distributor ray: runs per figure (medians)")
    args = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    dirs = args.models or [d for d in (SHARED / "assets/gene", repo / "assets/sample") if d.is_dir()]
    short, long = args.poses
    if args.distributor == "ray":
        rows = []
        for d in dirs:
            with tempfile.TemporaryDirectory() as tmp:
                models = Path(tmp) / d.name
                shutil.copytree(d, models, ignore=shutil.ignore_patterns("*.pmd", "*.vmd", "motion"))
                rows += [{"models": d.name, "size": args.size, **r}
                         for r in compare_distributors(models, args.size, short, long, args.repeats)]
        report("synth-distributors", rows, {
            "note": "every run on all cores (no pinning); processes with 1 worker runs in this process; ray: a "
                    "local Ray of 2 CPUs started once (ray_cluster_start_s) outside the timings, --workers tasks "
                    "in flight; runs of N workers render N times the poses; steady = from two run lengths; medians "
                    f"of {args.repeats} runs, the distributors alternating; "
                    "shard_overhead_ms = steady seconds per shard minus the processes distributor's; "
                    "empty_job_ms = steady cost of a job that does nothing; identical_shards: the long runs' "
                    "tars have the same sha256 under both distributors"})
        return
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    rows = []
    for d in dirs:
        with tempfile.TemporaryDirectory() as tmp:
            # one model per run: copy the folder without sibling models that would double the work
            models = Path(tmp) / d.name
            shutil.copytree(d, models, ignore=shutil.ignore_patterns("*.pmd", "*.vmd", "motion"))
            pin_one_core()
            only, _ = renderer_only(models, args.size, long)
            steady, fixed, rate_l, n_l, nbytes, _ = _steady(models, args.size, short, long, 1)
            if cores:
                os.sched_setaffinity(0, cores)       # spawned workers inherit the parent's affinity
            # spawned workers start in ~2-3 s (imports, GL context, model upload): longer runs, so that
            # start-up noise does not swamp the steady rate
            w = args.workers
            steady_w, _, rate_w, _, _, _ = _steady(models, args.size, long * w // 2, long * w * 2, w)
        rows.append({"models": d.name, "size": args.size, "views": n_l, "render_only_per_s": only,
                     "e2e_steady_per_s": steady, "e2e_startup_s": fixed, "e2e_1w_per_s": rate_l,
                     "workers": w, "e2e_nw_steady_per_s": steady_w, "e2e_nw_per_s": rate_w,
                     "steady_vs_render": steady / only, "scaling_nw_steady": steady_w / steady,
                     "bytes_per_pair": nbytes / n_l, "goal": 0.8, "meets_goal": steady / only >= 0.8})
    report("synth", rows, {"note": "e2e includes planning, PNG encoding, tar writing, stats and manifest; "
                                   "render-only and 1 worker pinned to one core, --workers on all cores; "
                                   "render-only = pose + camera + render; nw = the --workers run"})


if __name__ == "__main__":
    main()
