"""``udpgen matte-review DIR``: a local page to check cut-outs, scribble markers, re-matte, accept/reject
(see udpgen.drawn.review). Registered on the ``udpgen`` group by :func:`register`."""
from __future__ import annotations

from pathlib import Path

import click

__all__ = ["register", "review_cmd"]


@click.command("matte-review")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--input", "input_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The INPUT folder given to `udpgen matte` (default: the input paths matte.json recorded).")
@click.option("--markers", "markers_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder the scribbles are saved in, at the paths `udpgen handdrawn --markers` reads "
                   "(default: DIR/markers).")
@click.option("--port", type=int, default=0, show_default=True, help="Port on 127.0.0.1 (0 = any free port).")
@click.option("--no-open", is_flag=True, help="Do not open the page in a web browser.")
def review_cmd(out_dir: Path, input_dir: Path | None, markers_dir: Path | None, port: int, no_open: bool):
    """Serve a review page for the cut-outs in DIR (the --out folder of `udpgen matte`) on 127.0.0.1:
    lowest confidence first; paint green/red scribbles, re-run the matte, accept or reject. Decisions go to
    DIR/review.json. Ctrl-C stops it.

    \b
    Example:
      udpgen matte drawings/ --out cutouts/
      udpgen matte-review cutouts/ --input drawings/ --markers scribbles/
      udpgen handdrawn drawings/ --markers scribbles/ --out shards/
    """
    from udpgen.drawn.review import make_server

    server = make_server(out_dir, markers_dir or out_dir / "markers", input_dir, port=port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    click.echo(f"udpgen matte-review: {url} (Ctrl-C stops)")
    if not no_open:
        import webbrowser
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("udpgen matte-review: stopped")
    finally:
        server.server_close()


def register(group: click.Group) -> None:
    """Add ``matte-review`` to the ``udpgen`` click group."""
    group.add_command(review_cmd)
