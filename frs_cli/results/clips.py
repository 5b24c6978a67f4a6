"""Evidence clips (`frs report RESULTS --clips DIR`): per appearance, an MP4 cut from the
source from `PAD_S` before it to `PAD_S` after, with the face's box, the identity (or
person label) and distance drawn on every frame it is in, and the time in a corner (the
time of day where the file's clock is known, else the position in the file).

The box on each frame comes from frs's own analysis of the appearance's span (the same
pipeline a scan runs), matched to the row by its box at `best_s`, and carried to the
frames between two analysed ones from the nearer of them. Frames keep their source
timestamps (variable frame rates stay as they were). Files are named so that a folder of
them sorts by source file, then time: `STEM-TAG_00h00m03.580s_WHO_tTRACK.mp4`.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from frs_cli import files
from frs_cli.errors import InputError
from frs_cli.faces.views import safe_name
from frs_cli.records import AnalysisConfig, Box, Segment
from frs_cli.timecode import format_tc, wall_at
from frs_cli.video import decode

PAD_S = 2.0  # seconds of context before and after an appearance
BOX_COLOUR = (230, 40, 40)


def clip_name(row: dict[str, Any]) -> str:
    source = Path(row["source"])
    # The tag is of the name as the scan gave it: demo.mp4 and ./demo.mp4 get two.
    tag = hashlib.sha1(str(row["source"]).encode()).hexdigest()[:6]
    when = format_tc(row["start_s"]).replace(":", "h", 1).replace(":", "m", 1) + "s"
    who = safe_name(row.get("identity") or row.get("person") or "unknown")
    return f"{safe_name(source.stem, 40)}-{tag}_{when}_{who}_t{row.get('track_id') or 0}.mp4"


@dataclass(frozen=True)
class Clip:
    path: Path
    boxed: bool  # the face was found again and its box drawn


def write_clip(
    row: dict[str, Any],
    folder: Path,
    source: str | None = None,
    analysis: AnalysisConfig | None = None,
    taken: set[str] | None = None,
) -> Clip:
    """Write one appearance's clip into `folder` (owner-only). `source`: the file the
    scan read (default: the row's source as named); `analysis`: the scan's settings for it
    (its --min-face, regions), so the face the scan found is found again; `taken`: names
    written before in this run, never written over (a second gets -2, ...). InputError if
    the source cannot be read."""
    path = source or row["source"]
    info = decode.probe(path)
    clock = info.clock
    first, last = info.frame_pts[0], info.frame_pts[-1]
    start_s, end_s = Fraction(str(row["start_s"])), Fraction(str(row["end_s"]))
    window = (
        max(first, clock.pts(max(Fraction(0), start_s - Fraction(PAD_S)))),
        min(last + 1, clock.pts(end_s + Fraction(PAD_S)) + 1),
    )
    boxes = _track_boxes(info, row, start_s, end_s, analysis or AnalysisConfig())
    name = clip_name(row)
    if taken is not None:
        stem, k = name[: -len(".mp4")], 2
        while name in taken:
            name, k = f"{stem}-{k}.mp4", k + 1
        taken.add(name)
    target = folder / name
    if files.same_file(target, path):
        raise InputError(path, f"its clip would be written over it ({target})")
    tmp = files.reserve(target)
    try:
        _render(info, row, window, boxes, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Clip(target, bool(boxes))


def _track_boxes(
    info: decode.VideoInfo,
    row: dict[str, Any],
    start_s: Fraction,
    end_s: Fraction,
    analysis: AnalysisConfig,
) -> list[tuple[int, Box]]:
    """(pts, box) of the appearance's face on the frames frs analysed, nearest first."""
    from frs_cli.scanner.analyse import analyse_segment

    clock = info.clock
    begin = clock.pts(start_s - Fraction(1, 1000))
    end = clock.pts(end_s + Fraction(1, 1000)) + 1
    numbered = info.derived is not None
    segment = Segment(
        info.path, info.stream_index, 0, 1, begin, end, dataclasses.replace(analysis, views=False),
        seek=info.seek_point(begin), time_base=clock.time_base if numbered else None,
        numbered=numbered,
    )  # fmt: skip
    result = analyse_segment(segment)
    want = Box(
        row.get("left") or 0, row.get("top") or 0, row.get("width") or 1, row.get("height") or 1
    )
    best_pts = clock.pts(Fraction(str(row.get("best_s", row["start_s"]))))
    chosen, overlap = None, 0.0
    for track in result.tracks:
        near = min(track.sightings, key=lambda s: abs(s.pts - best_pts))
        iou = near.box.iou(want)
        if iou > overlap:
            chosen, overlap = track, iou
    if chosen is None or overlap < 0.3:
        return []
    return sorted((s.pts, s.box) for s in chosen.sightings)


def _box_at(boxes: list[tuple[int, Box]], pts: int) -> Box | None:
    """The box of the analysed frame nearest `pts`, within the track's span."""
    if not boxes or pts < boxes[0][0] or pts > boxes[-1][0]:
        return None
    k = bisect.bisect_left(boxes, (pts,))  # (pts,) sorts before (pts, box)
    near = [boxes[i] for i in (k - 1, k) if 0 <= i < len(boxes)]
    return min(near, key=lambda b: abs(b[0] - pts))[1]


def _origin(row: dict[str, Any]) -> dt.datetime | None:
    """The time of day at the file's position 0, from the row's start_wall (computed in
    UTC: a daylight-saving change within the clip moves the offset, not the time); None
    where the row has none or it is not a time."""
    wall = row.get("start_wall")
    try:
        moment = dt.datetime.fromisoformat(wall) if isinstance(wall, str) else None
    except ValueError:
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return wall_at(moment, -Fraction(str(row["start_s"])))


def _render(
    info: decode.VideoInfo,
    row: dict[str, Any],
    window: tuple[int, int],
    boxes: list[tuple[int, Box]],
    target: Path,
) -> None:
    import av

    clock = info.clock
    who = row.get("identity") or (f"person {row['person']}" if row.get("person") else "unknown")
    distance = row.get("distance")
    label = who + (f"  distance {float(distance):.3f}" if distance is not None else "")
    origin = _origin(row)
    size = max(14, info.height // 30)
    font = ImageFont.load_default(size=size)
    counters = decode.DecodeCounters()
    with decode.open_container(info.path) as source, av.open(str(target), "w", format="mp4") as out:
        stream = source.streams[info.stream_index]
        stream.codec_context.thread_count = 1
        video = out.add_stream("libx264", rate=stream.average_rate or 25)
        video.width, video.height = info.width - info.width % 2, info.height - info.height % 2
        video.pix_fmt = "yuv420p"
        video.time_base = clock.time_base
        frames = decode.iter_frames(source, stream, info.seek_point(window[0]), window[0],
                                    counters, 50, info.derived is not None)  # fmt: skip
        last = None
        for frame in frames:
            if frame.pts < window[0]:
                continue
            if frame.pts >= window[1]:
                break
            if last is not None and frame.pts <= last:
                continue  # a repeated timestamp: the muxer needs them rising
            last = frame.pts
            image = Image.fromarray(decode.frame_rgb(frame, info.rotation))
            draw = ImageDraw.Draw(image)
            box = _box_at(boxes, frame.pts)
            if box is not None:
                width = max(2, info.height // 240)
                draw.rectangle(
                    (box.left, box.top, box.right, box.bottom), outline=BOX_COLOUR, width=width
                )
                x = max(0, min(box.left, info.width - int(draw.textlength(label, font=font)) - 4))
                draw.text((x, max(0, box.top - size - 6)), label, fill=BOX_COLOUR,
                          font=font, stroke_width=2, stroke_fill=(0, 0, 0))  # fmt: skip
            seconds = clock.seconds(frame.pts)
            moment = wall_at(origin, seconds) if origin is not None else None
            when = moment.isoformat(timespec="milliseconds") if moment else format_tc(seconds)
            draw.text((8, info.height - size - 10), f"{when}  {Path(info.path).name}",
                      fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0))  # fmt: skip
            if image.size != (info.width, info.height):
                # The stream changed its frame size: the clip keeps the first one's.
                image = image.resize((info.width, info.height))
            pixels = np.asarray(image)[: video.height, : video.width]
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
            picture.pts = frame.pts - window[0]
            picture.time_base = clock.time_base
            for packet in video.encode(picture):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    if last is None:
        raise InputError(info.path, "no frame could be decoded for this appearance")
