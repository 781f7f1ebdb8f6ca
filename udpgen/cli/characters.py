"""``udpgen characters``: the generated character family (seeded PMX 2.0 models + textures)."""
from __future__ import annotations

import json
import sys
import time

import click


@click.command()
@click.option("--count", type=int, required=True, help="Characters to write (>= 1).")
@click.option("--seed", type=int, default=0, show_default=True, help="Family seed (>= 0); same seed, same bytes.")
@click.option("--out", "out", required=True, type=click.Path(), help="Output folder (empty, or this family's).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
def characters(count, seed, out, as_json):
    """Write COUNT varied humanoid MMD characters (proportions, hair cards with rigid bodies, skirts,
    palettes, patterns) as DIR/NAME/NAME.pmx + tex/*.png. An interrupted run resumes: characters already
    written are not rewritten.

    \b
    Example:
      udpgen characters --count 32 --seed 0 --out data/family
    """
    from tqdm import tqdm

    from udpgen.sample.family import write_family

    t0 = time.perf_counter()
    with tqdm(total=count, unit="char", desc="characters", disable=as_json or not sys.stderr.isatty(),
              dynamic_ncols=True) as bar:
        summary = write_family(out, count, seed, progress=bar.update)
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    if as_json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return
    click.echo(f"{out}: {len(summary['written'])} characters written, {len(summary['skipped'])} already there "
               f"({summary['seconds']:.1f} s)")


def register(group: click.Group) -> None:
    group.add_command(characters)
