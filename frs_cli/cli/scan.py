"""`frs scan`: footage in, one row per appearance out, on stdout or --out."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import click

from frs_cli import files
from frs_cli.cli.base import (
    FORMATS,
    MODELS,
    Finite,
    _quiet_stdout,
    _watchlist_path,
    _workers,
    cli,
    watchlist_option,
    workers_option,
)
from frs_cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_PIPE_CLOSED,
    FrsError,
    OutputError,
    UsageError,
)
from frs_cli.files import printable
from frs_cli.records import PERSON_COLUMN, AnalysisConfig
from frs_cli.scanner import settings


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
    "identity is within this distance; 0.6 there for dlib; ArcFace's scale: about "
    "1.15), whatever the watchlist's size. On the watchlist's family's scale: dlib "
    "0.30-0.65, ArcFace 0.80-1.35.",
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
    "larger (a quarter of the cost), on at most 1280x720 pixels.",
)
@click.option(
    "--min-face",
    type=click.IntRange(8, 4000),
    default=AnalysisConfig.min_face,
    show_default=True,
    help="Smallest face, in source pixels, that must be found; sets the detection scale.",
)
@click.option(
    "--model",
    type=click.Choice(MODELS),
    default=None,
    help="Face detector [default: the watchlist's family's: hog for dlib, scrfd for arcface].",
)
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
@click.option(
    "--roi",
    "rois",
    multiple=True,
    metavar="X,Y,W,H",
    help="Only faces whose box centre lies in this region (pixels of the frame as displayed) "
    "are searched for, followed and reported; detection works on the region only. Repeat "
    "for several regions.",
)
@click.option(
    "--exhaustive",
    is_flag=True,
    help="Every whole-frame search is dlib's search of every pixel. By default a fixed "
    "camera's picture is searched only where it changed since the previous search (every "
    "5th search, every 5 s at the default --detect-fps, looks at all of it), and at 1080p "
    "and up a moving camera's in two passes.",
)
@click.option(
    "--settings",
    "settings_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A TOML file of per-camera settings (roi, min_face, clock_from_name, start_time, "
    "timezone) by file glob; see docs/design.md.",
)
@click.option(
    "--clock",
    "clocks",
    multiple=True,
    metavar="FILE=TIME",
    help="The time of day at FILE's start (ISO 8601, e.g. cam1.mp4=2024-03-01T10:00:00+01:00); "
    "rows then have start_wall and end_wall. Repeat for several files.",
)
@click.option("--start-time", metavar="TIME", help="The time of day at every file's start.")
@click.option(
    "--clock-from-name",
    metavar="PATTERN",
    help="Read each file's start time from its name, e.g. '%Y%m%d_%H%M%S' for "
    "cam1_20240301_100000.mp4. Else the container's creation_time is used, where there is one.",
)
@click.option(
    "--timezone",
    metavar="ZONE",
    help="The zone of times given without an offset (Europe/London, UTC, +01:00). "
    "Default: this machine's.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar; errors and the summary only.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also say which files in folders were not videos, and where each file's clock came from.",
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
    model: str | None,
    workers: int | None,
    detections: bool,
    unmatched: bool,
    summary_path: Path | None,
    scheduler: str | None,
    crops_dir: Path | None,
    redact: bool,
    resume: bool,
    rois: tuple[str, ...],
    exhaustive: bool,
    settings_path: Path | None,
    clocks: tuple[str, ...],
    start_time: str | None,
    clock_from_name: str | None,
    timezone: str | None,
    quiet: bool,
    verbose: bool,
    footage: tuple[str, ...],
) -> None:
    """Find the watchlist's people in FOOTAGE (files, folders, globs).

    Writes one row per appearance (a face followed through time, matched to an
    identity) as each file completes. Exit code 0: all inputs scanned; 3: some
    failed (one line each on stderr), the rest were scanned; 1: nothing could be done.
    """
    from frs_cli.scanner import scanning
    from frs_cli.scanner import summary as scan_summary
    from frs_cli.scanner.scanning import ScanConfig

    scanning.check_rule_options(fpir, tolerance)  # before the pool starts
    wl_path = _watchlist_path(watchlist)
    family = scanning.watchlist_family(wl_path)
    family.check_tolerance(tolerance)
    wl_model = family.model_id()  # the family's weights are here, or one line says how
    cfg = ScanConfig(
        inputs=footage,
        watchlist=wl_path,
        analysis=AnalysisConfig(
            model=model or family.detector,
            encoder=family.name,
            min_face=min_face,
            sample_fps=sample_fps,
            detect_fps=min(detect_fps, sample_fps),
            quick_fps=min(quick_fps, sample_fps),
            views=crops_dir is not None,
            redact=redact,
            rois=tuple(settings.parse_roi(r) for r in rois),
            exhaustive=exhaustive,
        ),
        workers=_workers(workers, scheduler, verbose),
        detections=detections,
        unmatched=unmatched,
        clock=_clock_options(clocks, start_time, clock_from_name, timezone),
        cameras=settings.load(settings_path) if settings_path else (),
    )
    if resume:
        _check_resume(out, fmt, unmatched)
    _check_scan_paths(cfg, out, summary_path, crops_dir, settings_path)
    # The workers start first and load their models while this process opens the
    # watchlist and probes the inputs.
    executor = _executor(scheduler, cfg.workers, cfg.analysis.model, cfg.analysis.encoder)
    stats = None
    try:
        from frs_cli.scanner.progress import ScanProgress
        from frs_cli.watchlist import Watchlist

        with Watchlist.open(cfg.watchlist, wl_model) as wl:
            if wl.size == 0:
                raise FrsError(
                    f"the watchlist {cfg.watchlist} is empty; enrol photos with `frs enroll`"
                )
            wl.preload()  # a large store's index loads while the workers analyse
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
    summary = scan_summary.summary(stats, cfg, wl_model)
    scan_summary.audit_scan(
        cfg, stats, summary, wl_fingerprint, str(out) if out else "stdout", fmt, out, crops_dir
    )
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


def _clock_options(
    clocks: tuple[str, ...], start_time: str | None, pattern: str | None, zone: str | None
) -> Any:
    """The analyst's word on clocks, checked before any work (a bad one is exit 2)."""
    from frs_cli.video import wallclock

    tz = wallclock.parse_zone(zone) if zone is not None else None
    if pattern is not None:
        wallclock.check_pattern(pattern)
    return wallclock.ClockOptions(
        files=tuple(wallclock.parse_clock(c, tz) for c in clocks),
        start_time=wallclock.parse_time(start_time, tz, "--start-time")
        if start_time is not None
        else None,
        name_pattern=pattern,
        tz=tz,
    )


