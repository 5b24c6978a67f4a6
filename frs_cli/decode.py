"""Demuxing and decoding with PyAV: probing a file, and frames of one segment.

`probe` demuxes the whole video stream once, without decoding: that is cheap
(thousands of packets per second) and gives every frame's pts, so frame
numbers are exact even for variable-frame-rate footage, and keyframes, so
segments can start where decoding can.
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

from frs_cli.errors import InputError
from frs_cli.timecode import Clock

# FFmpeg demuxers that read still images: a photo passed as footage.
IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif")


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

    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes)")
    container = open_container(path)
    with container:
        if container.format.name in IMAGE_FORMATS or container.format.name.endswith("_pipe"):
            raise InputError(path, "is a still image, not a video; use `frs enroll` for photos")
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["no"]
            raise InputError(path, f"has no video stream ({', '.join(kinds)} streams only)")
        stream = container.streams.video[0]
        time_base = stream.time_base or Fraction(1, 90000)
        origin = Fraction(container.start_time or 0, 1_000_000)
        pts_list: list[int] = []
        keys: list[int] = []
        end_pts = None
        try:
            for packet in container.demux(stream):
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None or packet.size == 0:
                    continue
                pts_list.append(pts)
                if packet.is_keyframe:
                    keys.append(pts)
                candidate = pts + (packet.duration or 0)
                end_pts = candidate if end_pts is None else max(end_pts, candidate)
        except av.FFmpegError:
            pass  # a file cut mid-stream: index what is there; decoding reports the rest
        if not pts_list:
            raise InputError(path, "has a video stream but no frames in it")
        pts_list.sort()
        keys.sort()
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


def frame_array(
    frame: Any, fmt: str, rotation: int, width: int | None, height: int | None
) -> np.ndarray:
    if width is not None and height is not None:
        if rotation in (90, 270):
            width, height = height, width
        image = frame.reformat(width=width, height=height, format=fmt).to_ndarray()
    else:
        image = frame.to_ndarray(format=fmt)
    # Some widths (e.g. 820, 854) come back with padded rows; dlib needs contiguous data.
    return rotate(np.ascontiguousarray(image), rotation)


@dataclass
class DecodeCounters:
    decoded: int = 0
    errors: int = 0
    last_error: str | None = None


def iter_frames(
    container: Any, stream: Any, start_pts: int | None, counters: DecodeCounters, max_errors: int
) -> Iterator[Any]:
    """Frames from the keyframe at or before `start_pts`, tolerating corrupt packets.

    Raises InputError once more than `max_errors` packets failed to decode.
    """
    import av

    if start_pts is not None:
        container.seek(start_pts, stream=stream, backward=True, any_frame=False)
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
            if frame.pts is None:
                continue
            counters.decoded += 1
            yield frame
