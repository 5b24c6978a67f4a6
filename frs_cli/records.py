"""Plain frozen records exchanged between pipeline stages.

Data flows one way: frames -> detections -> tracks -> matches -> rows.
Times inside a file stay as integer pts in the stream's time base until the
output edge (see timecode.py). Boxes are in source-frame pixels, after any
rotation the container asks for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from frs_cli.timecode import format_tc, round_ms, wall_at


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    @property
    def area(self) -> int:
        return self.width * self.height

    def iou(self, other: Box) -> float:
        ix = max(0, min(self.right, other.right) - max(self.left, other.left))
        iy = max(0, min(self.bottom, other.bottom) - max(self.top, other.top))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union else 0.0

    def shifted(self, dx: int, dy: int) -> Box:
        return Box(self.left + dx, self.top + dy, self.width, self.height)

    def intersection(self, other: Box) -> Box:
        """The part of this box inside `other` (zero-sized where they do not overlap)."""
        left, top = max(self.left, other.left), max(self.top, other.top)
        right, bottom = min(self.right, other.right), min(self.bottom, other.bottom)
        return Box(left, top, max(0, right - left), max(0, bottom - top))

    def expanded(self, margin: float, frame_w: int, frame_h: int) -> Box:
        """This box grown by `margin` x its size on each side, clipped to the frame."""
        dx, dy = int(self.width * margin), int(self.height * margin)
        left, top = max(0, self.left - dx), max(0, self.top - dy)
        right, bottom = min(frame_w, self.right + dx), min(frame_h, self.bottom + dy)
        return Box(left, top, max(0, right - left), max(0, bottom - top))


@dataclass(frozen=True)
class Detection:
    """A face found in one frame. `frontal` is dlib's own view of the pose."""

    box: Box
    score: float
    frontal: bool = True
    # Five landmarks (x, y: eyes, nose tip, mouth corners) in the same pixels as `box`,
    # where the detector gives them precisely enough to align on (SCRFD); else empty.
    landmarks: tuple[float, ...] = ()

    def moved(self, box: Box, scale_x: float = 1.0, scale_y: float = 1.0, dx: float = 0,
              dy: float = 0) -> Detection:  # fmt: skip
        """This detection with `box`, its landmarks divided by the scales and shifted."""
        marks = tuple(
            v / scale_x + dx if k % 2 == 0 else v / scale_y + dy
            for k, v in enumerate(self.landmarks)
        )
        return dataclasses.replace(self, box=box, landmarks=marks)


@dataclass(frozen=True)
class Sighting:
    """One frame in which a tracked face was seen."""

    pts: int
    box: Box


@dataclass(frozen=True)
class Quality:
    """How one view of a face was seen (frs_cli.faces.quality says how each is measured)."""

    face_px: int  # the detector's box height
    score: float  # the detector's score
    sharpness: float  # variance of the Laplacian of its luma at 32 px square
    eye_px: float | None = None  # from the detector's landmarks, where it gave them
    yaw: float | None = None
    pitch: float | None = None
    length: float | None = None  # the encoding's before normalisation (once encoded)


@dataclass(frozen=True, eq=False)
class FaceEncoding:
    """A 128-d encoding of a tracked face at one frame. Never written to disk."""

    pts: int
    box: Box
    vector: np.ndarray
    quality: float
    face_jpeg: bytes = b""  # with views on: the face with a margin, for review
    frame_jpeg: bytes = b""  # with views on: the frame, reduced, the face boxed
    seen: Quality | None = None  # how this view was seen (faces/quality.py)


@dataclass(frozen=True)
class Track:
    """One face followed through consecutive frames of one segment of one file."""

    sightings: tuple[Sighting, ...]
    encodings: tuple[FaceEncoding, ...]
    open_start: bool = False  # may continue from the previous segment
    open_end: bool = False  # may continue into the next segment

    @property
    def start_pts(self) -> int:
        return self.sightings[0].pts

    @property
    def end_pts(self) -> int:
        return self.sightings[-1].pts


