"""The scan pipeline: inputs -> probe -> segments (in workers) -> joined tracks ->
watchlist matches -> rows, written in input order as each file completes."""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import BrokenExecutor, Future
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from frs_cli.accuracy import calibration
from frs_cli.accuracy.calibration import Rule
from frs_cli.errors import FrsError, InputError, UsageError, internal_error
from frs_cli.faces import bands, families
from frs_cli.faces.families import Family
from frs_cli.records import (
    AnalysisConfig,
    Appearance,
    Box,
    FaceEncoding,
    Segment,
    SegmentResult,
    Track,
)
from frs_cli.scanner import persons, settings
from frs_cli.scanner.analyse import analyse_segment
from frs_cli.scanner.joins import join_segments
from frs_cli.video import decode, inputs, wallclock
from frs_cli.video.segments import plan_segments  # noqa: F401 - named here too
from frs_cli.watchlist import Watchlist
from frs_cli.workers import progress_report
from frs_cli.workers.execution import Executor


@dataclass(frozen=True)
class ScanConfig:
    inputs: tuple[str, ...]
    watchlist: Path
    # Replaced by the rule chosen for the watchlist (`choose_rule`) before any matching.
    rule: Rule = field(default_factory=lambda: calibration.fixed(0.6))
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    workers: int = 1
    detections: bool = False
    unmatched: bool = False
    clock: wallclock.ClockOptions = field(default_factory=wallclock.ClockOptions)
    cameras: tuple[settings.Camera, ...] = ()  # --settings: per-camera overrides


@dataclass
class FileOutcome:
    path: str
    info: decode.VideoInfo | None = None
    appearances: list[Appearance] = field(default_factory=list)
    error: str | None = None  # why the file failed, or failed part-way
    analysed_s: Fraction = Fraction(0)
    frames_analysed: int = 0
    faces: int = 0  # sightings in analysed frames and refined edges
    tracks: int = 0
    looks: list[int] = field(default_factory=list)  # per track: encodings it was matched on
    clock: wallclock.WallClock | None = None  # the time of day at position 0, if known
    unaligned: int = 0  # views left out: the family could not align them
    # per track: its size band (bands.key) and its detections
    sizes: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class ScanStats:
    files_ok: int = 0
    files_failed: int = 0
    files_skipped: int = 0
    files_resumed: int = 0  # done by an earlier, interrupted run (--resume)
    files_partial: int = 0  # failed part-way: rows found before the failure were written
    footage_s: Fraction = Fraction(0)
    frames_analysed: int = 0
    faces: int = 0
    tracks: int = 0
    alerts: int = 0
    looks: dict[int, int] = field(default_factory=dict)  # encodings per face: faces
    unaligned: int = 0  # views left out: the family could not align them
    # per size band (faces/bands.py): [faces (tracks), their detections]
    by_band: dict[str, list[int]] = field(default_factory=dict)
    watchlist_faces: int = 0
    watchlist_identities: int = 0
    interrupted: bool = False
    # The output could not be written (a full disk), or its reader went away: the scan
    # stopped there. `output_closed`: a closed pipe, the normal end of `frs scan | head`.
    output_error: str | None = None
    output_closed: bool = False
    wall_s: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)  # summed over workers
    inputs: list[dict[str, str]] = field(default_factory=list)  # path, status, reason

    def count(self, outcome: FileOutcome) -> None:
        """Add a scanned file's footage, frames, faces, tracks and alerts."""
        self.footage_s += outcome.analysed_s
        self.frames_analysed += outcome.frames_analysed
        self.faces += outcome.faces
        self.unaligned += outcome.unaligned
        for key, detections in outcome.sizes:
            counts = self.by_band.setdefault(key, [0, 0])
            counts[0] += 1
            counts[1] += detections
        self.tracks += outcome.tracks
        for k in outcome.looks:
            self.looks[k] = self.looks.get(k, 0) + 1
        self.alerts += sum(1 for a in outcome.appearances if a.identity is not None)

    def add_stage(self, stage: str, seconds: float) -> None:
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds


class Events:
    """What a scan reports as it goes; the CLI subclasses it for progress and messages."""

    def file_started(self, info: decode.VideoInfo, segments: list[Segment]) -> None: ...
    def segment_done(self, info: decode.VideoInfo, result: SegmentResult) -> None: ...
    def file_done(self, outcome: FileOutcome) -> None: ...
    def failed(self, path: str, reason: str) -> None: ...
    def warning(self, path: str, text: str) -> None: ...
    def note(self, path: str, text: str) -> None: ...
    def segment_progress(self, info: decode.VideoInfo, segment: Segment, pts: int) -> None:
        """A running segment decoded up to `pts` (called from another thread)."""

    def skipped(self, path: str, reason: str) -> None: ...
    def resumed(self, path: str) -> None: ...


