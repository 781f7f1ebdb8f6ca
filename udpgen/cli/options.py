"""Command-line options shared by several commands, declared once: where shard jobs run and the resume rule
(synth, handdrawn, backgrounds); how physics settles a still pose (synth, render)."""
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


SETTLE_DEFAULT = (8, 16, 8)          # SettleSettings' defaults (min, max, hold), shown in --help


def _settle(ctx, param, value):
    from udpgen.errors import SettingsError
    from udpgen.rig.physics_world import SettleSettings

    try:
        SettleSettings(*value)
    except SettingsError as e:
        raise click.BadParameter(f"{' '.join(map(str, value))}: {e}") from None
    return tuple(value)


physics_settle_option = click.option(
    "--physics-settle", type=click.IntRange(0, 600), nargs=3, default=SETTLE_DEFAULT, show_default=True,
    metavar="MIN MAX HOLD", callback=_settle,
    help="MMD frames (60/s) a still pose's physics takes: a seeded ease from the rest pose (its hair and "
         "cloth hanging settled) over MIN..MAX frames, then HOLD frames at the pose. Longer ends nearer where a long settle would, and costs "
         "more (python3 bench/physics.py --sweep measures both). Recorded in synth's settings.")
