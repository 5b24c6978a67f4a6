"""`frs report`: the review page for a scan's rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from frs_cli import files
from frs_cli.cli.base import (
    _watchlist_path,
    cli,
    watchlist_option,
)
from frs_cli.errors import EXIT_FAILURE, EXIT_PARTIAL, FrsError, UsageError
from frs_cli.files import printable


# -- report -----------------------------------------------------------------
@cli.command()
@click.argument("results", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False, path_type=Path),
    help="Write the review page here (one self-contained file).",
)  # fmt: skip
@click.option(
    "--clips", "clips_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Write an MP4 per appearance here, from 2 s before to 2 s after (clips.PAD_S), with "
    "the box, identity and time drawn.",
)  # fmt: skip
@watchlist_option
@click.option("--title", default=None, help="Page title. Default: the results file's name.")
def report(
    results: Path,
    html_path: Path | None,
    clips_dir: Path | None,
    watchlist: Path | None,
    title: str | None,
) -> None:
    """Review a scan's RESULTS (its CSV or JSON lines): an HTML page (--html) and evidence
    clips (--clips).

    The page shows each appearance's face (scan with --crops) beside the enrolment photos
    from the watchlist, with times, distances, a timeline, filters, and verdicts to export.
    """
    from frs_cli import report as rep
    from frs_cli.watchlist import Watchlist, watchlist_files

    if html_path is None and clips_dir is None:
        raise UsageError("say what to make: --html PAGE, --clips DIR, or both")
    path = _watchlist_path(watchlist)
    files.check_outputs({"--html": html_path}, [("the results", results), *watchlist_files(path)])
    rows = rep.read_results(results)
    if clips_dir is not None:
        _write_clips(rows, clips_dir)
    if html_path is None:
        return
    enrolment: dict[str, list[str]] = {}
    if path.exists():
        with Watchlist.open(path) as wl:
            enrolment = {n: wl.photos(n) for n in {r["identity"] for r in rows} if n}
    rule = rep.scan_rule(results, path) if path.exists() else None
    page = rep.build(rows, enrolment, title or f"frs review: {results.name}", rule)
    rep.write(html_path, page)
    click.echo(f"wrote {printable(str(html_path))}: {len(rows)} appearances to review", err=True)


def _write_clips(rows: list[dict[str, Any]], folder: Path) -> None:
    """One clip per row; a source that cannot be read is one error line, the rest are
    written; exit 3 if any failed."""
    from rich.console import Console
    from rich.progress import Progress

    from frs_cli import clips
    from frs_cli.errors import InputError

    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise FrsError(f"cannot create {printable(str(folder))}: {err.strerror}") from None
    failed = written = 0
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("clips", total=len(rows))
        for row in rows:
            try:
                clips.write_clip(row, folder)
                written += 1
            except InputError as err:
                failed += 1
                bar.console.print(
                    f"error: {printable(err.path)}: {err.reason}", markup=False, soft_wrap=True
                )
            bar.advance(task)
    click.echo(f"wrote {written} clip(s) to {printable(str(folder))}; {failed} failed", err=True)
    if failed:
        raise click.exceptions.Exit(EXIT_PARTIAL if written else EXIT_FAILURE)
