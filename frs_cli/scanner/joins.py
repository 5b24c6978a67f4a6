"""Tracks that cross a segment's cut, joined again once both segments are done: a track
alive at a cut continues as the track that starts at the cut where its box was."""

from __future__ import annotations

from fractions import Fraction

from frs_cli.records import SegmentResult, Track
from frs_cli.scanner.analyse import MATCH_IOU


def join_segments(
    results: list[SegmentResult], time_base: Fraction, max_gap_s: float
) -> list[Track]:
    """Join tracks that cross segment cuts: a track alive at a cut continues as the track
    that starts at the cut where its box was."""
    done: list[Track] = []
    pending: list[Track] = []
    gap = Fraction(max_gap_s)
    for result in results:
        carried: list[Track] = []
        for track in result.tracks:
            joined = None
            if track.open_start:
                candidates = [
                    p
                    for p in pending
                    if 0 < (track.start_pts - p.end_pts) * time_base <= gap
                    and p.sightings[-1].box.iou(track.sightings[0].box) >= MATCH_IOU
                ]
                if candidates:
                    joined = max(
                        candidates, key=lambda p: p.sightings[-1].box.iou(track.sightings[0].box)
                    )
                    pending.remove(joined)
                    track = Track(
                        joined.sightings + track.sightings,
                        joined.encodings + track.encodings,
                        joined.open_start,
                        track.open_end,
                    )
            (carried if track.open_end else done).append(track)
        done.extend(pending)
        pending = carried
    done.extend(pending)
    return sorted(
        done, key=lambda t: (t.start_pts, t.sightings[0].box.left, t.sightings[0].box.top)
    )
