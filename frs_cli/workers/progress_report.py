"""How far a running job got, reported while it runs (not only when it ends).

A segment job calls `Reporter.frame(pts)` for each decoded frame; at most every
`INTERVAL_S` seconds that becomes a `Report` handed to this process's sink. The
executor sets the sink: in-process it is the listener itself, in a pool worker a
queue to the parent, on a Dask worker an event topic the client subscribes to.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL_S = 0.5  # the bar then moves at least twice a second on any footage


@dataclass(frozen=True)
class Report:
    path: str
    segment: int  # the segment's index in its file
    pts: int  # the last frame decoded


Sink = Callable[[Report], None]
_sink: Sink | None = None


def set_sink(sink: Sink | None) -> None:
    global _sink
    _sink = sink


class Reporter:
    """Reports for one job, throttled to one per INTERVAL_S."""

    def __init__(self, path: str, segment: int):
        self.path, self.segment = path, segment
        self.next_at = time.monotonic() + INTERVAL_S

    def frame(self, pts: int) -> None:
        if _sink is None:
            return
        now = time.monotonic()
        if now >= self.next_at:
            self.next_at = now + INTERVAL_S
            _sink(Report(self.path, self.segment, pts))
