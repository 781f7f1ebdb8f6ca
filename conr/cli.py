"""The ``conr`` command line (a click group; console script ``conr = conr.cli:main``).

Every command exits non-zero with one clear line on bad input and takes ``--json`` where it reports.
"""
from __future__ import annotations

import json

import click

from conr import __version__
from conr.errors import ConrError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="conr")
def main():
    """Train and run CoNR (Collaborative Neural Rendering using 2D anime character sheets)."""


@main.command()
@click.option("--config", "config", default="paper", show_default=True, metavar="NAME|FILE",
              help="A preset (paper, tiny, unet-baseline, unet-warp, no-warp, plain-encoder, mp1) "
                   "or a .json/.toml file with `preset` and a [model] table.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
def info(config: str, as_json: bool):
    """Parameter counts per module and FLOPs per training sample of a model config.

    A training sample is the paper's: m reference views and k composites at the config's image size;
    the detector runs on the k composites, the renderer on the m views.

    \b
    Example:
      conr info --config paper
      conr info --config tiny --json
    """
    # torch is imported here so that `conr --help` stays fast
    from conr.config import load_model_config
    from conr.nn.conr import CoNR
    from conr.stats import flops_per_sample, parameter_counts

    try:
        cfg = load_model_config(config)
        counts = parameter_counts(CoNR(cfg))
        flops = flops_per_sample(cfg)
    except ConrError as e:
        raise click.ClickException(str(e)) from None
    report = {
        "config": config,
        "model": cfg.to_dict(),
        "sample": {"image_size": cfg.image_size, "views": cfg.views, "composites": cfg.composites},
        "parameters": counts,
        "flops_per_sample": flops,
    }
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"config {config}: encoder {cfg.encoder}, cinn {cfg.cinn}, warping {cfg.warping}, "
               f"message passing {cfg.message_passing}")
    click.echo(f"{'module':<32}{'parameters':>14}")
    for name, n in counts.items():
        indent = "  " * name.count(".")
        click.echo(f"{indent + name:<32}{n:>14,}")
    click.echo(f"FLOPs per training sample ({cfg.image_size} px, m = {cfg.views}, k = {cfg.composites}):")
    for key in ("forward", "backward", "total"):
        click.echo(f"  {key:<20}{flops[key] / 1e9:>10.2f} GFLOP")
    for name, f in flops["forward_by_module"].items():
        click.echo(f"    {name:<18}{f / 1e9:>10.2f} GFLOP forward")
