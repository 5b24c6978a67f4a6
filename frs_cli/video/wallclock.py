"""The time of day at which a file's position 0 was recorded, so that rows can say when
an appearance happened (`start_wall`, `end_wall`), not only how far into the file.

Where a file's clock comes from, first found first:
1. the analyst: `--clock FILE=TIME` for that file, or `--start-time TIME` for every file;
2. the file's name, with `--clock-from-name PATTERN` (strftime codes, as NVR exports
   name their files: `cam1_20240301_100000.mp4` with `%Y%m%d_%H%M%S`);
3. the container's `creation_time` tag (cameras and phones write it; UTC).
Every other source found is compared with the one used: more than `DISAGREE_S` apart is
a warning, never a silent choice. Times without a UTC offset are taken in `tz`
(`--timezone`, default this machine's zone with its daylight-saving rules: $TZ, else
/etc/localtime); times are added in UTC and shown in that zone, so rows carry the offset
in force at each moment. A file's name and tags are untrusted: a moment outside
`EARLIEST`..`LATEST` there is one warning and no clock, never an error; the analyst's
own times outside that range are usage errors.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from frs_cli.errors import UsageError
from frs_cli.timecode import wall_at

DISAGREE_S = 60.0
# The range of moments a recording can have been made in: anything outside is a broken
# tag or a typing mistake (9999-12-31 once stopped a scan).
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)

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

    def at(self, seconds: Fraction | float) -> dt.datetime | None:
        return wall_at(self.start, seconds)

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
    """This machine's zone, with its daylight-saving rules (not today's fixed offset)."""
    return _local_zone(os.environ.get("TZ"))


@functools.lru_cache(maxsize=4)
def _local_zone(tz_variable: str | None) -> dt.tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = (tz_variable or "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass  # a POSIX rule string (EST5EDT...): the C library's offset below
    else:
        try:
            with open("/etc/localtime", "rb") as f:
                return ZoneInfo.from_file(f, key="localtime")
        except (OSError, ValueError):
            pass
    zone = dt.datetime.now().astimezone().tzinfo
    assert zone is not None
    return zone


def in_range(moment: dt.datetime) -> bool:
    return EARLIEST <= moment <= LATEST


def parse_time(text: str, tz: dt.tzinfo | None = None, what: str = "the time") -> dt.datetime:
    """An ISO 8601 date and time ('Z' or an offset, or none: then in `tz`)."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{what} {text!r} is not a date and time; write it as ISO 8601, e.g. "
            "2024-03-01T10:00:00+01:00 (or ...Z for UTC)"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=tz or local_zone())
    try:
        sane = in_range(moment)
    except OverflowError:
        sane = False
    if not sane:
        raise UsageError(
            f"{what} {text!r} is not between {EARLIEST.year} and {LATEST.year - 1}: "
            "not a time footage can have been recorded at"
        )
    return moment


def parse_clock(text: str, tz: dt.tzinfo | None = None) -> tuple[str, dt.datetime]:
    """`FILE=TIME` of `--clock` (the last '=' separates them: file names may hold '=')."""
    path, sep, when = text.rpartition("=")
    if not sep or not path:
        raise UsageError(
            f"--clock {text!r}: write it as FILE=TIME, e.g. cam1.mp4=2024-03-01T10:00:00Z"
        )
    return path, parse_time(when, tz, f"--clock {path}=")


def check_pattern(pattern: str) -> None:
    """Refuse a --clock-from-name pattern that cannot name a moment."""
    codes = re.findall(r"%(.)", pattern)
    unknown = sorted({c for c in codes if c not in _CODES})
    if unknown:
        raise UsageError(
            f"--clock-from-name {pattern!r}: unknown code(s) {', '.join('%' + c for c in unknown)}"
            f"; use {' '.join('%' + c for c in _CODES if c != '%')}"
        )
    twice = sorted({c for c in codes if c != "%" and codes.count(c) > 1})
    if twice:
        raise UsageError(
            f"--clock-from-name {pattern!r} gives {', '.join('%' + c for c in twice)} more "
            "than once; each part of the date and time can be read once"
        )
    if not ({"Y", "y"} & set(codes) and "m" in codes and "d" in codes or "j" in codes):
        raise UsageError(f"--clock-from-name {pattern!r} names no date (needs %Y or %y, %m, %d)")


def from_name(path: str, pattern: str, tz: dt.tzinfo | None = None) -> dt.datetime | None:
    """The moment `pattern` finds in the file's name (None: not there, or not a real
    date: 20241332 is no day)."""
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
        except (ValueError, re.error):
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=tz or local_zone())
    return None


def parse_zone(text: str, what: str = "--timezone") -> dt.tzinfo:
    """`--timezone`: an IANA name (Europe/London), UTC, or an offset (+01:00)."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError(
            f"{what} {text!r} is not a time zone; give a name like Europe/London, UTC, "
            "or an offset like +01:00"
        )
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if offset:
        hours, minutes = int(offset[2]), int(offset[3])
        if hours > 23 or minutes > 59:
            raise UsageError(f"{what} {text!r}: an offset runs from -23:59 to +23:59")
        sign = 1 if offset[1] == "+" else -1
        return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    if text.upper() in ("UTC", "Z"):
        return dt.UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UsageError(
            f"{what} {text!r} is not a time zone; give a name like Europe/London, UTC, "
            "or an offset like +01:00"
        ) from None


def from_container(creation_time: str | None) -> tuple[dt.datetime | None, str | None]:
    """The container's creation_time tag (UTC when it says no zone), and a warning when
    the tag is there but unusable. Absent, or before 1980 (muxers write 1970-01-01 or
    1904-01-01 when they know nothing): no clock, no warning."""
    if not creation_time:
        return None, None
    try:
        moment = dt.datetime.fromisoformat(creation_time.strip().replace("Z", "+00:00"))
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        if moment.year < 1980:
            return None, None
        sane = in_range(moment)
    except (ValueError, OverflowError):
        sane = False
    if not sane:
        return None, (
            f"its container's creation_time {creation_time[:40]!r} is not a usable date and "
            "time: ignored"
        )
    return moment, None


def resolve(
    path: str, creation_time: str | None, options: ClockOptions
) -> tuple[WallClock | None, list[str]]:
    """The clock of the file at `path`, shown in the zone asked for (`options.tz`, else
    this machine's), and warnings: sources that disagree, tags that are not usable."""
    found: list[WallClock] = []
    warnings: list[str] = []
    for named, moment in options.files:
        if named == path or _same(named, path):
            found.append(WallClock(moment, "--clock"))
            break
    if options.start_time is not None:
        found.append(WallClock(options.start_time, "--start-time"))
    named_at = from_name(path, options.name_pattern, options.tz) if options.name_pattern else None
    if named_at is not None:
        if in_range(named_at):
            found.append(WallClock(named_at, "file name"))
        else:
            warnings.append(f"the date in its name, {iso(named_at)}, is not usable: ignored")
    tagged_at, unusable = from_container(creation_time)
    if unusable:
        warnings.append(unusable)
    if tagged_at is not None:
        found.append(WallClock(tagged_at, "container creation_time"))
    if not found:
        return None, warnings
    zone = options.tz or local_zone()
    used = WallClock(found[0].start.astimezone(zone), found[0].source)
    warnings += [
        f"clock: {other.source} says {iso(other.start.astimezone(zone))}, {abs(gap):.0f} s "
        f"from {used.source}'s {iso(used.start)} (used)"
        for other in found[1:]
        if abs(gap := (other.start - used.start).total_seconds()) > DISAGREE_S
    ]
    return used, warnings


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()
