"""Posing speed on one core: bones + IK + skinning per frame, beside a per-vertex loop skinning baseline.

Goal (issue 3): Gene_light.pmx (28,646 vertices, 224 bones, 6 IK chains) under 5 ms median per frame.

    python bench/rig.py [--frames 40] [--model PATH --motion PATH]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import SHARED, pin_one_core, report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=40, help="frames timed per model (spread over the motion)")
    ap.add_argument("--model", type=Path, action="append")
    ap.add_argument("--motion", type=Path, action="append")
    args = ap.parse_args()
    pin_one_core()
    import numpy as np

    from udpgen.mmd import load
    from udpgen.rig import MotionSampler, Rig
    from udpgen.rig.skin import skin_reference_loop

    repo = Path(__file__).resolve().parents[1]
    pairs = list(zip(args.model, args.motion)) if args.model else [
        (p, m) for p, m in ((SHARED / "assets/gene/Gene_light.pmx", SHARED / "assets/gene/motion/02_laugh.vmd"),
                            (repo / "assets/sample/sample.pmx", repo / "assets/sample/wave.vmd")) if p.is_file()]
    rows = []
    for model_path, motion_path in pairs:
        model, motion = load(model_path), load(motion_path)
        rig, sampler = Rig(model), MotionSampler(model, motion)
        first, last = sampler.frame_range
        frames = np.linspace(first, last, args.frames)
        values = [sampler.at(f) for f in frames]
        rig.pose(values[0])                                    # warm caches
        stages = {"sample": [], "bones+ik": [], "skin": [], "total": []}
        for f, v in zip(frames, values):
            t0 = time.perf_counter()
            v = sampler.at(f)
            t1 = time.perf_counter()
            pos, _, _, bone_t, bone_r, _ = rig.morpher.apply(v.morph_weights)
            bones = rig.pose_bones(v, bone_t, bone_r)
            t2 = time.perf_counter()
            rig.skinner.skin(bones.skinning(), pos, model.normals)
            t3 = time.perf_counter()
            stages["sample"].append(t1 - t0)
            stages["bones+ik"].append(t2 - t1)
            stages["skin"].append(t3 - t2)
            stages["total"].append(t3 - t1)
        loop = []
        for v in values[:2]:
            bones = rig.pose_bones(v)
            t = time.perf_counter()
            skin_reference_loop(model, bones.skinning(), model.positions)
            loop.append(time.perf_counter() - t)
        med = {k: statistics.median(x) * 1e3 for k, x in stages.items()}
        loop_ms = statistics.median(loop) * 1e3 + med["bones+ik"]
        rows.append({"model": model_path.name, "vertices": model.vertex_count, "bones": len(model.bones),
                     "sample_ms": med["sample"], "bones_ik_ms": med["bones+ik"], "skin_ms": med["skin"],
                     "total_ms": med["total"], "loop_baseline_ms": loop_ms, "speedup": loop_ms / med["total"],
                     "goal_ms": 5.0, "meets_goal": med["total"] < 5.0})
    if not rows:
        sys.exit("no model found: pass --model/--motion or put ../shared beside the checkout")
    report("rig", rows, {"frames": args.frames, "cores": 1,
                         "note": "total = morphs + bones + IK + skinning; sample = VMD sampling, reported apart"})


if __name__ == "__main__":
    main()