@dataclass(frozen=True)
class AnalysisConfig:
    """How frames are chosen and faces found. Identical for every segment of a scan."""

    model: str = ""  # the detector (detect.py); "": the encoder family's own (`resolved`)
    min_face: int = 40
    sample_fps: float = 6.0
    detect_fps: float = 1.0
    quick_fps: float = 2.0
    max_gap_s: float = 1.0
    refresh_s: float = 1.0  # a followed face's first window for one more view (then 2x, 4x)
    view_floor: float = 0.8  # ... if it is at least this good (size, frontal) as its best
    max_decode_errors: int = 50
    views: bool = False  # keep JPEG views of each encoded face, for --crops
    redact: bool = False  # blur the other faces in those frame views
    # Regions of interest (left, top, width, height in displayed pixels): only faces whose
    # box centre lies in one are searched for, followed and reported. Empty: the frame.
    rois: tuple[tuple[int, int, int, int], ...] = ()
    # Every whole-frame search is dlib's search of every pixel: not only where a fixed
    # camera's picture changed (changes.py), nor in two passes at 1080p (wholeframe.py).
    exhaustive: bool = False
    encoder: str = "dlib"  # the model family that encodes faces: the watchlist's (families.py)

    def resolved(self, family: str, detector: str) -> AnalysisConfig:
        """This configuration for a watchlist of `family`, whose default detector is
        `detector` (used where none was chosen)."""
        return dataclasses.replace(self, encoder=family, model=self.model or detector)


@dataclass(frozen=True)
class Segment:
    """A time range [start_pts, end_pts) of one video stream: the unit of parallel work."""

    path: str
    stream_index: int
    index: int
    count: int
    start_pts: int | None  # None: from the first frame
    end_pts: int | None  # None: to the last frame
    config: AnalysisConfig = field(default_factory=AnalysisConfig)
    # Where decoding starts: the keyframe (pts, byte position or None) at or before
    # start_pts; None from the file's start (decode.iter_frames).
    seek: tuple[int, int | None] | None = None
    time_base: Fraction | None = None  # the probe's, when it differs from the stream's
    numbered: bool = False  # the stream has no timestamps: frames are numbered instead


@dataclass(frozen=True)
class SegmentResult:
    segment: Segment
    tracks: tuple[Track, ...]
    frames_decoded: int
    frames_analysed: int
    decode_errors: int
    last_pts: int | None  # the last frame reached; less than planned when the file broke off
    error: str | None = None  # why the segment stopped early, if it did
    stage_seconds: tuple[tuple[str, float], ...] = ()  # (stage, seconds) in the worker
    unaligned: int = 0  # views the family could not encode (landmarks at one point): left out


@dataclass(frozen=True)
class Match:
    identity: str
    distance: float
    margin: float  # distance to the best *other* identity minus `distance` (inf if none)
    second: str | None = None  # that other identity (None if the watchlist has one)


@dataclass(frozen=True)
class Appearance:
    """One track in one file with the identity it matched (None: unmatched)."""

    source: str
    track_id: int
    start_s: Fraction
    end_s: Fraction
    best_s: Fraction
    identity: str | None
    distance: float | None
    margin: float | None
    detections: int
    box: Box
    sightings: tuple[tuple[int, Fraction, Box], ...] = ()  # (frame, seconds, box)
    second_identity: str | None = None  # the next-nearest identity (the margin is to it)
    face_jpeg: bytes = b""
    frame_jpeg: bytes = b""
    # The time of day at the file's position 0 (frs_cli.video.wallclock), None when unknown:
    # rows then give start_wall and end_wall as well as seconds into the file.
    clock_start: dt.datetime | None = None
    # With --unmatched: who this is across the scan's tracks and files (frs_cli.scanner.persons),
    # listed or not; rows then have a `person` column.
    person: str | None = None
    # The face's size: its largest encoded view's height, px, by which the rule's size
    # band was chosen (frs_cli.faces.bands); None in rows of earlier versions.
    face_px: int | None = None
    # ... and the rule's cell for it: the size band, and for families that class faces by
    # their encoding's length, that class ("24-32 high"; frs_cli.faces.bands.key).
    face_band: str | None = None

    def wall(self, seconds: Fraction) -> dt.datetime | None:
        """The time of day `seconds` into the file, to the millisecond (None: unknown)."""
        if self.clock_start is None:
            return None
        return wall_at(self.clock_start, seconds)

    def to_dict(self) -> dict[str, Any]:
        """The row `frs scan` writes for this appearance (same keys, rounding, order)."""
        return appearance_row(self)


