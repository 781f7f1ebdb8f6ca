"""``udpgen synth``: a folder of MMD models (and motions) -> WebDataset shards of paired RGBA + UDP views."""
from __future__ import annotations

import json
import sys

import click

from udpgen.cli.options import physics_settle_option, shard_job_options


@click.command()
@click.option("--models", "models", required=True, type=click.Path(),
              help="Folder of .pmx/.pmd models (searched recursively; .zip archives are opened).")
@click.option("--motions", "motions", type=click.Path(), default=None,
              help="Folder of .vmd motions / .vpd poses (optional: random poses are always used).")
@click.option("--out", "out", required=True, type=click.Path(), help="Output shard folder.")
@click.option("--size", type=int, default=256, show_default=True, help="Image side in pixels.")
@click.option("--poses", type=int, default=16, show_default=True, help="Random natural poses per character.")
@click.option("--motion-frames", type=int, default=4, show_default=True, help="Frames taken from each motion.")
@click.option("--views", type=int, default=2, show_default=True, help="Cameras per pose.")
@click.option("--views-per-sample", type=int, default=8, show_default=True, help="Views in one sample (chunk).")
@click.option("--samples-per-shard", type=int, default=32, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes (one GL context each).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--num-nodes", type=int, default=1, show_default=True, help="Machines sharing this run (array jobs).")
@click.option("--node-rank", type=int, default=0, show_default=True, help="This machine's index in 0..num-nodes-1.")
@click.option("--timeout", type=float, default=3600.0, show_default=True,
              help="Seconds one shard may take with --workers >= 2 or on Ray; a worker past it is killed, its "
                   "shard retried once.")
@shard_job_options("views")
@click.option("--strict", is_flag=True, help="Exit 1 when any view, model or shard failed (default: only when "
                                             "nothing could be made).")
@click.option("--physics", type=click.Choice(["auto", "on", "off"]), default="auto", show_default=True,
              help="Simulate rigid bodies (hair, skirts, capes): auto = on when the optional panda3d engine "
                   "is installed; off = every bone follows its parent. Recorded in the run's settings.")
@click.option("--physics-warmup", type=click.FloatRange(0, 10), default=0.0, show_default=True, metavar="SECONDS",
              help="Simulate this much of a motion before each of its frames that is drawn, as MMD plays it "
                   "(0: settle the frame from the rest pose, like a random pose; a 1 s warm-up costs about "
                   "5 times as much physics as the default settle, 2 s about 10 times).")
@physics_settle_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def synth(models, motions, out, size, poses, motion_frames, views, views_per_sample, samples_per_shard, workers,
          seed, num_nodes, node_rank, timeout, distributor, ray_address, overwrite, retry_failed, strict, physics,
          physics_warmup, physics_settle, as_json):
    """Render a training set: every character in random natural poses and motion frames, seen by random
    cameras, written as train/val shards (1 in 16 characters to val, by character). Reruns resume: shards
    already committed are skipped, the rest come out byte-identical.

    \b
    Examples:
      udpgen synth --models assets/sample --motions assets/sample --out data/shards --poses 8
      udpgen synth --models ~/mmd --out /data/conr --workers 2 --num-nodes 8 --node-rank $SLURM_ARRAY_TASK_ID
      udpgen synth --models /nfs/mmd --out /nfs/conr --workers 64 --distributor ray --ray-address auto
    """
    from tqdm import tqdm

    from udpgen.synth.job import SynthConfig, synthesize

    cfg = SynthConfig(size=size, poses=poses, motion_frames=motion_frames, views=views,
                      views_per_sample=views_per_sample, samples_per_shard=samples_per_shard, seed=seed,
                      physics=physics, physics_warmup=physics_warmup,
                      physics_settle=physics_settle)
    with tqdm(unit="view", desc="synth", disable=as_json or not sys.stderr.isatty(), dynamic_ncols=True) as bar:
        summary = synthesize(models, motions, out, cfg, workers=workers, num_nodes=num_nodes, node_rank=node_rank,
                             progress=bar.update, timeout=timeout, overwrite=overwrite,
                             retry_failed=retry_failed, distributor=distributor, ray_address=ray_address)
    if as_json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        for s in summary["skipped"]:
            click.echo(f"skipped {s['file']}: {s['reason']}", err=True)
        for s in summary["shards_failed"]:
            click.echo(f"failed {s['shard']}: {s['reason']} (a rerun retries it)", err=True)
        rate = summary["views_written"] / summary["seconds"] if summary["seconds"] else 0.0
        click.echo(f"{summary['out']}: {summary['shards_written']} shards written, "
                   f"{summary['shards_skipped_complete']} already complete, {len(summary['shards_failed'])} failed, "
                   f"{summary['views_written']} views ({rate:.1f} views/s), {summary['views_failed']} views failed "
                   f"(physics {summary['physics']}, {summary['physics_fallbacks']} drawn kinematic after an "
                   f"explosion) "
                   f"(reasons in the shards' stats.json), {summary['characters']} characters, "
                   f"{len(summary['skipped'])} inputs skipped")
    made = summary["views_written"] > 0 or summary["shards_skipped_complete"] > 0
    failures = summary["views_failed"] or summary["shards_failed"] or summary["skipped"]
    if not made and summary["shards_this_node"] > 0 or strict and failures:
        sys.exit(1)


def register(group: click.Group) -> None:
    group.add_command(synth)
