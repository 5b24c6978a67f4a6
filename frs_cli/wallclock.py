"""The time of day at which a file's position 0 was recorded, so that rows can say when
an appearance happened (`start_wall`, `end_wall`), not only how far into the file.

Where a file's clock comes from, first found first:
1. the analyst: `--clock FILE=TIME` for that file, or `--start-time TIME` for every file;
2. the file's name, with `--clock-from-name PATTERN` (strftime codes, as NVR exports
   name their files: `cam1_20240301_100000.mp4` with `%Y%m%d_%H%M%S`);
3. the container's `creation_time` tag (cameras and phones write it; UTC).
Every other source found is compared with the one used: more than `DISAGREE_S` apart is
a warning, never a silent choice. Times without a UTC offset are taken in `tz`
(`--timezone`, default this machine's local zone); rows always carry the offset.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from frs_cli.errors import UsageError

DISAGREE_S = 60.0

# strftime codes a file-name pattern may use, as regular expressions.
_CODES = {
    "Y": r"\d{4}", "y": r"\d{2}", "m": r"\d{2}", "d": r"\d{2}", "H": r"\d{2}",
    "M": r"\d{2}", "S": r"\d{2}", "f": r"\d{1,6}", "j": r"\d{3}", "b": r"[A-Za-z]{3}",
    "z": r"[+-]\d{4}", "%": "%",
}  # fmt: skip


@dataclass(frozen=True)
class WallClock:
    """When position 0 of a file was, and how that was found."""

    start: dt.datetime  # aware
    source: str  # "--clock", "--start-time", "file name", "container creation_time"

    def at(self, seconds: Fraction | float) -> dt.datetime:
        return self.start + dt.timedelta(seconds=float(seconds))

    def to_dict(self) -> dict[str, str]:
        return {"start": iso(self.start), "source": self.source}


@dataclass(frozen=True)
class ClockOptions:
    """What the analyst said about clocks (`frs scan --clock/--start-time/...`)."""

    files: tuple[tuple[str, dt.datetime], ...] = ()  # --clock FILE=TIME
    start_time: dt.datetime | None = None  # --start-time
    name_pattern: str | None = None  # --clock-from-name
    tz: dt.tzinfo | None = field(default=None, compare=False)  # None: this machine's zone


def iso(moment: dt.datetime) -> str:
    """ISO 8601 with milliseconds and the UTC offset: 2024-03-01T10:00:01.250+00:00."""
    return moment.isoformat(timespec="milliseconds")


def local_zone() -> dt.tzinfo:
    zone = dt.datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone


def parse_time(text: str, tz: dt.tzinfo | None = None) -> dt.datetime:
    """An ISO 8601 date and time ('Z' or an offset, or none: then in `tz`)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{text!r} is not a date and time; write it as ISO 8601, e.g. "
            "2024-03-01T10:00:00+01:00 (or ...Z for UTC)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=tz or local_zone())


def parse_clock(text: str, tz: dt.tzinfo | None = None) -> tuple[str, dt.datetime]:
    """`FILE=TIME` of `--clock` (the last '=' separates them: file names may hold '=')."""
    path, sep, when = text.rpartition("=")
    if not sep or not path:
        raise UsageError(
            f"--clock {text!r}: write it as FILE=TIME, e.g. cam1.mp4=2024-03-01T10:00:00Z"
        )
    return path, parse_time(when, tz)


def check_pattern(pattern: str) -> None:
    """Refuse a --clock-from-name pattern that cannot name a moment."""
    codes = re.findall(r"%(.)", pattern)
    unknown = sorted({c for c in codes if c not in _CODES})
    if unknown:
        raise UsageError(
            f"--clock-from-name {pattern!r}: unknown code(s) {', '.join('%' + c for c in unknown)}"
            f"; use {' '.join('%' + c for c in _CODES if c != '%')}"
        )
    if not ({"Y", "y"} & set(codes) and "m" in codes and "d" in codes or "j" in codes):
        raise UsageError(f"--clock-from-name {pattern!r} names no date (needs %Y or %y, %m, %d)")


def from_name(path: str, pattern: str, tz: dt.tzinfo | None = None) -> dt.datetime | None:
    """The moment `pattern` finds in the file's name (None: not there)."""
    regex = ""
    for part in re.split(r"(%.)", pattern):
        if part.startswith("%") and len(part) == 2:
            regex += f"({_CODES[part[1]]})" if part[1] != "%" else "%"
        else:
            regex += re.escape(part)
    name = os.path.basename(path)
    for match in re.finditer(regex, name):
        try:
            moment = dt.datetime.strptime(match.group(0), pattern)
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=tz or local_zone())
    return None


def parse_zone(text: str) -> dt.tzinfo:
    """`--timezone`: an IANA name (Europe/London), UTC, or an offset (+01:00)."""
    if re.fullmatch(r"[+-]\d{2}:?\d{2}", text):
        sign = 1 if text[0] == "+" else -1
        hours, minutes = int(text[1:3]), int(text[-2:])
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    if text.upper() in ("UTC", "Z"):
        return dt.UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--timezone {text!r} is not a time zone; give a name like Europe/London, UTC, "
            "or an offset like +01:00"
        ) from None


def from_container(creation_time: str | None) -> dt.datetime | None:
    """The container's creation_time tag (UTC when it says no zone), None if absent or
    unreadable. Muxers write 1970-01-01 or 1904-01-01 when they know nothing: ignored."""
    if not creation_time:
        return None
    try:
        moment = dt.datetime.fromisoformat(creation_time.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.year < 1980:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def resolve(
    path: str, creation_time: str | None, options: ClockOptions
) -> tuple[WallClock | None, list[str]]:
    """The clock of the file at `path`, and warnings where its sources disagree."""
    found: list[WallClock] = []
    for named, moment in options.files:
        if named == path or _same(named, path):
            found.append(WallClock(moment, "--clock"))
            break
    if options.start_time is not None:
        found.append(WallClock(options.start_time, "--start-time"))
    named_at = from_name(path, options.name_pattern, options.tz) if options.name_pattern else None
    if named_at is not None:
        found.append(WallClock(named_at, "file name"))
    tagged_at = from_container(creation_time)
    if tagged_at is not None:
        found.append(WallClock(tagged_at, "container creation_time"))
    if not found:
        return None, []
    used = found[0]
    warnings = [
        f"clock: {other.source} says {iso(other.start)}, {abs(gap):.0f} s from {used.source}'s "
        f"{iso(used.start)} (used)"
        for other in found[1:]
        if abs(gap := (other.start - used.start).total_seconds()) > DISAGREE_S
    ]
    return used, warnings


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()