# -- the output schema: the rows frs scan writes (frs_cli.results.writers writes them) --
_APPEARANCE = (
    "source", "identity", "start_s", "end_s", "start_tc", "end_tc", "best_s",
    "distance", "detections", "track_id", "left", "top", "width", "height",
    "margin", "second_identity",
)  # fmt: skip
# The time of day, after the columns earlier versions wrote (empty: the file's clock is
# unknown): ISO 8601 with milliseconds and the UTC offset.
WALL_COLUMNS = ("start_wall", "end_wall")
# The face's size (px) for the rule's size bands, after those (issue 36).
SIZE_COLUMNS = ("face_px", "face_band")
APPEARANCE_COLUMNS = (*_APPEARANCE, *WALL_COLUMNS, *SIZE_COLUMNS)
DETECTION_COLUMNS = (
    "source", "frame", "time_s", "timecode", "track_id", "identity", "distance",
    "left", "top", "width", "height", "time_wall",
)  # fmt: skip

# With --crops: the review pictures' paths.
REVIEW_COLUMNS = (*_APPEARANCE, "crop", "frame_view", *WALL_COLUMNS, *SIZE_COLUMNS)
# With --unmatched, after the others: the same label for the same person across the scan.
PERSON_COLUMN = "person"

Row = dict[str, Any]


def _distance(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else round(value, 4)


def appearance_row(a: Appearance) -> Row:
    return {
        "source": a.source,
        "identity": a.identity,
        "start_s": round_ms(a.start_s),
        "end_s": round_ms(a.end_s),
        "start_tc": format_tc(a.start_s),
        "end_tc": format_tc(a.end_s),
        "best_s": round_ms(a.best_s),
        "distance": _distance(a.distance),
        "detections": a.detections,
        "track_id": a.track_id,
        "left": a.box.left,
        "top": a.box.top,
        "width": a.box.width,
        "height": a.box.height,
        "margin": _distance(a.margin),
        "second_identity": a.second_identity,
        "start_wall": _wall(a, a.start_s),
        "end_wall": _wall(a, a.end_s),
        "face_px": a.face_px,
        "face_band": a.face_band,
        **({"person": a.person} if a.person is not None else {}),
    }


def _wall(a: Appearance, seconds: Fraction) -> str | None:
    moment = a.wall(seconds)
    return None if moment is None else moment.isoformat(timespec="milliseconds")


def review_row(a: Appearance, crop: str | None, frame_view: str | None) -> Row:
    return {
        **appearance_row(a),
        "crop": crop,
        "frame_view": frame_view,
    }


def detection_rows(a: Appearance) -> list[Row]:
    return [
        {
            "source": a.source,
            "frame": frame,
            "time_s": round_ms(seconds),
            "timecode": format_tc(seconds),
            "track_id": a.track_id,
            "identity": a.identity,
            "distance": _distance(a.distance),
            "left": box.left,
            "top": box.top,
            "width": box.width,
            "height": box.height,
            "time_wall": _wall(a, seconds),
            **({"person": a.person} if a.person is not None else {}),
        }
        for frame, seconds, box in a.sightings
    ]
