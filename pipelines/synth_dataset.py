"""The end-to-end recipe for a folder of MMD models: render a training set, check it, preview it.

    python -m pipelines.synth_dataset --models ~/mmd_models --motions ~/mmd_motions --out data/shards

Steps: ``udpgen synth`` (resumable: rerun the same command after an interruption), ``udpgen verify`` (every
shard against the schema, sizes.json and the manifest), ``udpgen preview`` (a contact sheet of a few
samples, RGBA beside the visualised UDP). On a cluster run the synth step as an array job with
``--num-nodes N --node-rank R`` (each node writes its own shards into the shared output folder), then the
verify and preview steps once at the end.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.synth_dataset", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="folder of .pmx/.pmd models (zip archives are opened)")
    ap.add_argument("--motions", default=None, help="folder of .vmd/.vpd files (optional)")
    ap.add_argument("--out", required=True, help="output shard folder")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--poses", type=int, default=16, help="random natural poses per character")
    ap.add_argument("--motion-frames", type=int, default=4)
    ap.add_argument("--views", type=int, default=2, help="cameras per pose")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from udpgen.errors import UdpgenError
    from udpgen.shards.preview import write_preview
    from udpgen.synth.job import SynthConfig, synthesize
    from udpgen.shards.verify import verify

    try:
        cfg = SynthConfig(size=args.size, poses=args.poses, motion_frames=args.motion_frames, views=args.views,
                          seed=args.seed)
        summary = synthesize(args.models, args.motions, args.out, cfg, workers=args.workers)
        report = verify(args.out)
        sheet = Path(args.out) / "preview.png"
        write_preview(args.out, sheet)
    except UdpgenError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({**summary, "verify_ok": report.ok, "problems": [str(p) for p in report.problems][:10],
                      "preview": str(sheet)}, ensure_ascii=False, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