def _check_scan_paths(
    cfg: Any,
    out: Path | None,
    summary_path: Path | None,
    crops_dir: Path | None,
    settings_path: Path | None = None,
) -> None:
    """Before any work: no output is a file the scan reads (the watchlist and its files,
    the footage, the settings) or another output, and each output's folder exists; the
    crops go nowhere inside the footage's folders; every --clock FILE is one of the
    footage files, and a [[camera]] that matches none of them is said."""
    from frs_cli.scanner.resume import journal_path
    from frs_cli.video import inputs
    from frs_cli.watchlist import watchlist_files

    read = watchlist_files(cfg.watchlist)
    footage = [Path(c.path) for c in inputs.discover(cfg.inputs) if isinstance(c, inputs.Candidate)]
    read += [("footage", path) for path in footage]
    if settings_path is not None:
        read.append(("--settings", settings_path))
    outputs = {"--out": out, "--summary": summary_path}
    if out is not None:
        outputs["the journal of --out"] = journal_path(out)
    files.check_outputs(outputs, read)
    _check_regions(cfg, footage)
    if crops_dir is not None:
        for folder in (Path(a) for a in cfg.inputs if Path(a).is_dir()):
            if files.within(crops_dir, folder):
                raise UsageError(
                    f"--crops {printable(str(crops_dir))} is inside {printable(str(folder))}, "
                    "which the scan reads: the crops would be footage of the next scan; "
                    "choose a folder outside it"
                )
    for named, _ in cfg.clock.files:
        if not any(named == str(p) or files.same_file(named, p) for p in footage):
            raise UsageError(
                f"--clock {printable(named)}=...: {printable(named)} is none of the footage "
                "files given; name a file as it is given to the scan"
            )
    for k, camera in enumerate(cfg.cameras):
        if not any(camera.matches(str(p)) for p in footage):
            click.echo(
                f"warning: --settings camera {k + 1} (files = {printable(camera.files)!r}) "
                "matches none of the footage files",
                err=True,
            )


def _check_regions(cfg: Any, footage: list[Path]) -> None:
    """Before any work: every region of interest lies inside the frames it is for (each
    file's size read from its header; a file that cannot be read is left to the scan)."""
    from frs_cli.video import decode

    for path in footage:
        camera = settings.camera_for(str(path), cfg.cameras)
        rois = settings.analysis_for(camera, cfg.analysis).rois
        size = decode.display_size(str(path)) if rois else None
        if size is None:
            continue
        for roi in rois:
            if settings.outside(roi, *size):
                raise UsageError(
                    f"the region of interest {','.join(map(str, roi))} lies outside "
                    f"{printable(str(path))}'s {size[0]}x{size[1]} frame (X,Y,W,H in pixels "
                    "of the frame as displayed)"
                )


