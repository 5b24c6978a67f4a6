"""Segment planning and joining tracks across cuts, on hand-built records."""

from array import array
from fractions import Fraction

import numpy as np

from frs_cli.records import (
    AnalysisConfig,
    Box,
    FaceEncoding,
    Segment,
    SegmentResult,
    Sighting,
    Track,
)
from frs_cli.scanner.scanning import join_segments, plan_segments
from frs_cli.timecode import Clock
from frs_cli.video.decode import VideoInfo

TB = Fraction(1, 1000)  # pts in milliseconds


def info(duration_ms: int, keyframe_every_ms: int = 1000, fps: int = 25) -> VideoInfo:
    step = 1000 // fps
    pts = list(range(0, duration_ms, step))
    keys = [p for p in pts if p % keyframe_every_ms == 0]
    return VideoInfo(
        "x.mp4", 0, "h264", 640, 360, 0, Clock(TB), array("q", pts), array("q", keys), duration_ms
    )


def test_short_file_is_split_once_per_worker_at_a_keyframe():
    segs = plan_segments(info(8200), workers=2, config=AnalysisConfig())
    # The ideal cut, 4.1 s, is 0.1 s from a keyframe (within 5% of the 4.1 s segment).
    assert [(s.start_pts, s.end_pts) for s in segs] == [(None, 4000), (4000, None)]
    assert [s.index for s in segs] == [0, 1] and segs[0].count == 2


def test_cut_falls_between_keyframes_when_none_is_near():
    # 4.5 s is 0.5 s from the nearest keyframes: equal halves beat a cut at a keyframe.
    segs = plan_segments(info(9000), workers=2, config=AnalysisConfig())
    assert [(s.start_pts, s.end_pts) for s in segs] == [(None, 4500), (4500, None)]
    segs = plan_segments(info(9000, keyframe_every_ms=100_000), workers=2, config=AnalysisConfig())
    assert [(s.start_pts, s.end_pts) for s in segs] == [(None, 4500), (4500, None)]


def test_very_short_file_is_not_split_and_long_files_are_cut_every_five_minutes():
    assert len(plan_segments(info(3000), workers=4, config=AnalysisConfig())) == 1
    assert len(plan_segments(info(3600_000), workers=2, config=AnalysisConfig())) == 12


def track(start: int, end: int, box: Box, open_start=False, open_end=False) -> Track:
    vec = np.zeros(128, np.float32)
    return Track(
        (Sighting(start, box), Sighting(end, box)),
        (FaceEncoding(start, box, vec, 1.0),),
        open_start,
        open_end,
    )


def result(tracks) -> SegmentResult:
    seg = Segment("x.mp4", 0, 0, 1, None, None)
    return SegmentResult(seg, tuple(tracks), 0, 0, 0, None)


def test_tracks_crossing_a_cut_are_joined_and_others_are_not():
    a, b = Box(100, 100, 80, 80), Box(400, 100, 80, 80)
    first = result([track(0, 4960, a, open_end=True), track(1000, 4960, b, open_end=True)])
    second = result(
        [track(5000, 8000, Box(104, 100, 80, 80), open_start=True), track(7000, 8000, b)]
    )
    joined = join_segments([first, second], TB, max_gap_s=1.0)
    spans = [(t.start_pts, t.end_pts, t.sightings[0].box.left) for t in joined]
    assert spans == [(0, 8000, 100), (1000, 4960, 400), (7000, 8000, 400)]
    assert len(joined[0].encodings) == 2


def test_no_join_across_a_gap_longer_than_max_gap():
    a = Box(100, 100, 80, 80)
    first = result([track(0, 3000, a, open_end=True)])
    second = result([track(5000, 8000, a, open_start=True)])
    assert len(join_segments([first, second], TB, max_gap_s=1.0)) == 2
