"""Exact time: pts and time base in, seconds and HH:MM:SS.mmm out, in this one place."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Clock:
    """Maps a stream's pts to seconds from the start of the file.

    `origin_s` is the container's start time, so that 0 s is where a player's
    position 0 is and `ffplay -ss T` lands on the reported moment.
    """

    time_base: Fraction
    origin_s: Fraction = Fraction(0)

    def seconds(self, pts: int) -> Fraction:
        return pts * self.time_base - self.origin_s

    def pts(self, seconds: Fraction | float) -> int:
        """The smallest pts at or after `seconds` (inverse of `seconds`)."""
        value = (Fraction(seconds) + self.origin_s) / self.time_base
        return -((-value.numerator) // value.denominator)


def round_ms(seconds: Fraction | float) -> float:
    """Seconds rounded half-up to whole milliseconds, as a float for output."""
    ms = Fraction(seconds) * 1000
    return float((ms + Fraction(1, 2)) // 1) / 1000


def format_tc(seconds: Fraction | float) -> str:
    """HH:MM:SS.mmm, rounded to the millisecond like `round_ms`."""
    total_ms = int((Fraction(seconds) * 1000 + Fraction(1, 2)) // 1)
    sign = "-" if total_ms < 0 else ""
    total_ms = abs(total_ms)
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def wall_at(start: dt.datetime, seconds: Fraction | float) -> dt.datetime | None:
    """The time of day `seconds` after `start`, to the millisecond, shown in `start`'s
    zone: computed in UTC, so a daylight-saving change in between moves the offset, not
    the length of the interval. None where it would fall outside the calendar (a broken
    timestamp or clock)."""
    try:
        moment = start.astimezone(dt.UTC) + dt.timedelta(seconds=round_ms(seconds))
        return moment.astimezone(start.tzinfo)
    except (OverflowError, ValueError):
        return None
