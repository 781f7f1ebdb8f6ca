"""Command-line options shared by the commands that run shard jobs (synth, handdrawn): where the jobs run
and the resume rule, declared once."""
from __future__ import annotations

import click


def shard_job_options(item: str):
    """--distributor, --ray-address, --overwrite and --retry-failed; ``item``: what a shard's failures are
    made of ('views', 'images'), for the help text."""
    options = [
        click.option("--distributor", type=click.Choice(["processes", "ray"]), default="processes",
                     show_default=True,
                     help="Where shards run: spawned worker processes, or Ray tasks (optional extra: "
                          "pip install 'conr-toolkit[ray]'; --workers tasks at a time)."),
        click.option("--ray-address", default=None, metavar="ADDR",
                     help="With --distributor ray: the Ray cluster to use (auto, HOST:PORT, ray://HOST:10001); "
                          "default: start a local Ray for this run."),
        click.option("--overwrite", is_flag=True, help="Replace shards in --out written with other settings or "
                                                       "inputs (default: refuse, naming the settings that differ)."),
        click.option("--retry-failed", is_flag=True, help=f"Also redo the committed shards whose stats record failed "
                                                          f"{item} (after fixing an input, or a flaky driver)."),
    ]

    def apply(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn
    return apply
