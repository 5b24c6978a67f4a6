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
from frs_cli.errors import EXIT_FAILURE, EXIT_PARTIAL, UsageError
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
    from frs_cli.results import report as rep
    from frs_cli.watchlist import Watchlist, watchlist_files

    if html_path is None and clips_dir is None:
        raise UsageError("say what to make: --html PAGE, --clips DIR, or both")
    path = _watchlist_path(watchlist)
    rows, problems = rep.read_results(results)
    record = rep.scan_record(results, path)
    enrolment: dict[str, list[str]] = {}
    named_like_page: list[str] = []
    if path.exists() and html_path is not None:
        with Watchlist.open(path) as wl:
            enrolment = {n: wl.photos(n) for n in {r["identity"] for r in rows} if n}
            named_like_page = wl.photos_named(html_path.name)
    # Everything the page or the clips read is an input: the rows' footage (as named and
    # as the scan's folder resolves it), their pictures, the enrolment photos.
    read = [("the results", results), *watchlist_files(path)]
    for row in rows:
        read.append(("a row's footage", Path(row["source"])))
        recorded = rep.recorded_path(record or {}, row["source"])
        if recorded is not None:
            read.append(("a row's footage", Path(recorded)))
        read += [(f"a row's {k}", Path(row[k])) for k in ("crop", "frame_view") if row.get(k)]
    read += [("an enrolment photo", Path(p)) for photos in enrolment.values() for p in photos]
    read += [("an enrolment photo", Path(p)) for p in named_like_page]
    files.check_outputs({"--html": html_path}, dict.fromkeys(read))  # rows share files
    if clips_dir is not None:
        files.writable_folder(clips_dir, "--clips")
    for problem in problems:
        click.echo(f"error: {printable(str(results))}: {printable(problem)}", err=True)
    failed, made = len(problems), 0
    if clips_dir is not None:
        failed_clips, made = _write_clips(rows, clips_dir, record)
        failed += failed_clips
    if html_path is not None:

        def pictures(path: Any) -> str | None:
            return rep.picture(path, record)

        page = rep.build(
            rows, enrolment, title or f"frs review: {results.name}", rep.scan_rule(record), pictures
        )
        rep.write(html_path, page)
        made += 1
        click.echo(
            f"wrote {printable(str(html_path))}: {len(rows)} appearances to review", err=True
        )
        hidden = sum(1 for r in rows if r.get("crop") and pictures(r["crop"]) is None)
        if hidden:
            click.echo(
                f"note: {hidden} crop(s) not shown: not in the --crops folder of the scan that "
                "wrote these rows (its audit record); the page embeds no other picture",
                err=True,
            )
    if failed:
        raise click.exceptions.Exit(EXIT_PARTIAL if made else EXIT_FAILURE)


def _write_clips(
    rows: list[dict[str, Any]], folder: Path, record: dict[str, Any] | None
) -> tuple[int, int]:
    """One clip per row, of the file the scan read, analysed with the scan's settings; a
    row whose footage cannot be had or read is one error line, the rest are written.
    Returns how many failed (a clip without the box among them) and how many were written."""
    from rich.console import Console
    from rich.progress import Progress

    from frs_cli.errors import InputError
    from frs_cli.results import clips
    from frs_cli.results import report as rep

    failed = written = unboxed = 0
    taken: set[str] = set()
    with Progress(console=Console(stderr=True, markup=False), transient=True) as bar:
        task = bar.add_task("clips", total=len(rows))

        def error(where: str, why: str) -> None:
            bar.console.print(
                f"error: {printable(where)}: {printable(why)}", markup=False, soft_wrap=True
            )

        # Rows of one file share its identification (a fingerprint reads 2 MiB).
        found: dict[str, str | InputError] = {}
        for row in rows:
            try:
                if row["source"] not in found:
                    try:
                        found[row["source"]] = rep.footage(row, record)
                    except InputError as err:
                        found[row["source"]] = err
                source = found[row["source"]]
                if isinstance(source, InputError):
                    raise source
                clip = clips.write_clip(
                    row, folder, source, rep.analysis(record, row["source"]), taken
                )
                written += 1
                if not clip.boxed:
                    unboxed += 1
                    error(
                        str(clip.path),
                        f"the face of {row.get('identity') or row.get('person')} at "
                        f"{row['start_s']} s was not found again: the clip has no box",
                    )
            except InputError as err:
                failed += 1
                error(err.path, err.reason)
            except OSError as err:
                failed += 1
                error(str(folder), f"cannot write the clip: {err.strerror or err}")
            bar.advance(task)
    click.echo(
        f"wrote {written} clip(s) to {printable(str(folder))}"
        f"{f' ({unboxed} without the box)' if unboxed else ''}; {failed} failed",
        err=True,
    )
    return failed + unboxed, written
