"""The Python API that the `frs` command is built on; `import frs_cli as frs`.

    wl = frs.Watchlist.create("case.db"); wl.enroll(["people/"])
    for a in frs.scan(["cam1.mp4"], watchlist="case.db"): print(a.identity, a.start_s)

Functions are named for what they return. Nothing here imports Click or rich; errors
are the domain errors in `frs_cli.errors` that the command line turns into exit codes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

from frs_cli.errors import FrsError
from frs_cli.records import AnalysisConfig, Appearance, Segment, SegmentResult
from frs_cli.scanner.scanning import Events
from frs_cli.video.wallclock import ClockOptions
from frs_cli.watchlist import EnrolReport
from frs_cli.watchlist import Watchlist as Store
from frs_cli.workers.executors import make_executor


class Watchlist(Store):
    """A watchlist as the API hands it out: the store (`frs_cli.watchlist`: open,
    create, identities, remove, rename, search) and enrolment, which is built on it.
    `Watchlist.create(path, encoder="arcface")` makes one of the second model family
    (families.py); scans, evaluation and cohorts then follow it."""

    def enroll(
        self,
        paths: Sequence[str | Path],
        name: str | None = None,
        workers: int = 1,
        scheduler: str | None = None,
    ) -> list[EnrolReport]:
        """Enrol the largest face of each photo in `paths` (files, or folders laid out as
        for `frs enroll`), as `name` or the identity the layout gives. One report per
        photo, in order; the audit trail records it like `frs enroll`."""
        from frs_cli.watchlist.enroll import enrol_into

        stats = enrol_into(self, paths, name, workers, scheduler)
        return [
            EnrolReport(p["path"], p["identity"], p["status"], p["sha256"]) for p in stats.photos
        ]


@dataclass(frozen=True)
class Progress:
    """How far a scan has got: footage seconds done of those found so far."""

    path: str  # the file that moved
    done_s: float
    total_s: float


class Scan:
    """A scan in progress: iterate for its `Appearance` records, file by file in input
    order as each file completes; `summary` (the `--summary` figures) and `failures`
    ((path, reason) of inputs that failed or broke off) are complete once it is done."""

    def __init__(
        self,
        footage: Sequence[str | Path],
        watchlist: str | Path | Store,
        fpir: float | None,
        tolerance: float | None,
        workers: int | None,
        scheduler: str | None,
        on_progress: Callable[[Progress], None] | None,
        analysis: AnalysisConfig,
        unmatched: bool,
        clock: ClockOptions | None = None,
    ):
        from frs_cli.scanner.scanning import ScanConfig

        # An open watchlist is used as it is (and left open); a path is opened and closed.
        self._store = watchlist if isinstance(watchlist, Store) else None
        self.config = ScanConfig(
            inputs=tuple(str(f) for f in footage),
            watchlist=watchlist.path if isinstance(watchlist, Store) else Path(watchlist),
            analysis=analysis,
            workers=workers or _cores(),
            unmatched=unmatched,
            clock=clock or ClockOptions(),
        )
        self.fpir, self.tolerance = fpir, tolerance
        self.scheduler = scheduler
        self.on_progress = on_progress
        self.summary: dict[str, Any] | None = None
        self.failures: list[tuple[str, str]] = []
        self._started = False

    def __iter__(self) -> Iterator[Appearance]:
        if self._started:
            raise FrsError("a Scan can be iterated once; call frs.scan(...) again")
        self._started = True
        return self._run()

    def _run(self) -> Iterator[Appearance]:
        from frs_cli.scanner import scanning
        from frs_cli.scanner import summary as scan_summary

        cfg = self.config
        scanning.check_rule_options(self.fpir, self.tolerance, cfg.analysis)
        family = scanning.watchlist_family(self._store or cfg.watchlist)
        family.check_tolerance(self.tolerance)
        cfg = self.config = dataclasses.replace(
            cfg, analysis=cfg.analysis.resolved(family.name, family.detector)
        )
        executor = make_executor(
            cfg.workers, cfg.analysis.model, self.scheduler, cfg.analysis.encoder
        )
        events = _Events(self.on_progress)
        stats: scanning.ScanStats | None = None
        finished = False
        try:
            model_id = family.model_id()
            with self._opened(model_id) as wl:
                if wl.size == 0:
                    raise FrsError(f"the watchlist {cfg.watchlist} is empty; enrol photos first")
                wl.preload()  # a large store's index loads while the workers analyse
                fingerprint = wl.fingerprint()
                stats = scanning.new_stats(wl)
                cfg = dataclasses.replace(
                    cfg, rule=scanning.choose_rule(wl, self.fpir, self.tolerance)
                )
                self.config = cfg
                for outcome in scanning.iter_scan(cfg, wl, executor, stats, events):
                    yield from outcome.appearances
                finished = True
        finally:
            # Also when the caller stops iterating early or Ctrl-C arrives: the audit
            # trail records what was done, as an interrupted scan.
            executor.shutdown(cancel=not finished)
            if stats is not None:
                stats.interrupted = stats.interrupted or not finished
                self.failures = [
                    (i["path"], i.get("reason", "")) for i in stats.inputs if i["status"] != "ok"
                ]
                self.summary = scan_summary.summary(stats, cfg, model_id)
                scan_summary.audit_scan(cfg, stats, self.summary, fingerprint, "python", "records")
        if stats is not None and stats.interrupted:
            raise KeyboardInterrupt  # iter_scan stopped on Ctrl-C: not a finished scan

    def _opened(self, model_id: str) -> Any:
        """The watchlist to scan against: the caller's open one, checked to be of this
        encoder, or the path opened for the scan."""
        import contextlib

        from frs_cli.errors import WatchlistError

        if self._store is None:
            return Store.open(self.config.watchlist, model_id)
        if self._store.model_id != model_id:
            raise WatchlistError(
                f"{self._store.path} was made with encoder {self._store.model_id}, not "
                f"{model_id}; encodings of different models cannot be compared"
            )
        return contextlib.nullcontext(self._store)


def scan(
    footage: str | Path | Sequence[str | Path],
    watchlist: str | Path | Store,
    *,
    fpir: float | None = None,
    tolerance: float | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    analysis: AnalysisConfig | None = None,
    unmatched: bool = False,
    clock: ClockOptions | None = None,
) -> Scan:
    """Search `footage` (files, folders, globs) for the people on `watchlist`.

    Returns a `Scan` to iterate for `Appearance` records, the same rows as `frs scan`
    writes, in the same order. `watchlist`: a path, or an open `Watchlist` (left open).
    `fpir` (default 0.01) or `tolerance` set the alert rule as `frs scan
    --fpir/--tolerance` do; `clock` (`frs_cli.video.wallclock.ClockOptions`) says when files
    started, as `--clock/--start-time/--clock-from-name` do; `scheduler` runs the work on Dask ("local" or
    an address); `on_progress` is called with `Progress` from another thread."""
    if isinstance(footage, str | Path):
        footage = [footage]
    return Scan(
        footage, watchlist, fpir, tolerance, workers, scheduler, on_progress,
        analysis or AnalysisConfig(), unmatched, clock,
    )  # fmt: skip


@overload
def read_results(path: str | Path, records: Literal[False] = False) -> list[dict[str, Any]]: ...
@overload
def read_results(path: str | Path, records: Literal[True]) -> list[Appearance]: ...
def read_results(path: str | Path, records: bool = False) -> list[Any]:
    """The matched rows of a CSV, JSON lines or JSON file written by `frs scan`, as
    `Appearance.to_dict()` gives them (numbers as numbers, missing values as None), or
    with `records=True` as the `Appearance` records `frs.scan` yields (whose `to_dict()`
    gives the same rows back; crops, detections and encodings are not in a results file)."""
    from frs_cli.results.writers import read_rows

    rows = read_rows(Path(path))
    return [_appearance(r) for r in rows] if records else rows


def _appearance(row: dict[str, Any]) -> Appearance:
    import datetime as dt
    from fractions import Fraction

    from frs_cli.records import Box

    def seconds(key: str) -> Fraction:
        return Fraction(str(row[key] if row.get(key) is not None else row["start_s"]))

    start = seconds("start_s")
    wall = row.get("start_wall")
    return Appearance(
        source=row["source"],
        track_id=row.get("track_id") or 0,
        start_s=start,
        end_s=seconds("end_s"),
        best_s=seconds("best_s"),
        identity=row.get("identity"),
        distance=row.get("distance"),
        margin=row.get("margin"),
        detections=row.get("detections") or 0,
        box=Box(*(row.get(k) or 0 for k in ("left", "top", "width", "height"))),
        second_identity=row.get("second_identity"),
        clock_start=dt.datetime.fromisoformat(wall) - dt.timedelta(seconds=float(start))
        if wall
        else None,
        face_px=row.get("face_px"),
        face_band=row.get("face_band"),
    )


def evaluate(
    dataset: str | Path,
    *,
    enrol: int = 1,
    gallery_share: float = 0.5,
    seed: int = 0,
    tolerance: float | None = None,
    limit: int | None = None,
    cohort: str | Path | None = None,
    groups: dict[str, str] | None = None,
    workers: int | None = None,
    encoder: str = "dlib",
    face_px: tuple[int, ...] = (),
) -> dict[str, Any]:
    """1:N accuracy on a folder-per-identity photo set with the `encoder` family's
    networks: the figures `frs evaluate --json` writes (see docs/accuracy.md).
    `tolerance`: the threshold to report (default: the family's fixed one, 0.6 for dlib).
    `face_px`: measure the probes again at these face heights, as CCTV films them, under
    the scan's rule for each size (`by_face_px`)."""
    from frs_cli.accuracy import evaluation as ev
    from frs_cli.faces import families
    from frs_cli.workers.executors import ordered_map

    family = families.get(encoder)
    family.check()
    executor = make_executor(workers or _cores(), family.detector, encoder=family.name)
    try:
        report = ev.run_evaluation(
            Path(dataset), enrol, gallery_share, seed,
            family.fixed_tolerance if tolerance is None else tolerance,
            lambda fn, items: ordered_map(executor, fn, items), limit,
            Path(cohort) if cohort is not None else None, family.name, tuple(face_px),
        )  # fmt: skip
    finally:
        executor.shutdown()
    return ev.report_dict(report, groups)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _Events(Events):
    """Scan events turned into `Progress` calls (segment progress arrives on the
    executor's relay thread)."""

    def __init__(self, callback: Callable[[Progress], None] | None):
        import threading

        self.callback = callback
        self.lock = threading.Lock()
        self.total = 0.0
        self.done: dict[tuple[str, int], float] = {}

    def file_started(self, info: Any, segments: list[Segment]) -> None:
        with self.lock:
            self.total += float(info.duration_s)

    def segment_progress(self, info: Any, segment: Segment, pts: int) -> None:
        start = segment.start_pts if segment.start_pts is not None else info.frame_pts[0]
        self._to(info, segment, float(max(0, pts - start) * info.clock.time_base))

    def segment_done(self, info: Any, result: SegmentResult) -> None:
        seg = result.segment
        start = seg.start_pts if seg.start_pts is not None else info.frame_pts[0]
        end = seg.end_pts if seg.end_pts is not None else info.end_pts
        self._to(info, seg, float((end - start) * info.clock.time_base))

    def _to(self, info: Any, segment: Segment, seconds: float) -> None:
        if self.callback is None:
            return
        with self.lock:
            key = (info.path, segment.index)
            if seconds <= self.done.get(key, 0.0):
                return
            self.done[key] = seconds
            done = sum(self.done.values())
        self.callback(Progress(info.path, done, self.total))