def identify(tracks: list[Track], watchlist: Watchlist, rule: Rule) -> list[Identified]:
    """Per track: the identity (None: no alert under `rule`), its distance and margin
    averaged over the track's encodings (`Watchlist.match_views`), the next identity,
    and the encoding nearest to that identity (for the row's box, time and crop)."""
    out: list[Identified] = []
    for track in tracks:
        views = np.stack([e.vector for e in track.encodings])
        m = watchlist.match_views(views)
        if m is not None and rule.alerts(m.distance, m.margin, size(track), length(track)):
            if len(track.encodings) == 1:
                best = track.encodings[0]
            else:
                near = watchlist.identity_distances(views, m.identity)
                best = track.encodings[int(np.argmin(near))]
            out.append(Identified(m.identity, m.distance, m.margin, m.second, best))
        else:
            top = max(track.encodings, key=lambda e: e.quality)
            out.append(Identified(None, m.distance if m else None, None, None, top))
    return out


def size(track: Track) -> int:
    """A face's size for the rule's bands: its largest encoded view's height, px."""
    return max(e.box.height for e in track.encodings)


def length(track: Track) -> float | None:
    """The mean of its views' encoding lengths before normalisation (None: unknown)."""
    known = [e.seen.length for e in track.encodings if e.seen and e.seen.length is not None]
    return float(np.mean(known)) if known else None


@dataclass(frozen=True)
class Identified:
    identity: str | None
    distance: float | None
    margin: float | None
    second: str | None
    encoding: FaceEncoding


def assemble(
    info: decode.VideoInfo,
    results: list[SegmentResult],
    watchlist: Watchlist,
    cfg: ScanConfig,
    wall: wallclock.WallClock | None = None,
    people: persons.People | None = None,
) -> FileOutcome:
    clock = info.clock
    outcome = FileOutcome(info.path, info, clock=wall)
    tracks = join_segments(results, clock.time_base, cfg.analysis.max_gap_s)
    tracks = [t for t in tracks if t.encodings]
    outcome.tracks = len(tracks)
    outcome.looks = [len(t.encodings) for t in tracks]
    outcome.frames_analysed = sum(r.frames_analysed for r in results)
    outcome.faces = sum(len(t.sightings) for t in tracks)
    outcome.unaligned = sum(r.unaligned for r in results)
    keys = [bands.key(cfg.rule.family, size(t), length(t)) for t in tracks]
    outcome.sizes = [(key, len(t.sightings)) for key, t in zip(keys, tracks, strict=True)]
    labels: list[str | None] = [None] * len(tracks)
    if people is not None:
        views = [
            (t.start_pts, t.end_pts, np.stack([e.vector for e in t.encodings])) for t in tracks
        ]
        labels = list(people.label(info.path, views))
    for track_id, (track, found, label, key) in enumerate(
        zip(tracks, identify(tracks, watchlist, cfg.rule), labels, keys, strict=True), start=1
    ):
        identity, enc = found.identity, found.encoding
        if identity is None and not cfg.unmatched:
            continue
        sightings: tuple[tuple[int, Fraction, Box], ...] = ()
        if cfg.detections:
            sightings = tuple(
                (info.frame_number(s.pts), clock.seconds(s.pts), s.box) for s in track.sightings
            )
        outcome.appearances.append(
            Appearance(
                source=info.path,
                track_id=track_id,
                start_s=clock.seconds(track.start_pts),
                end_s=clock.seconds(track.end_pts),
                best_s=clock.seconds(enc.pts),
                identity=identity,
                distance=found.distance,
                margin=found.margin,
                detections=len(track.sightings),
                box=enc.box,
                sightings=sightings,
                second_identity=found.second,
                face_jpeg=enc.face_jpeg,
                frame_jpeg=enc.frame_jpeg,
                clock_start=wall.start if wall else None,
                person=label,
                face_px=size(track),
                face_band=key,
            )
        )
    # How far decoding got, and why it stopped early if it did. A segment that stopped
    # before its last frame without an error is an error too: frames the probe listed were
    # never analysed (an MPEG-TS seek once lost half a file this way, silently).
    errors = [r.error for r in results if r.error]
    outcome.analysed_s = Fraction(0)
    broke_off = False
    for r in results:
        start = r.segment.start_pts if r.segment.start_pts is not None else info.frame_pts[0]
        end = r.segment.end_pts if r.segment.end_pts is not None else info.end_pts
        complete = r.last_pts is not None and r.last_pts >= _last_frame_before(info, r)
        reached = end if complete else (r.last_pts if r.last_pts is not None else start)
        outcome.analysed_s += max(0, reached - start) * clock.time_base
        if not complete:
            broke_off = True
            if not r.error:
                stop = float(clock.seconds(reached))
                errors.append(
                    f"part {r.segment.index + 1} of {r.segment.count} stopped at {stop:.3f} s, "
                    f"before its end at {float(clock.seconds(end)):.3f} s, without a decoding "
                    "error (frames were listed but not decoded)"
                )
    if info.cut_short and not errors:
        assert info.declared_s is not None
        errors.append(
            f"the file stops at {float(clock.seconds(info.end_pts)):.1f} s but its header "
            f"declares {float(info.declared_s):.1f} s: it was cut short (copy interrupted?)"
        )
        broke_off = True
    if errors:
        total = info.declared_s if info.cut_short and info.declared_s else info.duration_s
        where = (
            f"analysed {float(outcome.analysed_s):.1f} s of {float(total):.1f} s"
            if broke_off
            else "the whole file was analysed"
        )
        outcome.error = f"{errors[0]}; {where}"
    return outcome


