"""The command line: parse options into frozen configs, run, and turn domain errors into
one-line messages and exit codes. The only module that imports click."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from frs_cli import __version__, files
from frs_cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_PIPE_CLOSED,
    FrsError,
    OutputError,
    UsageError,
    internal_error,
)
from frs_cli.files import printable
from frs_cli.records import AnalysisConfig

FORMATS = ("csv", "jsonl", "json")
MODELS = ("hog", "cnn")


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class FrsGroup(click.Group):
    """Turns FrsError into `Error: message` and its exit code, and any other exception
    into one `Error: internal error (...)` line and exit 1: never a traceback unless
    FRS_DEBUG=1 asks for it. Ctrl-C is exit 130; a closed stdout (`frs ... | head -1`)
    ends frs quietly with 141, as a shell reports a writer stopped by SIGPIPE."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit):
            raise
        except (KeyboardInterrupt, click.Abort):
            click.echo("frs: interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except Exception as err:
            if _stdout_closed(err):
                _quiet_stdout()
                raise click.exceptions.Exit(EXIT_PIPE_CLOSED) from None
            if os.environ.get("FRS_DEBUG"):
                raise
            if isinstance(err, FrsError):
                message, code = printable(str(err)), err.exit_code
            else:
                message, code = internal_error(err), EXIT_FAILURE
            # ClickException prints "Error: message" to stderr and exits with exit_code.
            kind = type("FrsClickException", (click.ClickException,), {"exit_code": code})
            raise kind(message) from None


def _stdout_closed(err: BaseException) -> bool:
    return isinstance(err, BrokenPipeError) or (isinstance(err, OutputError) and err.closed)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class Finite(click.FloatRange):
    """A FloatRange that also refuses nan and inf (which compare false with both bounds)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


@click.group(cls=FrsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="frs")
def cli() -> None:
    """Search recorded footage for the people on a watchlist.

    Enrol photos with `frs enroll`, then `frs scan FOOTAGE...` writes one row per
    appearance of a watchlist identity, with exact times, to stdout or --out.
    """


def watchlist_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-w",
        "--watchlist",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Watchlist file. Default: $FRS_WATCHLIST, else ~/.local/share/frs/watchlist.db.",
    )(fn)


def workers_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Worker processes. Default: all cores (never more than the cores for a local pool).",
    )(fn)


def _watchlist_path(value: Path | None) -> Path:
    from frs_cli.watchlist import default_path

    return value if value is not None else default_path()


def _say(quiet: bool) -> Callable[[str], None]:
    def say(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    return say


# -- enroll -----------------------------------------------------------------
@cli.command()
@watchlist_option
@click.option("--name", help="Enrol every given photo as this one identity.")
@workers_option
@click.option("--scheduler", metavar="ADDRESS", help="Encode on a Dask cluster (or 'local').")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and the final count.")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def enroll(
    watchlist: Path | None,
    name: str | None,
    workers: int | None,
    scheduler: str | None,
    quiet: bool,
    paths: tuple[str, ...],
) -> None:
    """Add the faces in photos to a watchlist.

    PATHS are folders with one sub-folder per person (people/Ada_Lovelace/*.jpg:
    the folder name is the identity), photos named after the person
    (Ada_Lovelace.jpg, Ada_Lovelace_2.jpg), or, with --name, photos of one person.
    The largest face of each photo is enrolled; photos already enrolled are skipped.
    """
    from frs_cli import enroll as enrol_mod
    from frs_cli.watchlist import UNLIKE_DISTANCE, Watchlist

    path = _watchlist_path(watchlist)
    say = _say(quiet)
    with Watchlist.create(path) as wl:
        stats = enrol_mod.enrol_into(
            wl, paths, name, workers or _default_workers(), scheduler, say, warn=_say(False)
        )
        total = wl.face_count()
        people = len(wl.identities())
        unlike = wl.unlike_photos({p["identity"] for p in stats.photos})
    for u in unlike:
        say(
            f"unlike: {printable(u.photo)} ({printable(u.identity)}): median distance {u.distance:.2f} to its "
            f"{u.others} other photo(s); a different person?"
        )
    if unlike:
        odd = len({u.identity for u in unlike})
        click.echo(
            f"warning: {len(unlike)} photo(s) of {odd} identit(y/ies) look unlike the rest of "
            f"their identity (median distance above {UNLIKE_DISTANCE}): check them; "
            "`frs watchlist verify` lists them, `frs watchlist remove` or `rename` fixes them",
            err=True,
        )
    click.echo(
        f"{stats.enrolled} enrolled, {stats.duplicates} already enrolled, "
        f"{stats.no_face} without a face, {stats.unreadable} unreadable"
        f"{f' ({stats.several} had several faces)' if stats.several else ''}; "
        f"{printable(str(path))} holds {total} faces of {people} identities",
        err=True,
    )
    if stats.failed:
        sys.exit(EXIT_PARTIAL if stats.enrolled or stats.duplicates else EXIT_FAILURE)


# -- scan -------------------------------------------------------------------
@cli.command()
@watchlist_option
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write rows here (default: stdout).",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
@click.option(
    "--fpir",
    type=Finite(0.0001, 0.5),
    default=None,
    help="The rule in force unless --tolerance is given: alert when the nearest identity "
    "is within a distance AND clearly nearer than the next one (a margin), both chosen for "
    "this watchlist so that about this share of faces of people NOT on it alert, with the "
    "fewest misses. Default 0.01.",
)
@click.option(
    "--tolerance",
    type=Finite(0, 2),
    default=None,
    help="Instead of --fpir: a fixed rule, face_recognition's (match if the nearest "
    "identity is within this distance; 0.6 there), whatever the watchlist's size.",
)
@click.option(
    "--sample-fps",
    type=Finite(0.1, 240),
    default=AnalysisConfig.sample_fps,
    show_default=True,
    help="Frames analysed per second of footage (followed faces are looked for in each).",
)
@click.option(
    "--detect-fps",
    type=Finite(0.05, 240),
    default=AnalysisConfig.detect_fps,
    show_default=True,
    help="Whole-frame searches for new faces of every size (down to --min-face) per second.",
)
@click.option(
    "--quick-fps",
    type=Finite(0.05, 240),
    default=AnalysisConfig.quick_fps,
    show_default=True,
    help="Whole-frame searches per second, in between, for faces of twice --min-face or "
    "larger (a quarter of the cost).",
)
@click.option(
    "--min-face",
    type=click.IntRange(8, 4000),
    default=AnalysisConfig.min_face,
    show_default=True,
    help="Smallest face, in source pixels, that must be found; sets the detection scale.",
)
@click.option("--model", type=click.Choice(MODELS), default="hog", show_default=True)
@workers_option
@click.option(
    "--detections", is_flag=True, help="One row per face per frame instead of per appearance."
)
@click.option(
    "--unmatched", is_flag=True, help="Also write faces that match nobody (identity empty)."
)
@click.option(
    "--summary",
    "summary_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the end-of-scan summary here as JSON.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Run the work on a Dask cluster: tcp://HOST:8786, or 'local' for one here.",
)
@click.option(
    "--crops",
    "crops_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Save each matched appearance's face and frame here; rows gain their paths.",
)
@click.option("--redact", is_flag=True, help="Blur the other faces in the saved frames.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted scan into the same --out: skip the files it finished.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar; errors and the summary only.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Also say which files in folders were not videos."
)
@click.argument("footage", nargs=-1, required=True)
def scan(
    watchlist: Path | None,
    out: Path | None,
    fmt: str,
    fpir: float | None,
    tolerance: float | None,
    sample_fps: float,
    detect_fps: float,
    quick_fps: float,
    min_face: int,
    model: str,
    workers: int | None,
    detections: bool,
    unmatched: bool,
    summary_path: Path | None,
    scheduler: str | None,
    crops_dir: Path | None,
    redact: bool,
    resume: bool,
    quiet: bool,
    verbose: bool,
    footage: tuple[str, ...],
) -> None:
    """Find the watchlist's people in FOOTAGE (files, folders, globs).

    Writes one row per appearance (a face followed through time, matched to an
    identity) as each file completes. Exit code 0: all inputs scanned; 3: some
    failed (one line each on stderr), the rest were scanned; 1: nothing could be done.
    """
    from frs_cli import scanning
    from frs_cli.scanning import ScanConfig

    scanning.check_rule_options(fpir, tolerance)  # before the pool starts
    cfg = ScanConfig(
        inputs=footage,
        watchlist=_watchlist_path(watchlist),
        analysis=AnalysisConfig(
            model=model,
            min_face=min_face,
            sample_fps=sample_fps,
            detect_fps=min(detect_fps, sample_fps),
            quick_fps=min(quick_fps, sample_fps),
            views=crops_dir is not None,
            redact=redact,
        ),
        workers=_workers(workers, scheduler, verbose),
        detections=detections,
        unmatched=unmatched,
    )
    if resume:
        _check_resume(out, fmt)
    _check_scan_paths(cfg, out, summary_path, crops_dir)
    # The workers start first and load their models while this process opens the
    # watchlist and probes the inputs.
    executor = _executor(scheduler, cfg.workers, model)
    stats = None
    try:
        from frs_cli import models
        from frs_cli.progress import ScanProgress
        from frs_cli.watchlist import Watchlist

        wl_model = models.encoder_model_id()
        with Watchlist.open(cfg.watchlist, wl_model) as wl:
            if wl.size == 0:
                raise FrsError(
                    f"the watchlist {cfg.watchlist} is empty; enrol photos with `frs enroll`"
                )
            wl_fingerprint = wl.fingerprint()
            stats = scanning.new_stats(wl)
            try:
                cfg = dataclasses.replace(cfg, rule=scanning.choose_rule(wl, fpir, tolerance))
                journal = _journal(out, fmt, resume, cfg, wl_fingerprint)
                output = _output(out, journal.offset if journal else 0)
            except KeyboardInterrupt:
                stats.interrupted = True  # before any file: audited as such below
            else:
                with ScanProgress(quiet, verbose) as events:
                    _scan_to(output, fmt, cfg, wl, executor, events, journal, crops_dir, stats)
    finally:
        executor.shutdown(cancel=stats is not None and stats.interrupted)
    summary = scanning.summary(stats, cfg, wl_model)
    scanning.audit_scan(cfg, stats, summary, wl_fingerprint, str(out) if out else "stdout", fmt)
    if summary_path is not None:
        files.write_output(summary_path, json.dumps(summary, indent=2) + "\n")
    if stats.output_error is not None and stats.output_closed:
        _quiet_stdout()
        sys.exit(EXIT_PIPE_CLOSED)
    if not quiet or stats.files_failed or stats.output_error:
        _print_summary(stats, cfg)
    if stats.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if stats.output_error is not None:
        raise FrsError(stats.output_error)
    if stats.files_ok + stats.files_partial + stats.files_resumed == 0:
        sys.exit(EXIT_FAILURE)
    sys.exit(EXIT_PARTIAL if stats.files_failed else EXIT_OK)


def _workers(asked: int | None, scheduler: str | None, verbose: bool) -> int:
    """Worker processes: all cores by default, never more than the cores there are for a
    pool here (each more is ~55 MB and no faster); a Dask cluster's are its own."""
    cores = _default_workers()
    if asked is None:
        return cores
    if scheduler is None and asked > cores:
        if verbose:
            click.echo(f"note: --workers {asked}: {cores} used, one per core", err=True)
        return cores
    return asked


def _check_scan_paths(
    cfg: Any, out: Path | None, summary_path: Path | None, crops_dir: Path | None
) -> None:
    """Before any work: no output is a file the scan reads (the watchlist and its files,
    the footage) or another output, and each output's folder exists."""
    from frs_cli import inputs
    from frs_cli.resume import journal_path
    from frs_cli.watchlist import watchlist_files

    read = watchlist_files(cfg.watchlist)
    read += [
        ("footage", Path(c.path))
        for c in inputs.discover(cfg.inputs)
        if isinstance(c, inputs.Candidate)
    ]
    outputs = {"--out": out, "--summary": summary_path}
    if out is not None:
        outputs["the journal of --out"] = journal_path(out)
    files.check_outputs(outputs, read)
    if crops_dir is not None and any(
        files.same_file(crops_dir, path) for _, path in read if path.is_dir()
    ):
        raise UsageError(f"--crops {printable(str(crops_dir))} is a folder the scan reads")


def _executor(scheduler: str | None, workers: int, model: str) -> Any:
    from frs_cli.executors import make_executor

    return make_executor(workers, model, scheduler)


def _check_resume(out: Path | None, fmt: str) -> None:
    if out is None:
        raise UsageError("--resume needs --out FILE: the output of the scan to continue")
    if not _regular(out):
        raise UsageError(f"--resume needs --out to be a regular file; {out} is not")
    if fmt == "json":
        raise UsageError("--resume works with --format csv or jsonl (a JSON array cannot grow)")


def _journal(out: Path | None, fmt: str, resume: bool, cfg: Any, wl_fingerprint: Any) -> Any:
    """The resume journal for --out files (csv, jsonl); None for stdout and json."""
    from frs_cli.resume import Journal, settings_key

    if out is None or fmt == "json" or not _regular(out):
        return None  # stdout, a JSON array, or a device or pipe: nothing to resume from
    settings = {
        "format": fmt,
        "rule": cfg.rule.to_dict(),
        "analysis": dataclasses.asdict(cfg.analysis),
        "detections": cfg.detections,
        "unmatched": cfg.unmatched,
        "watchlist": wl_fingerprint,
    }
    return Journal.start(out, settings_key(settings), resume and out.exists())


def _regular(path: Path) -> bool:
    """A regular file, or none yet (one will be created); not /dev/null, a FIFO, a tty."""
    import stat

    try:
        return stat.S_ISREG(path.stat().st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _output(out: Path | None, keep: int = 0) -> files.Output:
    """stdout, or OUT (files.Output.open: replaced, or with `keep` > 0 cut back to it)."""
    if out is None:
        return files.Output.stdout(sys.stdout)
    try:
        return files.Output.open(out, keep)
    except OSError as err:
        raise FrsError(f"cannot write {printable(str(out))}: {err.strerror or err}") from None


def _scan_to(
    output: files.Output,
    fmt: str,
    cfg: Any,
    wl: Any,
    executor: Any,
    events: Any,
    journal: Any,
    crops_dir: Path | None,
    stats: Any,
) -> None:
    """Run the scan, committing each file's rows to `output` whole. A full disk or a
    closed pipe stops the scan (`stats.output_error`); the rows before stay whole."""
    import io

    from frs_cli import views, writers
    from frs_cli.scanning import FileOutcome, run_scan

    columns: tuple[str, ...]
    if cfg.detections:
        columns = writers.DETECTION_COLUMNS
    elif crops_dir is not None:
        columns = writers.REVIEW_COLUMNS
        try:
            crops_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as err:
            raise FrsError(f"cannot create {crops_dir}: {err.strerror}") from None
    else:
        columns = writers.APPEARANCE_COLUMNS
    pending = io.StringIO()  # one file's rows, until they are committed together
    if fmt == "csv":
        writer: writers.Writer = writers.CsvWriter(pending, columns, header=output.offset == 0)
    else:
        writer = writers.WRITERS[fmt](pending, columns)

    def commit() -> None:
        try:
            output.commit(pending.getvalue())
        except OSError as err:
            closed = isinstance(err, BrokenPipeError)
            where = printable(output.name)
            raise OutputError(
                f"cannot write {where}: {err.strerror or err}; the scan stopped, and the rows "
                "of the files before are complete",
                closed=closed,
            ) from None
        finally:
            pending.seek(0)
            pending.truncate()

    def emit(outcome: FileOutcome) -> None:
        before = writer.rows
        for appearance in outcome.appearances:
            if cfg.detections:
                rows = writers.detection_rows(appearance)
            elif crops_dir is not None:
                crop, view = views.save_views(crops_dir, appearance)
                rows = [writers.review_row(appearance, crop, view)]
            else:
                rows = [writers.appearance_row(appearance)]
            for row in rows:
                writer.write(row)
        commit()
        if journal is not None:
            journal.record(outcome.path, writer.rows - before, output)

    skip = (lambda path: path in journal.done) if journal is not None else None
    try:
        run_scan(cfg, wl, executor, emit, events, skip, stats)
        writer.close()
        commit()
    except OutputError as err:
        stats.output_error, stats.output_closed = str(err), err.closed
    finally:
        output.close()


def _print_summary(stats: Any, cfg: Any) -> None:
    from frs_cli import calibration
    from frs_cli.scanning import PRECISION_NOTE
    from frs_cli.timecode import format_tc

    speed = float(stats.footage_s) / stats.wall_s if stats.wall_s else 0.0
    lines = [
        f"scanned {stats.files_ok} file(s), {format_tc(stats.footage_s)} of footage in "
        f"{stats.wall_s:.1f} s ({speed:.1f}x real time); {stats.files_failed} failed",
        f"{stats.frames_analysed} frames analysed, {stats.faces} face detections in "
        f"{stats.tracks} faces followed (tracks), {stats.alerts} alerts (matched appearances), "
        f"{1000 * stats.alerts / stats.tracks if stats.tracks else 0:.1f} per 1,000 faces, "
        f"against {stats.watchlist_identities} identities ({stats.watchlist_faces} faces)",
        *calibration.summary_lines(cfg.rule, stats.looks),
    ]
    derived = [i["path"] for i in stats.inputs if "times" in i]
    if derived:
        lines.append(
            f"times derived from the frame rate, not read from the file, for {len(derived)} "
            f"file(s) without timestamps: {', '.join(derived[:3])}{' ...' if len(derived) > 3 else ''}"
        )
    for line in lines:
        click.echo(line, err=True)
    click.echo(PRECISION_NOTE, err=True)


# -- evaluate ---------------------------------------------------------------
@cli.command()
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--enrol",
    "enrol",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Photos enrolled per gallery identity (the first ones, by name).",
)
@click.option(
    "--gallery-share",
    type=Finite(0.01, 1.0),
    default=0.5,
    show_default=True,
    help="Share of identities put in the gallery; the rest are non-mated searches.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the gallery split.")
@click.option(
    "--tolerance",
    type=Finite(0, 2),
    default=0.6,
    show_default=True,
    help="The operating threshold to report (frs scan's --tolerance).",
)
@click.option("--limit", type=click.IntRange(min=2), help="Use only the first N identities.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every figure, the DET points and the exact split here.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a DET curve (PNG) with the operating point marked.",
)
@click.option(
    "--cohort",
    "cohort_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Photos of people outside DATASET: compare the rules with this cohort too.",
)
@click.option(
    "--groups",
    "groups_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV identity,group: report the metrics per group too.",
)
@workers_option
def evaluate(
    dataset: Path,
    enrol: int,
    gallery_share: float,
    seed: int,
    tolerance: float,
    limit: int | None,
    json_path: Path | None,
    plot_path: Path | None,
    cohort_dir: Path | None,
    groups_path: Path | None,
    workers: int | None,
) -> None:
    """Measure 1:N accuracy on DATASET (one folder of photos per identity, e.g. LFW).

    Enrols the first photo(s) of a share of the identities, searches every other photo,
    and reports rank-1 rate, FNIR and FPIR across thresholds, FNIR at FPIR 1%, 0.3% and
    0.1% for each rule (threshold; + margin; + cohort; + fusion of two photos), the FPIR
    and FNIR that `frs scan`'s calibration predicts for this gallery beside the measured
    ones, and the precision of alerts against prevalence.
    """
    from frs_cli import api
    from frs_cli import evaluation as ev

    files.check_outputs({"--json": json_path, "--plot": plot_path}, [])
    data = api.evaluate(
        dataset, enrol=enrol, gallery_share=gallery_share, seed=seed, tolerance=tolerance,
        limit=limit, cohort=cohort_dir,
        groups=ev.load_groups(groups_path) if groups_path else None, workers=workers,
    )  # fmt: skip
    _print_evaluation(data)
    if json_path is not None:
        files.write_output(json_path, json.dumps(data, indent=2) + "\n")
    if plot_path is not None:
        ev.plot_det(data, plot_path)


def _print_evaluation(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True, highlight=False)
    op = data["at_tolerance"]
    fta = data["failures_to_acquire"]
    console.print(
        f"{data['dataset']}: gallery {data['gallery_identities']} identities "
        f"({data['gallery_faces']} faces, {len(data['failures_to_enrol'])} failed to enrol); "
        f"{data['mated_searches']} mated and {data['non_mated_searches']} non-mated searches "
        f"(no face found: {fta['mated']} mated, {fta['non_mated']} non-mated); seed {data['seed']}"
    )
    table = Table(title="Errors at thresholds")
    for col in ("threshold", "FPIR", "FNIR", "note"):
        table.add_column(col)
    table.add_row(
        f"{op['threshold']}", f"{op['fpir']:.4f}", f"{op['fnir']:.4f}",
        f"the tolerance: {op['non_mated_alerts']} false alerts, {op['mated_misses']} misses",
    )  # fmt: skip
    for row in data["rules"]["threshold"]["fnir_at_fpir"]:
        if row:
            table.add_row(
                f"{row['threshold']}", f"{row['fpir']:.4f}", f"{row['fnir']:.4f}",
                f"largest threshold with FPIR <= {row['fpir_target']}",
            )  # fmt: skip
    console.print(table)
    rules = Table(title="FNIR at FPIR, per rule (best parameters on this split)")
    rules.add_column("rule")
    for target in ("1%", "0.3%", "0.1%"):
        rules.add_column(f"FNIR at FPIR {target}")
    for name, rule in data["rules"].items():
        cells = [
            f"{r['fnir']:.4f} (t {r['threshold']}"
            + (f", m {r['margin']})" if "margin" in r else ")")
            if r
            else "-"
            for r in rule["fnir_at_fpir"]
        ]
        rules.add_row(name, *cells)
    console.print(rules)
    scan = data["scan_rule"]
    rule = scan["rule"]
    console.print(
        f"frs scan's rule for this gallery at --fpir 0.01: distance <= {rule['threshold']}"
        + (f" and margin >= {rule['margin']}" if rule["margin"] else "")
        + f"; FPIR predicted {scan['predicted_fpir']:.4f}, measured {scan['measured_fpir']:.4f}; "
        f"FNIR predicted {scan['predicted_fnir']:.4f}, measured {scan['measured_fnir']:.4f} "
        f"({rule['source']})"
    )
    console.print(f"rank-1 identification rate: {data['rank1_identification_rate']:.4f}")
    prec = Table(title=f"Share of alerts that are right, at threshold {op['threshold']}")
    prec.add_column("people on the watchlist among those searched")
    prec.add_column("alerts that are right")
    for row in data["alert_precision_by_prevalence"]:
        prec.add_row(f"1 in {round(1 / row['prevalence']):,}", f"{row['precision']:.1%}")
    console.print(prec)
    if "groups" in data:
        _print_groups(console, data["groups"], data["at_tolerance"]["threshold"])


def _print_groups(console: Any, groups: dict[str, Any], tolerance: float) -> None:
    from rich.table import Table

    rule = groups.get("scan_rule")
    title = "Per group"
    if rule:
        title += f": at frs scan's rule (distance <= {rule['threshold']}"
        title += f", margin >= {rule['margin']})" if rule["margin"] else ")"
    table = Table(title=f"{title}, and at the tolerance {tolerance}")
    cols = ["group", "mated", "non-mated"]
    if rule:
        cols += ["FNIR at the rule (95%)", "FPIR at the rule (95%)"]
    cols += ["rank-1", f"FNIR at {tolerance}", f"FPIR at {tolerance}"]
    for col in cols:
        table.add_column(col)

    def cell(value: float, bounds: list[float] | None, digits: int) -> str:
        text = f"{value:.{digits}f}"
        return text + (f" ({bounds[0]:.{digits}f}-{bounds[1]:.{digits}f})" if bounds else "")

    for name, row in groups["per_group"].items():
        cells = [name, str(row["mated_searches"]), str(row["non_mated_searches"])]
        if rule:
            at = row["at_scan_rule"]
            cells += [
                cell(at["fnir"], at["fnir_interval"], 3),
                cell(at["fpir"], at["fpir_interval"], 4),
            ]
        cells += [
            f"{row['rank1_identification_rate']:.4f}",
            f"{row['fnir']:.4f}",
            f"{row['fpir']:.4f}",
        ]
        table.add_row(*cells)
    console.print(table)
    if rule:
        ratio = groups["ratio_at_scan_rule"]
        fmt = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
        console.print(
            f"at the rule, the most-missed group is missed {fmt(ratio['fnir'])} as often as the "
            f"least, and the most falsely alerted group alerts {fmt(ratio['fpir'])} as often"
        )
    spread = groups["spread"]
    console.print(
        f"spread between groups at the tolerance: FNIR {spread['fnir']:.4f}, "
        f"FPIR {spread['fpir']:.4f}, rank-1 {spread['rank1_identification_rate']:.4f}"
    )


# -- watchlist --------------------------------------------------------------
@cli.group()
def watchlist() -> None:
    """Inspect and manage a watchlist: info, list, remove, rename, verify, rebuild."""


def _open_for_change(path: Path) -> Any:
    from frs_cli import models
    from frs_cli.watchlist import Watchlist

    return Watchlist.open(path, models.encoder_model_id())


@watchlist.command("info")
@watchlist_option
@click.option(
    "--fpir",
    type=Finite(0.0001, 0.5),
    default=0.01,
    show_default=True,
    help="Show the alert rule frs scan would use for this false-alert rate.",
)
def watchlist_info(watchlist: Path | None, fpir: float) -> None:
    """Identities, faces, encoder, schema, index state, file sizes, and the alert rule
    `frs scan --fpir` would use, with its estimated error rates and how they were found."""
    from frs_cli import calibration
    from frs_cli.watchlist import EXACT_LIMIT, Watchlist

    path = _watchlist_path(watchlist)
    with Watchlist.open(path) as wl:
        meta = wl.meta()
        faces = wl.face_count()
        lines = [
            f"watchlist: {path}",
            f"identities: {len(wl.identities())}",
            f"faces: {faces}",
            f"cohort: {wl.cohort_count()} faces of people not on the watchlist",
            f"encoder: {meta['model_id']}",
            f"schema version: {meta['schema_version']}; generation {meta['generation']}; "
            f"created {meta['created_at']}",
            f"search: {'exact' if faces < EXACT_LIMIT else 'HNSW index'} "
            f"(exact below {EXACT_LIMIT:,} faces); index {wl.index_state()}"
            + (f", ef {wl.ef}" if faces >= EXACT_LIMIT else ""),
        ]
        if faces:
            rule = wl.rule(fpir)
            lines += [f"at --fpir {fpir:g}, {calibration.summary_lines(rule, {})[0]}"]
            lines += calibration.summary_lines(rule, {})[1:2]
            fixed = calibration.fixed(0.6, wl.calibration())
            if fixed.fpir is not None:
                lines.append(
                    f"for comparison, face_recognition's fixed 0.6: estimated FPIR "
                    f"{fixed.fpir:.4f}, FNIR {fixed.fnir:.2f}"
                )
        for p in (path, wl.index_path, wl.index_meta_path, wl.calibration_path):
            if p.exists():
                lines.append(f"file: {p} ({p.stat().st_size:,} bytes)")
    for line in lines:
        click.echo(line)


@watchlist.command("list")
@watchlist_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
def watchlist_list(watchlist: Path | None, fmt: str) -> None:
    """Identities with their face counts."""
    from frs_cli import writers
    from frs_cli.watchlist import Watchlist

    with Watchlist.open(_watchlist_path(watchlist)) as wl:
        out = writers.WRITERS[fmt](sys.stdout, ("identity", "faces"))
        for ident in wl.identities():
            out.write({"identity": ident.name, "faces": ident.faces})
        out.close()


@watchlist.command("remove")
@watchlist_option
@click.argument("name")
def watchlist_remove(watchlist: Path | None, name: str) -> None:
    """Remove identity NAME and all its faces (the index is updated on next use)."""
    from frs_cli import audit

    path = _watchlist_path(watchlist)
    with _open_for_change(path) as wl:
        n = wl.remove(name)
        audit.append(
            path, audit.record("remove", watchlist=wl.fingerprint(), identity=name, faces=n)
        )
    click.echo(f"removed {printable(name)} ({n} faces) from {printable(str(path))}", err=True)


@watchlist.command("rename")
@watchlist_option
@click.argument("old")
@click.argument("new")
def watchlist_rename(watchlist: Path | None, old: str, new: str) -> None:
    """Rename identity OLD to NEW, merging into NEW if it exists."""
    from frs_cli import audit

    path = _watchlist_path(watchlist)
    with _open_for_change(path) as wl:
        merged = wl.rename(old, new)
        audit.append(path, audit.record("rename", watchlist=wl.fingerprint(), old=old, new=new))
    click.echo(
        f"{'merged' if merged else 'renamed'} {printable(old)} into {printable(new)}", err=True
    )


@watchlist.command("verify")
@watchlist_option
def watchlist_verify(watchlist: Path | None) -> None:
    """Check the store and index: vectors present and finite, index consistent, checksums."""
    from frs_cli.watchlist import Watchlist

    path = _watchlist_path(watchlist)
    with Watchlist.open(path, check=False) as wl:
        problems = wl.verify()
        faces = wl.face_count() if not problems else 0
        unlike = [] if problems else wl.unlike_photos()
    for u in unlike:
        click.echo(
            f"warning: {u.photo} ({u.identity}) looks unlike its identity's other "
            f"{u.others} photo(s): median distance {u.distance:.2f}",
            err=True,
        )
    for problem in problems:
        click.echo(f"problem: {problem}", err=True)
    if problems:
        raise FrsError(f"{path}: {len(problems)} problem(s) found")
    click.echo(f"{path}: ok ({faces} faces)", err=True)


@watchlist.group("cohort")
def cohort() -> None:
    """Faces of people NOT on the watchlist, used only to judge how clearly a face matches.

    A face alerts only if its identity is clearly nearer than any other identity and
    than any cohort face (the margin), so a cohort of ordinary faces (a public face set,
    or the analyst's own) cuts false alerts. Cohort faces are never matched, counted or
    written to any output; they are biometric data of unlisted people (docs/privacy.md).
    """


@cohort.command("add")
@watchlist_option
@workers_option
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and the final count.")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def cohort_add(
    watchlist: Path | None, workers: int | None, quiet: bool, paths: tuple[str, ...]
) -> None:
    """Add the largest face of each photo in PATHS (files or folders) to the cohort."""
    from frs_cli import enroll as enrol_mod

    path = _watchlist_path(watchlist)
    with _open_for_change(path) as wl:
        stats = enrol_mod.enrol_into(
            wl, paths, None, workers or _default_workers(), say=_say(quiet), cohort=True,
            warn=_say(False),
        )  # fmt: skip
        total = wl.cohort_count()
    click.echo(
        f"{stats.enrolled} added to the cohort, {stats.duplicates} already there, "
        f"{stats.no_face} without a face, {stats.unreadable} unreadable; {path} has a cohort "
        f"of {total} faces",
        err=True,
    )
    if stats.failed:
        sys.exit(EXIT_PARTIAL if stats.enrolled or stats.duplicates else EXIT_FAILURE)


@cohort.command("clear")
@watchlist_option
def cohort_clear(watchlist: Path | None) -> None:
    """Remove every cohort face."""
    from frs_cli import audit

    path = _watchlist_path(watchlist)
    with _open_for_change(path) as wl:
        n = wl.clear_cohort()
        audit.append(path, audit.record("cohort-clear", watchlist=wl.fingerprint(), faces=n))
    click.echo(f"removed the cohort ({n} faces) from {path}", err=True)


@watchlist.command("rebuild")
@watchlist_option
def watchlist_rebuild(watchlist: Path | None) -> None:
    """Recreate the HNSW index from the store (drops removed faces for good)."""
    from frs_cli.watchlist import Watchlist

    path = _watchlist_path(watchlist)
    with Watchlist.open(path) as wl:
        wl.rebuild()
        click.echo(f"rebuilt {wl.index_path} ({wl.face_count()} faces)", err=True)


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
            enrolment = {name: wl.photos(name) for name in {r["identity"] for r in rows}}
    page = rep.build(rows, enrolment, title or f"frs review: {results.name}")
    rep.write(html_path, page)
    click.echo(f"wrote {printable(str(html_path))}: {len(rows)} appearances to review", err=True)


# -- audit ------------------------------------------------------------------
@cli.command("audit")
@watchlist_option
@click.option(
    "--format", "fmt", type=click.Choice(("table", "jsonl")), default="table", show_default=True
)
def audit_cmd(watchlist: Path | None, fmt: str) -> None:
    """Show the audit trail of a watchlist: every enrol and scan, who ran it, on what."""
    from frs_cli import audit

    path = _watchlist_path(watchlist)
    entries = audit.read(path)
    if fmt == "jsonl":
        for entry in entries:
            click.echo(json.dumps(entry, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{audit.log_path(path)} ({len(entries)} records)")
    for col in ("time", "command", "user@host", "inputs", "threshold", "result"):
        table.add_column(col)
    for e in entries:
        counts = e.get("counts", {})
        result = ", ".join(f"{k} {v}" for k, v in counts.items())
        table.add_row(
            str(e.get("time", "")), str(e.get("command", "")),
            f"{e.get('user', '')}@{e.get('host', '')}", str(len(e.get("inputs", []))),
            str(e.get("threshold", "")), result,
        )  # fmt: skip
    Console(highlight=False, width=160).print(table)


# -- doctor -----------------------------------------------------------------
@cli.command()
def doctor() -> None:
    """Show which dlib build, models and libraries frs is using, and what that means
    for speed."""
    import platform

    import av
    import dlib
    import hnswlib  # noqa: F401  (imported to show it loads)
    import numpy

    from frs_cli import models

    def flag(name: str) -> bool:
        return bool(getattr(dlib, name, False))

    blas, cuda, avx = flag("DLIB_USE_BLAS"), flag("DLIB_USE_CUDA"), flag("USE_AVX_INSTRUCTIONS")
    lines = [
        f"frs {__version__} on Python {platform.python_version()} ({platform.machine()}), "
        f"{_default_workers()} usable cores",
        f"dlib {dlib.__version__}: BLAS {'yes' if blas else 'no'}, CUDA {'yes' if cuda else 'no'}, "
        f"AVX {'yes' if avx else 'no'}, LAPACK {'yes' if flag('DLIB_USE_LAPACK') else 'no'}",
        f"PyAV {av.__version__} (libavcodec "
        f"{'.'.join(map(str, av.library_versions['libavcodec']))}), NumPy {numpy.__version__}",
    ]
    ok = True
    try:
        lines.append(f"models: {models.models_dir()}; encoder {models.encoder_model_id()}")
        for name in (models.SHAPE_5, models.RESNET, models.MMOD):
            models.model_path(name)
    except FrsError as err:
        lines.append(f"models: MISSING: {err}")
        ok = False
    encoder = models.choice(models.RESNET) if ok else None
    if encoder is not None:
        for name in (models.RESNET, models.MMOD):
            c = models.choice(name)
            runs = "ONNX Runtime" if c.backend == "onnxruntime" else "dlib"
            lines.append(f"{models.NETWORKS[name]}: {runs} ({c.why})")
    if encoder is not None and encoder.backend == "onnxruntime":
        lines.append(
            "speed: encodings ~9 ms per face and --model cnn ~0.55 s per 1280x720 search on "
            "one core (dlib-bin: ~115 ms and ~8.6 s; docs/performance.md)."
        )
    elif cuda:
        lines.append("speed: CUDA build: dlib's networks run on the GPU.")
    elif blas:
        lines.append(
            "speed: BLAS build: encodings ~16 ms per face on one core (about 5x the wheel)."
        )
    else:
        lines.append(
            "speed: no BLAS (the dlib-bin wheel): encodings ~80-115 ms per face and "
            "--model cnn ~8.6 s per 1280x720 search; on ONNX Runtime ~9 ms and ~0.55 s "
            "(docs/performance.md)."
        )
    if not avx:
        lines.append(
            "speed: dlib built without AVX: HOG detection about 2x slower than it could be."
        )
    for line in lines:
        click.echo(line)
    if not ok:
        sys.exit(EXIT_FAILURE)


def main() -> None:
    try:
        cli(prog_name="frs")
    except KeyboardInterrupt:  # before or after Click's own handling (e.g. at start-up)
        print("frs: interrupted", file=sys.stderr)
        sys.exit(130)
