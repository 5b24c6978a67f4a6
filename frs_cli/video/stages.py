"""Seconds spent per pipeline stage (decode, convert, detect, follow, encode) in this
process: each segment hands them back with its result, and the scan's summary adds
them up (`stage_seconds`; benchmarks/scan_speed.py reports them)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any


class Stages:
    """Seconds spent per pipeline stage in this process (reported by the benchmark)."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def timed(self, stage: str) -> _Timer:
        return _Timer(self.seconds, stage)

    def take(self) -> tuple[tuple[str, float], ...]:
        out = tuple(sorted(self.seconds.items()))
        self.seconds.clear()
        return out


class _Timer:
    def __init__(self, seconds: defaultdict[str, float], stage: str):
        self.seconds, self.stage = seconds, stage

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self.stage] += time.perf_counter() - self.start


STAGES = Stages()


def timed_iter(items: Iterator[Any], stage: str) -> Iterator[Any]:
    while True:
        with STAGES.timed(stage):
            item = next(items, None)
        if item is None:
            return
        yield item
