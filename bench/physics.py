"""Cost of MMD physics (issue #17): per drawn view on Gene, next to the render cost in the same run, and
synth views/s with physics on vs off.

Rows (one core, pinned; medians of CPU time, so that other work on the machine does not count):
  * ``physics_setup_ms`` / ``hanging_ms``: once per character, building its physics (``Physics``) and
    settling its rest pose under gravity (``Physics.hanging``, where every still pose starts);
  * ``pose_kinematic_ms``: CharacterPose without physics (bones, morphs, skinning matrices);
  * ``pose_settled_ms``: the same pose with physics settled into it (fresh world, the hanging rest pose
    eased to the target over a seeded number of frames at 60 Hz, 2 sub-steps, then held: ``SettleSettings``,
    or --settle);
  * ``sequence_frame_ms``: one motion frame simulated in sequence (one 1/60 s step of an ongoing world,
    pose included), the cost a motion rendered frame by frame pays;
  * ``render_ms``: one view of that pose (draw + read-back) at ``--size``;
  * ``warmup_1s_ms`` / ``warmup_2s_ms``: one frame of a motion (the first .vmd in the model's ``motion/``
    folder, if any) simulated forward from a fresh world 1 s / 2 s before it (``MotionPhysics``), pose
    included: what a motion frame would cost if synth warmed it up instead of settling it from rest;
  * ``synth_on_per_s`` / ``synth_off_per_s``: end-to-end synth (plan, pose, render, encode, write) on a
    copy of Gene's folder, ``--poses`` random poses x ``--views`` cameras, one worker, ``--repeats``
    alternating off/on pairs (medians; ``synth_on_vs_off`` the median of the pairs' ratios); the goal is
    physics adding under 50% (``synth_on_vs_off >= 1 / 1.5``).

    python bench/physics.py [--size 256] [--poses 8] [--views 2] [--model PATH] [--settle MIN MAX HOLD]
                            [--baseline DIR [--repeats 3]] [--sweep]

``--settle``: the settling frames (``udpgen synth --physics-settle``) of every row, synth included.

``--sweep``: what the settling length buys, one row per setting (results/physics_settle.json):
``settle_ms`` per pose on the model; ``vs_reference``: median (and worst) over the poses of the mean distance
of the physics bones from where a long settle (120 frames eased + 120 held) puts them, as a share of the
model's size, beside ``reference_spread``, the same distance between two long settles (the floor: the
bodies never quite come to rest); ``long_hair_*``: the same for a generated long-haired character (a long
chain swings on after a quick ease: it needs the longer settles more than Gene does);
``skirt_in_thigh``: skirt vertices inside the thighs of a generated
skirted character, summed over the random poses whose legs go into its kinematic skirt (kinematic in the
first row; ``udpgen.sample.parts.skirt_in_thighs``), fewer is better;
``synth_on_vs_off``: end-to-end synth views/s with physics on at that setting over physics off (a short run:
compare rows with it; the main table's figure, with --poses 24 or more, is the one that counts start-up less).

``--baseline DIR``: another checkout (``git archive main | tar -x -C DIR``) whose bench/physics.py runs
alternately with this one, ``--repeats`` times each, same arguments, one process per run; prints both
medians and their ratio per figure and writes results/physics_vs_baseline.json.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import SHARED, pin_one_core, report  # noqa: E402


def _ms(fn, items) -> float:
    times = []
    for x in items:
        t = time.process_time()
        fn(x)
        times.append(time.process_time() - t)
    return 1e3 * statistics.median(times)


def per_view(model_path: Path, size: int, poses: int, settle=None) -> dict:
    import numpy as np

    from udpgen.mmd import load
    from udpgen.render import CameraSampler, Renderer
    from udpgen.rig import Rig
    from udpgen.rig.physics_world import Physics
    from udpgen.rig.sampler import PoseSampler

    model = load(model_path)
    rig = Rig(model)
    t = time.process_time()
    sim = Physics(model, rig.skeleton, settle)
    setup = 1e3 * (time.process_time() - t)
    t = time.process_time()
    sim.hanging()
    hanging = 1e3 * (time.process_time() - t)
    renderer = Renderer(size)
    char = renderer.load(model, rig=rig)
    values = PoseSampler(rig).sample_many(0, poses)
    char.pose(values[0])                                  # warm caches outside the timing
    kin = _ms(lambda v: char.pose(v), values)
    settled = _ms(lambda iv: char.pose(iv[1], physics=sim.settle(iv[0])), list(enumerate(values)))
    posed = [char.pose(v, physics=sim.settle(i)) for i, v in enumerate(values)]
    cams = []
    for i, p in enumerate(posed):
        centre, radius = p.bounding_sphere()
        cams.append(CameraSampler().sample(np.random.default_rng(i), centre, radius, size, size))
    renderer.render(posed[0], cams[0])
    render = _ms(lambda i: renderer.render(posed[i], cams[i]), range(len(posed)))
    # a motion in sequence: the world keeps running, each frame eases 1/20 of the way to the next pose
    world = sim.world()
    rest = rig.pose_bones().world
    targets = [rig.pose_bones(v).world for v in values]
    from udpgen.rig import quat as Q

    frames = []
    for a, b in zip([rest] + targets[:-1], targets):
        qa, qb = Q.from_matrix(a[:, :3, :3]), Q.from_matrix(b[:, :3, :3])
        for s in np.linspace(0, 1, 20, endpoint=False):
            frames.append(Q.compose(Q.slerp(qa, qb, s), (1 - s) * a[:, :3, 3] + s * b[:, :3, 3]))

    def step(frame):
        out = world.step(frame)
        return out[world.written]
    seq = _ms(step, frames)
    renderer.close()
    warm = _warmup_ms(model, rig, sim, model_path.parent / "motion")
    return {"model": model_path.name, "bodies": len(model.rigid_bodies), "joints": len(model.joints),
            "size": size, "poses": poses, "physics_setup_ms": setup, "hanging_ms": hanging,
            "pose_kinematic_ms": kin, "pose_settled_ms": settled,
            "physics_per_pose_ms": settled - kin, "sequence_frame_ms": seq, "render_ms": render,
            **warm, "fallbacks": sim.fallbacks}


def _warmup_ms(model, rig, sim, folder: Path) -> dict:
    from udpgen.mmd import Motion, parse
    from udpgen.rig import MotionSampler
    from udpgen.rig.physics_world import MotionPhysics

    vmds = sorted(folder.glob("*.vmd")) if folder.is_dir() else []
    motion = parse(vmds[0].read_bytes(), vmds[0]) if vmds else None
    if not isinstance(motion, Motion):
        return {"warmup_1s_ms": float("nan"), "warmup_2s_ms": float("nan")}
    sampler = MotionSampler(model, motion)

    def world_at(f):
        return rig.pose_bones(sampler.at(f)).world
    out = {}
    for seconds in (1, 2):
        def one(f):
            rig.pose_bones(sampler.at(f), physics=MotionPhysics(sim, world_at, float(seconds)).at(f))
        out[f"warmup_{seconds}s_ms"] = _ms(one, [30.0, 75.5, 120.0])
    return out


def synth_rate(models: Path, size: int, poses: int, views: int, physics: str, settle=None) -> tuple[float, int]:
    from dataclasses import astuple

    from udpgen.rig.physics_world import SettleSettings
    from udpgen.synth.job import SynthConfig, synthesize

    out = Path(tempfile.mkdtemp(prefix="bench-physics-"))
    try:
        cfg = SynthConfig(size=size, poses=poses, motion_frames=0, views=views, physics=physics,
                          physics_settle=astuple(settle or SettleSettings()))
        t = time.process_time()
        s = synthesize(models, None, out, cfg, workers=1)
        return s["views_written"] / (time.process_time() - t), s["physics_fallbacks"]
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--poses", type=int, default=8)
    ap.add_argument("--views", type=int, default=2, help="cameras per pose in the synth runs")
    ap.add_argument("--model", type=Path, default=SHARED / "assets/gene/Gene.pmd")
    ap.add_argument("--settle", type=int, nargs=3, metavar=("MIN", "MAX", "HOLD"), default=None,
                    help="settling frames of every row, synth included (default: SettleSettings' defaults)")
    ap.add_argument("--sweep", action="store_true", help="the settling-length table instead (see above)")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to compare against")
    ap.add_argument("--repeats", type=int, default=3, help="synth off/on pairs; with --baseline: runs of each tree")
    args = ap.parse_args()
    if args.baseline is not None:
        return compare(args)
    if not args.model.is_file():
        sys.exit(f"{args.model} not found (set CONR_SHARED or pass --model)")
    pin_one_core()
    from udpgen.rig.physics_world import SettleSettings

    settle = SettleSettings(*args.settle) if args.settle else SettleSettings()
    if args.sweep:
        return sweep(args)
    row = per_view(args.model, args.size, args.poses, settle)
    row["settle_frames"] = f"{settle.min_frames}-{settle.max_frames}+{settle.hold_frames}"
    with tempfile.TemporaryDirectory() as tmp:
        models = _model_folder(args.model, Path(tmp))
        offs, ons, ratios = [], [], []
        for _ in range(args.repeats):          # alternating, so that a slow spell of the machine hits both
            offs.append(synth_rate(models, args.size, args.poses, args.views, "off")[0])
            on, fallbacks = synth_rate(models, args.size, args.poses, args.views, "on", settle)
            ons.append(on)
            ratios.append(ons[-1] / offs[-1])
    ratio = statistics.median(ratios)
    row.update(synth_views=args.poses * args.views, synth_off_per_s=statistics.median(offs),
               synth_on_per_s=statistics.median(ons), synth_on_vs_off=ratio,
               synth_ratios=" ".join(f"{r:.3f}" for r in ratios), synth_fallbacks=fallbacks, goal_added=0.5,
               meets_goal=1 / ratio - 1 <= 0.5)
    report("physics", [row], {"note": "one core, CPU time; medians over the poses; synth = end-to-end, one worker, "
                                      f"physics off then on, {args.repeats} times; the ratio is the median of "
                                      "the pairs' ratios"})


def _model_folder(model: Path, tmp: Path) -> Path:
    """A folder holding only ``model`` and its texture folders: what synth reads."""
    models = tmp / "models"
    models.mkdir()
    shutil.copy(model, models / model.name)
    for sub in ("light", "tex"):                  # the model's texture folders, where present
        if (model.parent / sub).is_dir():
            shutil.copytree(model.parent / sub, models / sub)
    return models


SWEEP = ((4, 8, 4), (6, 12, 6), (8, 16, 6), (8, 16, 8), (10, 20, 8), (15, 30, 10), (30, 60, 10))
REFERENCE = (120, 120, 120)


def _skirted(n: int = 24):
    """(model, rig, poses) of a generated character with a long skirt: the sampler's random poses (of ``n``)
    whose thighs go into the kinematic skirt (at least 5 vertices inside)."""
    from udpgen.rig import Rig
    from udpgen.rig.sampler import PoseSampler
    from udpgen.sample import family
    from udpgen.sample.parts import skirt_in_thighs

    spec = next(s for s in (family.draw_spec(0, i) for i in range(80)) if s.skirt > 1.2 and s.hair == "short")
    model, _ = family.build_character(spec)
    rig = Rig(model)
    poses = [v for v in PoseSampler(rig).sample_many(0, n)
             if skirt_in_thighs(model, rig.pose(v).positions, rig.pose_bones(v).world) >= 5]
    return model, rig, poses


def sweep(args) -> None:
    import numpy as np

    from udpgen.mmd import load
    from udpgen.rig import Rig
    from udpgen.rig.physics_world import Physics, SettleSettings
    from udpgen.rig.sampler import PoseSampler
    from udpgen.sample import family
    from udpgen.sample.parts import skirt_in_thighs

    def character(model):
        rig = Rig(model)
        return model, rig, [rig.pose_bones(v).world for v in PoseSampler(rig).sample_many(0, args.poses)]

    spec = next(s for s in (family.draw_spec(0, i) for i in range(60)) if s.hair == "long")
    characters = {"": character(load(args.model)), "long_hair_": character(family.build_character(spec)[0])}

    def settle(which, frames):
        model, rig, targets = characters[which]
        sim = Physics(model, rig.skeleton, SettleSettings(*frames))
        sim.hanging()                       # once per character (the main table's hanging_ms), not per pose
        t = time.process_time()
        out = [sim.settle(i)(w) for i, w in enumerate(targets)]
        ms = 1e3 * (time.process_time() - t) / len(targets)
        return [None if o is None else o[1][o[0], :3, 3] for o in out], ms, sim.layout.scale

    def spread(a, b, scale):
        d = [np.linalg.norm(x - y, axis=1).mean() / scale for x, y in zip(a, b) if x is not None and y is not None]
        return float(np.median(d)), float(np.max(d))

    refs = {which: settle(which, REFERENCE) for which in characters}
    floor = spread(refs[""][0], settle("", (REFERENCE[0] + 30, REFERENCE[1] + 30, REFERENCE[2] - 30))[0],
                   refs[""][2])
    sk_model, sk_rig, sk_poses = _skirted()
    rows = [{"settle": "kinematic", "settle_ms": 0.0, "vs_reference": float("nan"), "vs_reference_worst": float("nan"),
             "reference_spread": floor[0], "long_hair_settle_ms": 0.0, "long_hair_vs_reference": float("nan"),
             "long_hair_vs_reference_worst": float("nan"),
             "skirt_in_thigh": sum(skirt_in_thighs(sk_model, sk_rig.pose(v).positions, sk_rig.pose_bones(v).world)
                                   for v in sk_poses), "synth_on_vs_off": 1.0}]
    with tempfile.TemporaryDirectory() as tmp:
        models = _model_folder(args.model, Path(tmp))
        off, _ = synth_rate(models, args.size, args.poses, args.views, "off")
        for frames in SWEEP:
            row = {"settle": "%d-%d+%d" % frames}
            for which, (ref, _, scale) in refs.items():
                got, ms, _ = settle(which, frames)
                med, worst = spread(got, ref, scale)
                row.update({f"{which}settle_ms": ms, f"{which}vs_reference": med, f"{which}vs_reference_worst": worst})
                if not which:
                    row["reference_spread"] = floor[0]
            sim = Physics(sk_model, sk_rig.skeleton, SettleSettings(*frames))
            row["skirt_in_thigh"] = sum(skirt_in_thighs(sk_model, sk_rig.pose(v, physics=sim.settle(i)).positions,
                                                        sk_rig.pose_bones(v).world) for i, v in enumerate(sk_poses))
            on, _ = synth_rate(models, args.size, args.poses, args.views, "on", SettleSettings(*frames))
            row["synth_on_vs_off"] = on / off
            rows.append(row)
    report("physics_settle", rows, {"model": args.model.name, "poses": args.poses, "reference": "%d-%d+%d" % REFERENCE,
                                    "long_hair": spec.name,
                                    "note": "one core, CPU time; distances are shares of the model's size; synth at "
                                            f"--size {args.size}, {args.poses} poses x {args.views} views"})


def compare(args) -> None:
    """Run the baseline checkout's bench and this one alternately and report medians and ratios."""
    import json
    import os
    import subprocess

    here = Path(__file__).resolve()
    base = (args.baseline / "bench" / "physics.py").resolve()
    if not base.is_file():
        sys.exit(f"{base} not found (--baseline names a checkout of this repository)")
    argv = ["--size", str(args.size), "--poses", str(args.poses), "--views", str(args.views),
            "--model", str(args.model.resolve())] + (["--settle", *map(str, args.settle)] if args.settle else [])
    env = {**os.environ, "CONR_SHARED": str(SHARED)}
    runs: dict[str, list[dict]] = {"baseline": [], "this": []}
    for _ in range(args.repeats):
        for name, script in (("baseline", base), ("this", here)):
            subprocess.run([sys.executable, str(script), *argv], check=True, env=env, cwd=script.parents[1],
                           stdout=subprocess.DEVNULL)
            runs[name].append(json.loads((script.parent / "results" / "physics.json").read_text())["rows"][0])
    rows = []
    for key, value in runs["this"][0].items():
        if not isinstance(value, float) or key not in runs["baseline"][0]:
            continue
        b = statistics.median(r[key] for r in runs["baseline"])
        t = statistics.median(r[key] for r in runs["this"])
        rows.append({"figure": key, "baseline": b, "this": t, "this_vs_baseline": t / b if b else float("nan"),
                     "baseline_runs": " ".join(f"{r[key]:.4g}" for r in runs["baseline"]),
                     "this_runs": " ".join(f"{r[key]:.4g}" for r in runs["this"])})
    report("physics_vs_baseline", rows, {"baseline": str(args.baseline.resolve()), "args": argv,
                                          "note": f"medians of {args.repeats} alternating runs of each tree"})


if __name__ == "__main__":
    main()