def _last_frame_before(info: decode.VideoInfo, result: SegmentResult) -> int:
    end = result.segment.end_pts
    if end is None:
        return info.frame_pts[-1]
    idx = info.frame_number(end) - 1
    return info.frame_pts[max(0, idx)]


def _result(future: Future[SegmentResult], segment: Segment, executor: Executor) -> SegmentResult:
    """A segment's result. A worker that died (a crash in native code, the OOM killer)
    breaks the whole process pool: the pool is restarted and the segment tried once more,
    so one bad file does not take the others with it."""
    try:
        return future.result()
    except BrokenExecutor:
        executor.recover()
        return executor.submit(analyse_segment, segment).result()


def iter_videos(
    cfg: ScanConfig, events: Events, skip: Callable[[str], bool] | None = None
) -> Iterator[decode.VideoInfo]:
    for item in inputs.discover(cfg.inputs):
        if isinstance(item, tuple):
            events.failed(*item)
            continue
        if skip is not None and skip(item.path):
            events.resumed(item.path)
            continue
        try:
            yield decode.probe(item.path)
        except InputError as err:
            if item.looks_like_video:
                events.failed(item.path, err.reason)
            else:
                events.skipped(item.path, err.reason)


def new_stats(watchlist: Watchlist) -> ScanStats:
    return ScanStats(
        watchlist_faces=watchlist.size, watchlist_identities=watchlist.identity_count()
    )


def run_scan(
    cfg: ScanConfig,
    watchlist: Watchlist,
    executor: Executor,
    emit: Callable[[FileOutcome], None],
    events: Events | None = None,
    skip: Callable[[str], bool] | None = None,
    stats: ScanStats | None = None,
) -> ScanStats:
    """Scan every input, calling `emit` with each file's outcome in input order. An
    exception from `emit` (the output failed) stops the scan and is raised."""
    stats = stats if stats is not None else new_stats(watchlist)
    outcomes = iter_scan(cfg, watchlist, executor, stats, events, skip)
    try:
        for outcome in outcomes:
            emit(outcome)
    except KeyboardInterrupt:
        # Ctrl-C while `emit` wrote rows (iter_scan catches it while it works itself).
        stats.interrupted = True
        executor.shutdown(cancel=True)
    except BaseException:
        executor.shutdown(cancel=True)
        raise
    finally:
        outcomes.close()
    return stats


def input_entry(
    info: decode.VideoInfo, outcome: FileOutcome, analysis: AnalysisConfig, base: AnalysisConfig
) -> dict[str, Any]:
    """A scanned file's entry in the summary's `inputs`: its status and durations, the
    analysis settings where --settings changed them from `base` (clips analyse it the
    same way), how its times were derived, its clock, and why it broke off."""
    entry: dict[str, Any] = {
        "path": info.path,
        "status": "partial" if outcome.error else "ok",
        "duration_s": round(float(info.duration_s), 3),
        "analysed_s": round(float(outcome.analysed_s), 3),
    }
    if analysis.min_face != base.min_face:
        entry["min_face"] = analysis.min_face
    if analysis.rois != base.rois:
        entry["rois"] = [list(r) for r in analysis.rois]
    if info.derived:
        entry["times"] = info.derived
    if outcome.clock is not None:
        entry["clock"] = outcome.clock.to_dict()
    if outcome.error:
        entry["reason"] = outcome.error
    return entry