def _executor(scheduler: str | None, workers: int, model: str, encoder: str) -> Any:
    from frs_cli.workers.executors import make_executor

    return make_executor(workers, model, scheduler, encoder)


def _check_resume(out: Path | None, fmt: str, unmatched: bool = False) -> None:
    if unmatched:
        raise UsageError(
            "--resume cannot continue --unmatched's person labels: they depend on the faces "
            "of the files already scanned, which frs never writes down; scan again without "
            "--resume"
        )
    if out is None:
        raise UsageError("--resume needs --out FILE: the output of the scan to continue")
    if not _regular(out):
        raise UsageError(f"--resume needs --out to be a regular file; {out} is not")
    if fmt == "json":
        raise UsageError("--resume works with --format csv or jsonl (a JSON array cannot grow)")


def _journal(out: Path | None, fmt: str, resume: bool, cfg: Any, wl_fingerprint: Any) -> Any:
    """The resume journal for --out files (csv, jsonl); None for stdout and json."""
    from frs_cli.scanner.resume import Journal, journal_path, settings_key

    if out is None or fmt == "json" or not _regular(out):
        return None  # stdout, a JSON array, or a device or pipe: nothing to resume from
    options = {
        "format": fmt,
        "rule": cfg.rule.to_dict(),
        "analysis": dataclasses.asdict(cfg.analysis),
        "detections": cfg.detections,
        "unmatched": cfg.unmatched,
        "watchlist": wl_fingerprint,
        "clock": repr(cfg.clock),
        "cameras": repr(cfg.cameras),
        "columns": 2,  # the wall-clock columns: an output of an earlier frs is not continued
    }
    try:
        return Journal.start(out, settings_key(options), resume and out.exists())
    except OSError as err:
        raise FrsError(
            f"cannot write {printable(str(journal_path(out)))}, the journal of --out: "
            f"{err.strerror or err}"
        ) from None


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

    from frs_cli.faces import views
    from frs_cli.results import writers
    from frs_cli.scanner.scanning import FileOutcome, run_scan

    columns: tuple[str, ...]
    if cfg.detections:
        columns = writers.DETECTION_COLUMNS
    elif crops_dir is not None:
        columns = writers.REVIEW_COLUMNS
        files.writable_folder(crops_dir, "--crops")
    else:
        columns = writers.APPEARANCE_COLUMNS
    if cfg.unmatched:
        columns = (*columns, PERSON_COLUMN)
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
                try:
                    crop, view = views.save_views(crops_dir, appearance)
                except OSError as err:
                    raise OutputError(
                        f"cannot write the crops into {printable(str(crops_dir))}: "
                        f"{err.strerror or err}; the scan stopped, and the rows of the files "
                        "before are complete"
                    ) from None
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
    from frs_cli.accuracy import calibration
    from frs_cli.scanner.summary import PRECISION_NOTE
    from frs_cli.timecode import format_tc

    speed = float(stats.footage_s) / stats.wall_s if stats.wall_s else 0.0
    lines = [
        f"scanned {stats.files_ok} file(s), {format_tc(stats.footage_s)} of footage in "
        f"{stats.wall_s:.1f} s ({speed:.1f}x real time); {stats.files_failed} failed",
        f"{stats.frames_analysed} frames analysed, {stats.faces} face detections in "
        f"{stats.tracks} faces followed (tracks), {stats.alerts} alerts (matched appearances), "
        f"{1000 * stats.alerts / stats.tracks if stats.tracks else 0:.1f} per 1,000 faces, "
        f"against {stats.watchlist_identities} identities ({stats.watchlist_faces} faces)",
        *calibration.summary_lines(
            cfg.rule, stats.looks, {band: counts[0] for band, counts in stats.by_band.items()}
        ),
    ]
    if stats.unaligned:
        lines.append(
            f"{stats.unaligned} view(s) of faces left out: their landmarks lie at one point, "
            "so they cannot be aligned for the encoder"
        )
    derived = [i["path"] for i in stats.inputs if "times" in i]
    if derived:
        lines.append(
            f"times derived from the frame rate, not read from the file, for {len(derived)} "
            f"file(s) without timestamps: {', '.join(map(printable, derived[:3]))}"
            f"{' ...' if len(derived) > 3 else ''}"
        )
    videos = [i for i in stats.inputs if "duration_s" in i]
    sources: dict[str, int] = {}
    for entry in videos:
        source = entry["clock"]["source"] if "clock" in entry else "unknown (no start_wall)"
        sources[source] = sources.get(source, 0) + 1
    if videos:
        lines.append(
            "clock of the files: " + ", ".join(f"{n} from {src}" for src, n in sources.items())
        )
    for line in lines:
        click.echo(line, err=True)
    click.echo(PRECISION_NOTE, err=True)
