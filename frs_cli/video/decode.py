"""Demuxing and decoding with PyAV: probing a file, and frames of one segment.

`probe` demuxes the whole video stream once, without decoding: that is cheap
(thousands of packets per second) and gives every frame's pts, so frame
numbers are exact even for variable-frame-rate footage, and keyframes, so
segments can start where decoding can.

Seeking: formats with an index (MP4/MOV, Matroska/WebM, AVI) seek by timestamp.
MPEG-TS and raw streams have no index: FFmpeg's timestamp seek there lands on
the keyframe *after* the one asked for, or on a frame that cannot be decoded
(measured on generated TS files: one GOP silently lost, or nothing at all), so
they seek to the byte position of a keyframe the probe saw. Either way the
first frame decoded is checked: a seek that landed past the segment's start
decodes from the file's start instead. Raw H.264/HEVC streams carry no
timestamps at all: frames are numbered in presentation order and timed by the
stream's frame rate (25 fps, with a warning, when it declares none).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from frs_cli import files
from frs_cli.errors import InputError
from frs_cli.records import Box
from frs_cli.timecode import Clock
from frs_cli.video.stages import STAGES

# FFmpeg demuxers that read still images: a photo passed as footage.
IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif")
# Demuxers whose timestamp seeks are unreliable (no index): seek by byte position instead.
BYTE_SEEK_FORMATS = ("mpegts", "mpeg", "mpegvideo", "h264", "hevc", "h263", "m4v", "vc1", "avs2")
ASSUMED_FPS = Fraction(25)  # for a raw stream that declares no frame rate (FFmpeg's own default)


@dataclass(frozen=True, eq=False)
class VideoInfo:
    path: str
    stream_index: int
    codec: str
    width: int  # as displayed, after rotation
    height: int
    rotation: int  # degrees the decoded picture is turned to display it (0, 90, 180, 270)
    clock: Clock
    frame_pts: array  # every frame's pts, ascending (presentation order)
    keyframe_pts: array
    end_pts: int  # pts just after the last frame
    declared_s: Fraction | None = None  # the duration the container's header claims
    keyframe_pos: array | None = None  # byte position of each keyframe: seek by bytes
    derived: str | None = None  # how times were derived when the stream has no timestamps
    stream_note: str | None = None  # which video stream was chosen, when there are several
    creation_time: str | None = None  # the container's (or stream's) creation_time tag

    @property
    def cut_short(self) -> bool:
        """The frames stop well before the duration the header declares (a cut file)."""
        if self.declared_s is None:
            return False
        missing = self.declared_s - (self.end_pts * self.clock.time_base - self.clock.origin_s)
        return missing > max(Fraction(1, 2), self.declared_s / 20)

    @property
    def frames(self) -> int:
        return len(self.frame_pts)

    @property
    def start_s(self) -> Fraction:
        return self.clock.seconds(self.frame_pts[0])

    @property
    def duration_s(self) -> Fraction:
        return (self.end_pts - self.frame_pts[0]) * self.clock.time_base

    @property
    def fps(self) -> float:
        d = self.duration_s
        return float(self.frames / d) if d else 0.0

    def frame_number(self, pts: int) -> int:
        """0-based index of the frame with this pts, in presentation order."""
        return max(0, bisect.bisect_left(self.frame_pts, pts))

    def seek_point(self, pts: int) -> tuple[int, int | None]:
        """The keyframe to decode from to reach `pts`: its pts, and its byte position when
        this file seeks by bytes (else None)."""
        k = max(0, bisect.bisect_right(self.keyframe_pts, pts) - 1)
        pos = self.keyframe_pos[k] if self.keyframe_pos is not None else None
        return self.keyframe_pts[k], pos


def open_container(path: str) -> Any:
    import av

    try:
        return av.open(path, metadata_errors="ignore")
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder") from None
    except PermissionError:
        raise InputError(path, "permission denied; check the file's read permission") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as err:
        if _is_mp4_without_index(path):
            raise InputError(
                path,
                "not a readable video (moov atom missing: an MP4/MOV recording that was cut off "
                "or never finalised; tools such as untrunc can rebuild it from a good file)",
            ) from None
        raise InputError(path, f"not a readable video ({_reason(err)})") from None


def _is_mp4_without_index(path: str) -> bool:
    """An ISO-BMFF file (ftyp box first) that FFmpeg could not open: its moov is missing."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[4:8] == b"ftyp"


def _reason(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err)
    if "moov atom not found" in text:
        return "moov atom not found: the recording is truncated or was never finalised"
    return text.splitlines()[0] if text else type(err).__name__


