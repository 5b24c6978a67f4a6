"""Per-camera settings (`frs scan --settings FILE`): an export of many cameras, each
with its own doorway to watch, face size and clock, in one TOML file.

    [[camera]]
    files = "*/cam1_*.mp4"          # a glob, matched against each footage path
    roi = [[400, 0, 880, 720]]      # regions of interest, as --roi X,Y,W,H
    min_face = 30                   # as --min-face
    clock_from_name = "%Y%m%d_%H%M%S"
    timezone = "Europe/London"
    # start_time = "2024-03-01T10:00:00Z"

The first `[[camera]]` whose `files` matches a path applies to it (the glob is tried on
the whole path, then on the file name); what it sets replaces the command line's value
for that file, the rest stays as the command line says.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frs_cli import files
from frs_cli.errors import UsageError
from frs_cli.files import printable
from frs_cli.records import AnalysisConfig
from frs_cli.video import wallclock

Roi = tuple[int, int, int, int]
KEYS = {"files", "roi", "min_face", "clock_from_name", "start_time", "timezone"}
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Camera:
    files: str
    roi: tuple[Roi, ...] | None = None
    min_face: int | None = None
    clock_from_name: str | None = None
    start_time: dt.datetime | None = None
    timezone: dt.tzinfo | None = dataclasses.field(default=None, compare=False)

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatch(path, self.files) or fnmatch.fnmatch(
            os.path.basename(path), self.files
        )


def parse_roi(text: str) -> Roi:
    """`X,Y,W,H` in displayed pixels (after rotation): left, top, width, height."""
    parts = text.replace(" ", "").split(",")
    try:
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise UsageError(
            f"--roi {text!r}: write it as X,Y,W,H in pixels of the frame as displayed, "
            "e.g. 400,0,880,720"
        ) from None
    return check_roi((x, y, w, h), f"--roi {text!r}")


def check_roi(roi: Roi, where: str) -> Roi:
    x, y, w, h = roi
    if x < 0 or y < 0 or w < 8 or h < 8:
        raise UsageError(f"{where}: a region needs X, Y >= 0 and a width and height of 8 or more")
    return roi


def outside(roi: Roi, width: int, height: int) -> bool:
    """Whether the region is not wholly inside a `width` x `height` frame."""
    x, y, w, h = roi
    return x + w > width or y + h > height


def load(path: Path) -> tuple[Camera, ...]:
    """The cameras of a settings file; any mistake in it is a usage error naming it."""
    why = files.regular(path)
    if why is not None:  # a FIFO would block the scan before it starts
        raise UsageError(f"cannot read --settings {printable(str(path))}: {why}")
    if path.stat().st_size > MAX_BYTES:
        raise UsageError(
            f"--settings {printable(str(path))} is over {MAX_BYTES // 1024} KiB: not a settings file"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise UsageError(f"cannot read --settings {path}: {err.strerror or err}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"--settings {path} is not TOML: {err}") from None
    unknown = set(data) - {"camera"}
    if unknown or not isinstance(data.get("camera", []), list):
        raise UsageError(
            f"--settings {path}: expected [[camera]] tables only, found {sorted(data)}"
        )
    return tuple(_camera(entry, f"--settings {path}, camera {k + 1}") for k, entry in
                 enumerate(data.get("camera", [])))  # fmt: skip


def _whole(value: Any) -> bool:
    """A TOML integer (true and false are not numbers, though Python's bool is an int)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _camera(entry: Any, where: str) -> Camera:
    if not isinstance(entry, dict) or not isinstance(entry.get("files"), str) or not entry["files"]:
        raise UsageError(f'{where}: needs files = "GLOB"')
    unknown = set(entry) - KEYS
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(KEYS)}")
    tz = None
    if "timezone" in entry:
        if not isinstance(entry["timezone"], str):
            raise UsageError(
                f'{where}: timezone = "NAME" (Europe/London, UTC or +01:00), in quotes'
            )
        tz = wallclock.parse_zone(entry["timezone"], f"{where}: timezone")
    roi = None
    if "roi" in entry:
        regions = entry["roi"]
        if (
            not isinstance(regions, list)
            or not regions
            or not all(
                isinstance(r, list) and len(r) == 4 and all(_whole(v) for v in r) for r in regions
            )
        ):
            raise UsageError(f"{where}: roi = [[X, Y, W, H], ...] in whole pixels")
        roi = tuple(check_roi((r[0], r[1], r[2], r[3]), where) for r in regions)
    min_face = entry.get("min_face")
    if min_face is not None and (not _whole(min_face) or not 8 <= min_face <= 4000):
        raise UsageError(f"{where}: min_face is a whole number of pixels from 8 to 4000")
    pattern = entry.get("clock_from_name")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise UsageError(f'{where}: clock_from_name = "PATTERN" (strftime codes), in quotes')
        wallclock.check_pattern(pattern)
    start = entry.get("start_time")
    if isinstance(start, dt.datetime):
        start = wallclock.parse_time(start.isoformat(), tz, f"{where}: start_time")
    elif isinstance(start, str):
        start = wallclock.parse_time(start, tz, f"{where}: start_time")
    elif start is not None:
        raise UsageError(f"{where}: start_time is a date and time (2024-03-01T10:00:00Z)")
    return Camera(entry["files"], roi, min_face, pattern, start, tz)


def camera_for(path: str, cameras: tuple[Camera, ...]) -> Camera | None:
    return next((c for c in cameras if c.matches(path)), None)


def analysis_for(camera: Camera | None, base: AnalysisConfig) -> AnalysisConfig:
    """The analysis settings for a file: the command line's, with the camera's on top."""
    if camera is None:
        return base
    changes: dict[str, Any] = {}
    if camera.roi is not None:
        changes["rois"] = camera.roi
    if camera.min_face is not None:
        changes["min_face"] = camera.min_face
    return dataclasses.replace(base, **changes) if changes else base


def clock_for(camera: Camera | None, base: wallclock.ClockOptions) -> wallclock.ClockOptions:
    if camera is None:
        return base
    changes: dict[str, Any] = {}
    if camera.clock_from_name is not None:
        changes["name_pattern"] = camera.clock_from_name
    if camera.start_time is not None:
        changes["start_time"] = camera.start_time
    if camera.timezone is not None:
        changes["tz"] = camera.timezone
    return dataclasses.replace(base, **changes) if changes else base
