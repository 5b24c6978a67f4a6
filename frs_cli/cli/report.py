"""`frs report`: the review page for a scan's rows."""

from __future__ import annotations

from pathlib import Path

import click

from frs_cli import files
from frs_cli.cli.base import (
    _watchlist_path,
    cli,
    watchlist_option,
)
from frs_cli.files import printable


# -- report -----------------------------------------------------------------
@cli.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
    help="Write the review page here (one self-contained file).",
)  # fmt: skip
@watchlist_option
@click.option("--title", default=None, help="Page title. Default: the results file's name.")
def report(results: Path, html_path: Path, watchlist: Path | None, title: str | None) -> None:
    """Make an HTML page to review a scan's RESULTS (its CSV or JSON lines) by eye.

    Shows each appearance's face (scan with --crops) beside the enrolment photos from
    the watchlist, with times, distances, a timeline, filters, and verdicts to export.
    """
    from frs_cli import report as rep
    from frs_cli.watchlist import Watchlist, watchlist_files

    path = _watchlist_path(watchlist)
    files.check_outputs({"--html": html_path}, [("the results", results), *watchlist_files(path)])
    rows = rep.read_results(results)
    enrolment: dict[str, list[str]] = {}
    if path.exists():
        with Watchlist.open(path) as wl:
            enrolment = {n: wl.photos(n) for n in {r["identity"] for r in rows} if n}
    rule = rep.scan_rule(results, path) if path.exists() else None
    page = rep.build(rows, enrolment, title or f"frs review: {results.name}", rule)
    rep.write(html_path, page)
    click.echo(f"wrote {printable(str(html_path))}: {len(rows)} appearances to review", err=True)