def probe(path: str) -> VideoInfo:
    """Check that `path` is a video and index its frames. Raises InputError if not."""
    import av

    why = files.regular(path)
    if why is not None:  # a FIFO would block here (and every segment reads the file again)
        raise InputError(path, why)
    if Path(path).stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    container = open_container(path)
    with container:
        if container.format.name in IMAGE_FORMATS or container.format.name.endswith("_pipe"):
            raise InputError(path, "is a still image, not a video; use `frs enroll` for photos")
        stream, note = choose_stream(container, path)
        byte_seek = container.format.name in BYTE_SEEK_FORMATS
        time_base = stream.time_base or Fraction(1, 90000)
        origin = Fraction(container.start_time or 0, 1_000_000)
        pts_list: list[int] = []
        keys: list[int] = []
        key_pos: list[int] = []
        untimed = 0  # packets without any timestamp (raw streams)
        end_pts = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None:
                    pts = untimed  # numbered in decode order; only used if none has a time
                    untimed += 1
                pts_list.append(pts)
                if packet.is_keyframe:
                    keys.append(pts)
                    key_pos.append(packet.pos if packet.pos is not None else -1)
                candidate = pts + (packet.duration or 0)
                end_pts = candidate if end_pts is None else max(end_pts, candidate)
        except av.FFmpegError:
            pass  # a file cut mid-stream: index what is there; decoding reports the rest
        if not pts_list:
            raise InputError(path, "has a video stream but no frames in it")
        derived = None
        if untimed == len(pts_list):
            # No timestamps at all: frames are numbered 0, 1, 2... in a time base of one frame.
            rate, derived = _derived_rate(stream)
            time_base, origin, end_pts = 1 / rate, Fraction(0), len(pts_list)
            byte_seek = True
        elif untimed:
            raise InputError(path, "some frames have timestamps and some do not; remux it")
        # Byte positions only where every keyframe has one and they ascend with time.
        pairs = sorted(zip(keys, key_pos, strict=True))
        keys = [k for k, _ in pairs]
        positions = [p for _, p in pairs]
        use_pos = byte_seek and all(p >= 0 for p in positions) and positions == sorted(positions)
        pts_list.sort()
        ctx = stream.codec_context
        width, height = ctx.width, ctx.height
        rotation = _stream_rotation(container, stream)
        if rotation in (90, 270):
            width, height = height, width
        if end_pts is None or end_pts <= pts_list[-1]:
            end_pts = pts_list[-1] + 1
        return VideoInfo(
            path=path,
            stream_index=stream.index,
            codec=ctx.name,
            width=width,
            height=height,
            rotation=rotation,
            clock=Clock(Fraction(time_base), origin),
            frame_pts=array("q", pts_list),
            keyframe_pts=array("q", keys or pts_list[:1]),
            end_pts=end_pts,
            declared_s=Fraction(container.duration, 1_000_000) if container.duration else None,
            keyframe_pos=array("q", positions) if use_pos and keys else None,
            derived=derived,
            stream_note=note,
            creation_time=_creation_time(container, stream),
        )


def display_size(path: str) -> tuple[int, int] | None:
    """The width and height a player shows (after rotation), without indexing the file;
    None when it cannot be read (the scan then says why)."""
    if files.regular(path) is not None:
        return None
    try:
        with open_container(path) as container:
            stream, _ = choose_stream(container, path)
            width, height = stream.codec_context.width, stream.codec_context.height
            if _stream_rotation(container, stream) in (90, 270):
                width, height = height, width
            return width, height
    except Exception:  # noqa: BLE001 - any failure is reported by the scan itself
        return None


def _creation_time(container: Any, stream: Any) -> str | None:
    """The creation_time tag cameras and phones write (the container's, else the video
    stream's), as written; frs_cli.video.wallclock reads it."""
    for tags in (container.metadata, stream.metadata):
        value = (tags or {}).get("creation_time")
        if value:
            return str(value)
    return None


