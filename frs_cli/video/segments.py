"""Segments: the unit of parallel work. Each file is cut into time segments, at
keyframes when one is near, for the workers (the tracks that cross a cut are joined
again afterwards: scanner/joins.py)."""

from __future__ import annotations

import math

from frs_cli.records import AnalysisConfig, Segment
from frs_cli.video import decode

MAX_SEGMENT_S = 300  # long files are cut into pieces of at most this length...
MIN_SEGMENT_S = 2  # ...and short files into at most one piece per worker, this long at least
KEYFRAME_SLACK = 0.05  # cut at a keyframe when one is this near (share of a segment's length);
# else between keyframes: the segment then decodes from the keyframe before its start, which
# costs less than uneven segments (Hamilton clip: 20% slack put the cut at 44%, and the second
# worker finished ~0.3 s after the first)


def plan_segments(info: decode.VideoInfo, workers: int, config: AnalysisConfig) -> list[Segment]:
    """Cut a file into equal time segments, at keyframes where one is near the ideal cut."""
    duration = float(info.duration_s)
    count = max(1, math.ceil(duration / MAX_SEGMENT_S))
    if count < workers:
        count = max(count, min(workers, int(duration // MIN_SEGMENT_S)))
    first = info.frame_pts[0]
    length = (info.end_pts - first) / count
    cuts: list[int] = []
    keys = list(info.keyframe_pts)
    for k in range(1, count):
        ideal = first + round(k * length)
        near = min(keys, key=lambda p: abs(p - ideal))
        cut = near if abs(near - ideal) <= KEYFRAME_SLACK * length else ideal
        if cut > (cuts[-1] if cuts else first):
            cuts.append(cut)
    bounds: list[int | None] = [None, *cuts, None]
    numbered = info.derived is not None
    return [
        Segment(
            info.path,
            info.stream_index,
            i,
            len(bounds) - 1,
            start,
            bounds[i + 1],
            config,
            seek=None if start is None else info.seek_point(start),
            time_base=info.clock.time_base if numbered else None,
            numbered=numbered,
        )
        for i, start in enumerate(bounds[:-1])
    ]