def _plan_file(
    info: decode.VideoInfo, cfg: ScanConfig, workers: int, report: Events, counting: Events
) -> tuple[AnalysisConfig, list[Segment], wallclock.WallClock | None] | None:
    """A file's settings (--settings), segments and clock, its start and notes said; None,
    the file counted as failed, where a region of interest lies outside its frame."""
    camera = settings.camera_for(info.path, cfg.cameras)
    analysis = settings.analysis_for(camera, cfg.analysis)
    off = [r for r in analysis.rois if settings.outside(r, info.width, info.height)]
    if off:
        counting.failed(
            info.path,
            f"region of interest {','.join(map(str, off[0]))} lies outside its "
            f"{info.width}x{info.height} frame",
        )
        return None
    segments = plan_segments(info, workers, analysis)
    report.file_started(info, segments)
    if info.derived:
        report.warning(info.path, info.derived)
    if info.stream_note:
        report.note(info.path, info.stream_note)
    clock, disagree = wallclock.resolve(
        info.path, info.creation_time, settings.clock_for(camera, cfg.clock)
    )
    for text in disagree:
        report.warning(info.path, text)
    if clock is not None:
        report.note(info.path, f"clock: {wallclock.iso(clock.start)} at 0 s, from {clock.source}")
    return analysis, segments, clock


class _Counting(Events):
    """Files that end without rows (failed, skipped, already scanned), counted in `stats`
    and passed on to `report`."""

    def __init__(self, stats: ScanStats, report: Events):
        self.stats, self.report = stats, report

    def failed(self, path: str, reason: str) -> None:
        self.stats.files_failed += 1
        self.stats.inputs.append({"path": path, "status": "failed", "reason": reason})
        self.report.failed(path, reason)

    def skipped(self, path: str, reason: str) -> None:
        self.stats.files_skipped += 1
        self.report.skipped(path, reason)

    def resumed(self, path: str) -> None:
        self.stats.files_resumed += 1
        self.stats.inputs.append({"path": path, "status": "already scanned (--resume)"})
        self.report.resumed(path)


def _record(stats: ScanStats, report: Events, entry: dict, outcome: FileOutcome) -> None:
    """After a file's rows are out: its counts, its entry, its error line, its progress
    bar (a file whose rows could not be written is not counted as scanned)."""
    stats.count(outcome)
    stats.inputs.append(entry)
    if outcome.error:
        stats.files_failed += 1
        stats.files_partial += 1
        report.failed(outcome.path, outcome.error)
    else:
        stats.files_ok += 1
    report.file_done(outcome)