def choose_stream(container: Any, path: str) -> tuple[Any, str | None]:
    """The video stream a player shows: not a cover picture, the largest picture, then
    the one marked default, then the first. Also a note saying so when there is a choice."""
    import av

    videos = list(container.streams.video)
    if not videos:
        kinds = sorted({s.type for s in container.streams}) or ["no"]
        raise InputError(path, f"has no video stream ({', '.join(kinds)} streams only)")
    flags = av.stream.Disposition

    def rank(s: Any) -> tuple[bool, int, bool, int]:
        disposition = s.disposition or 0
        ctx = s.codec_context
        return (
            not disposition & flags.attached_pic,
            (ctx.width or 0) * (ctx.height or 0),
            bool(disposition & flags.default),
            -s.index,
        )

    best = max(videos, key=rank)
    if len(videos) == 1:
        return best, None
    others = ", ".join(
        f"#{s.index} {s.codec_context.width}x{s.codec_context.height}"
        for s in videos
        if s is not best
    )
    ctx = best.codec_context
    return best, (
        f"{len(videos)} video streams; scanning stream #{best.index} "
        f"({ctx.width}x{ctx.height} {ctx.name}), the largest; not {others}"
    )


def _derived_rate(stream: Any) -> tuple[Fraction, str]:
    """The frame rate that times a stream without timestamps, and how it was found."""
    declared = stream.codec_context.framerate or stream.average_rate
    return derived_rate(Fraction(declared) if declared else None)


def derived_rate(declared: Fraction | None) -> tuple[Fraction, str]:
    if declared and 1 <= declared <= 1000:
        return declared, f"times derived from the stream's frame rate ({float(declared):g} fps)"
    return ASSUMED_FPS, (
        f"times derived from an assumed {float(ASSUMED_FPS):g} fps: the stream declares no "
        "frame rate, so times may be off by that ratio"
    )


def _stream_rotation(container: Any, stream: Any) -> int:
    """The display rotation, read from the first decoded frame's display matrix."""
    try:
        container.seek(0)
        for frame in container.decode(stream):
            return normal_rotation(getattr(frame, "rotation", 0) or 0)
    except Exception:  # noqa: BLE001 - rotation is best effort; decoding reports real errors
        return 0
    return 0


def normal_rotation(degrees: float) -> int:
    """Counter-clockwise display-matrix degrees as clockwise turns of 0/90/180/270."""
    return int(round(-degrees / 90.0)) % 4 * 90


def rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-(rotation // 90)))


def frame_rgb(
    frame: Any, rotation: int, width: int | None = None, height: int | None = None
) -> np.ndarray:
    """The frame as a C-contiguous RGB uint8 array, scaled by swscale when asked.

    `width`/`height` are the *displayed* size wanted; rotation is applied after scaling.
    """
    return frame_array(frame, "rgb24", rotation, width, height)


_LUMA_FIRST = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21")


def frame_luma(frame: Any, rotation: int) -> tuple[np.ndarray, bool]:
    """The frame's luma plane as an array view, without conversion (8-bit YUV formats),
    and whether it is limited range (16-235) and needs `full_range` on what is used of
    it. ~400x cheaper than `to_ndarray(format="gray")`, which converts the whole frame."""
    name = frame.format.name
    if name in _LUMA_FIRST:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        limited = not name.startswith("yuvj") and frame.color_range != 2  # 2: JPEG/full
        return rotate(rows[:, : plane.width], rotation), limited
    return frame_array(frame, "gray", rotation, None, None), False


def frame_luma_scaled(frame: Any, rotation: int, width: int, height: int) -> np.ndarray:
    """Full-range luma scaled by swscale to the displayed size `width` x `height`."""
    return frame_array(frame, "gray", rotation, width, height)


def full_range(luma: np.ndarray) -> np.ndarray:
    """Limited-range (16-235) luma stretched to 0-255, as swscale's gray conversion does."""
    return np.clip((luma.astype(np.int32) - 16) * 255 // 219, 0, 255).astype(np.uint8)


# swscale's threads for one conversion: one. Each worker process already has a core, and
# PyAV (17+) otherwise starts a pool of slice threads per thread's converter, which a forked
# worker inherits without its threads: reconfiguring it there waited forever (PyAV 18.1.1,
# which keeps one converter per thread across frames; see `forget_inherited_converter`).
SWS_THREADS = 1


def frame_array(
    frame: Any, fmt: str, rotation: int, width: int | None, height: int | None
) -> np.ndarray:
    if width is not None and height is not None:
        if rotation in (90, 270):
            width, height = height, width
        image = frame.reformat(
            width=width, height=height, format=fmt, threads=SWS_THREADS
        ).to_ndarray()
    else:
        image = frame.to_ndarray(format=fmt, threads=SWS_THREADS)
    # Some widths (e.g. 820, 854) come back with padded rows; dlib needs contiguous data.
    return rotate(np.ascontiguousarray(image), rotation)


@dataclass
class DecodeCounters:
    decoded: int = 0
    errors: int = 0
    last_error: str | None = None


def iter_frames(
    container: Any,
    stream: Any,
    seek: tuple[int, int | None] | None,
    start_pts: int | None,
    counters: DecodeCounters,
    max_errors: int,
    numbered: bool = False,
) -> Iterator[Any]:
    """Frames from the keyframe `seek` = (pts, byte position or None), tolerating corrupt
    packets. A seek that lands past `start_pts` (or on nothing decodable) is retried from
    the file's start, so no frame of the segment is lost. With `numbered` (a stream without
    timestamps), frames get pts 0, 1, 2... counted from the keyframe's number.

    Raises InputError once more than `max_errors` packets failed to decode.
    """

    def frames_from(number: int) -> Iterator[Any]:
        """Decoded frames; numbered from `number` when the stream has no timestamps."""
        frames = _decode(container, stream, counters, max_errors, numbered)
        if not numbered:
            return frames
        return (_with_pts(frame, n) for n, frame in enumerate(frames, start=number))

    if seek is None or (numbered and seek[1] is None):
        # From the start (a raw stream with no byte positions cannot seek at all).
        yield from frames_from(0)
        return
    key_pts, pos = seek
    if pos is not None:
        container.seek(pos, unsupported_byte_offset=True)
    else:
        container.seek(key_pts, stream=stream, backward=True, any_frame=False)
    frames = frames_from(key_pts)
    first = next(frames, None)
    if first is not None and (start_pts is None or first.pts <= start_pts):
        yield first
        yield from frames
        return
    # Landed past the start, or decoded nothing: decode from the start instead (the
    # frames before the segment are skipped by the caller, as after any seek).
    if pos is not None or numbered:
        container.seek(0, unsupported_byte_offset=True)
    else:
        container.seek(0)
    yield from frames_from(0)


def _with_pts(frame: Any, pts: int) -> Any:
    frame.pts = pts
    return frame


def _decode(
    container: Any, stream: Any, counters: DecodeCounters, max_errors: int, untimed: bool
) -> Iterator[Any]:
    import av

    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.FFmpegError as err:
            # The container itself broke off (a file cut mid-stream): stop here.
            counters.errors += 1
            counters.last_error = _reason(err)
            return
        try:
            frames = packet.decode()
        except av.FFmpegError as err:
            counters.errors += 1
            counters.last_error = _reason(err)
            if counters.errors > max_errors:
                raise InputError(
                    container.name, f"too many decode errors ({counters.last_error})"
                ) from None
            continue
        for frame in frames:
            if frame.pts is None and not untimed:
                continue
            counters.decoded += 1
            yield frame


class Frame:
    """One decoded frame with its RGB conversions made on first use."""

    def __init__(self, frame: Any, rotation: int):
        self.frame = frame
        self.pts: int = frame.pts
        self.rotation = rotation
        self._rgb: np.ndarray | None = None
        self._gray: np.ndarray | None = None
        self._limited = False

    @property
    def rgb(self) -> np.ndarray:
        """Full-resolution RGB, for encodings."""
        if self._rgb is None:
            with STAGES.timed("convert"):
                self._rgb = frame_rgb(self.frame, self.rotation)
        return self._rgb

    @property
    def gray(self) -> np.ndarray:
        """Full-resolution luma, for region searches: HOG on one channel instead of three is
        about 30% faster, and the luma plane needs no colour conversion."""
        if self._gray is None:
            with STAGES.timed("convert"):
                self._gray, self._limited = frame_luma(self.frame, self.rotation)
        return self._gray

    def luma_crop(self, box: Box) -> np.ndarray:
        """Full-range luma of one region (cheap: only the region is stretched)."""
        crop = self.gray[box.top : box.bottom, box.left : box.right]
        return full_range(crop) if self._limited else np.ascontiguousarray(crop)

    def release(self) -> None:
        self._rgb = self._gray = None


_INHERITED: list[Any] = []  # converters a forked process must never free


def forget_inherited_converter() -> None:
    """In a forked worker: set aside the converter PyAV (18.1.1+) keeps for this thread,
    inherited from the parent (its slice threads, if the parent's code asked for any, do
    not exist here; freeing or reconfiguring it would wait for them forever), so that the
    worker's first conversion makes its own. Kept referenced, never freed."""
    import av.video.frame

    local = getattr(av.video.frame, "_thread_local", None)
    inherited = getattr(local, "reformatter", None)
    if inherited is not None:
        _INHERITED.append(inherited)
        local.reformatter = None  # type: ignore[union-attr]