def iter_scan(
    cfg: ScanConfig,
    watchlist: Watchlist,
    executor: Executor,
    stats: ScanStats,
    events: Events | None = None,
    skip: Callable[[str], bool] | None = None,
) -> Generator[FileOutcome, None, None]:
    """Scan every input, yielding each file's outcome in input order as it completes;
    `stats` is filled in as it goes (complete once the iterator is exhausted)."""
    report: Events = events or Events()
    started = time.monotonic()
    queue: deque[tuple[decode.VideoInfo, list[Segment], list[Future[SegmentResult]]]] = deque()
    in_flight = 0
    limit = max(2, executor.workers * 2)

    counting = _Counting(stats, report)
    running: dict[str, tuple[decode.VideoInfo, list[Segment]]] = {}
    clocks: dict[str, wallclock.WallClock | None] = {}
    analyses: dict[str, AnalysisConfig] = {}  # per file, where --settings changed it
    # With --unmatched, who is who across the scan (encodings in memory only).
    family = watchlist.family
    people = persons.People(family.same_person, family.person_margin) if cfg.unmatched else None

    def on_progress(r: progress_report.Report) -> None:
        found = running.get(r.path)
        if found is not None and r.segment < len(found[1]):
            report.segment_progress(found[0], found[1][r.segment], r.pts)

    executor.listen(on_progress)

    def finish_oldest() -> tuple[decode.VideoInfo, FileOutcome | None]:
        nonlocal in_flight
        info, segments, futures = queue.popleft()
        results = []
        crashed: str | None = None
        for segment, fut in zip(segments, futures, strict=True):
            try:
                result = _result(fut, segment, executor)
            except Exception as err:  # noqa: BLE001 - fails this file only (FRS_DEBUG: raise)
                if os.environ.get("FRS_DEBUG"):
                    raise
                crashed = crashed or internal_error(err)
                continue
            finally:
                in_flight -= 1
            report.segment_done(info, result)
            results.append(result)
            for stage, seconds in result.stage_seconds:
                stats.add_stage(stage, seconds)
        running.pop(info.path, None)
        if crashed is not None:
            counting.failed(info.path, crashed)
            return info, None
        t0 = time.perf_counter()
        try:
            outcome = assemble(info, results, watchlist, cfg, clocks.pop(info.path, None), people)
        except (FrsError, sqlite3.Error, OSError):
            raise  # the watchlist or the output failed: no later file can do better
        except Exception as err:  # noqa: BLE001
            if os.environ.get("FRS_DEBUG"):
                raise
            counting.failed(info.path, internal_error(err))
            return info, None
        stats.add_stage("index", time.perf_counter() - t0)
        return info, outcome

    def drain(keep: int) -> Iterator[FileOutcome]:
        """Finish the oldest files until at most `keep` segments are in flight (every
        queued file has at least one)."""
        while queue and in_flight > keep:
            done, outcome = finish_oldest()
            if outcome is not None:
                try:
                    yield outcome
                except GeneratorExit:  # its rows were not written (the output failed)
                    stats.files_failed += 1
                    stats.inputs.append(
                        {
                            "path": done.path,
                            "status": "failed",
                            "reason": "its rows were not written",
                        }
                    )
                    raise
                analysis = analyses.pop(done.path, cfg.analysis)
                _record(stats, report, input_entry(done, outcome, analysis, cfg.analysis), outcome)

    try:
        for info in iter_videos(cfg, counting, skip):
            planned = _plan_file(info, cfg, executor.workers, report, counting)
            if planned is None:
                continue
            analyses[info.path], segments, clocks[info.path] = planned
            running[info.path] = (info, segments)
            futures = [executor.submit(analyse_segment, s) for s in segments]
            queue.append((info, segments, futures))
            in_flight += len(segments)
            yield from drain(limit)
        yield from drain(0)
    except KeyboardInterrupt:
        stats.interrupted = True
        executor.shutdown(cancel=True)
    finally:
        stats.wall_s = time.monotonic() - started


def watchlist_family(watchlist: str | Path | Watchlist) -> Family:
    """The model family whose networks a scan against `watchlist` must use (its model id
    says which; dlib where the file cannot be read: opening it then says why)."""
    from frs_cli.watchlist.store import peek_model_id

    if isinstance(watchlist, (str, Path)):
        model_id = peek_model_id(watchlist)
    else:
        model_id = watchlist.model_id
    return families.of(model_id) if model_id else families.DLIB


def check_rule_options(
    fpir: float | None, tolerance: float | None, analysis: AnalysisConfig | None = None
) -> None:
    """Refuse options that cannot mean anything: both rules, or a rate, distance or frame
    rate that is not a finite number in range (NaN compares false with every bound)."""
    if fpir is not None and tolerance is not None:
        raise UsageError("give --fpir (a rule chosen per watchlist) or --tolerance, not both")
    checks = [("fpir", fpir, 0.0001, 0.5), ("tolerance", tolerance, 0.0, 2.0)]
    if analysis is not None:
        checks += [
            (name, getattr(analysis, name), 0.05, 240.0)
            for name in ("sample_fps", "detect_fps", "quick_fps")
        ]
    for name, value, low, high in checks:
        if value is not None and not (math.isfinite(value) and low <= value <= high):
            raise UsageError(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")


def choose_rule(watchlist: Watchlist, fpir: float | None, tolerance: float | None) -> Rule:
    """--fpir (default 0.01): the rule calibrated for this watchlist; --tolerance: fixed,
    on the scale of the watchlist's family."""
    check_rule_options(fpir, tolerance)
    watchlist.family.check_tolerance(tolerance)
    if tolerance is not None:
        return calibration.fixed(tolerance, watchlist.calibration())
    return watchlist.rule(fpir if fpir is not None else calibration.DEFAULT_FPIR)
