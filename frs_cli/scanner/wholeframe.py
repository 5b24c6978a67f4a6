"""Whole-frame searches for new faces.

The frame is scaled so that a face of `--min-face` pixels fills the detector's window and
searched whole, or in regions only (of interest, or where a fixed camera's picture
changed: changes.py). Where that scaled frame is large (1080p and up at `--min-face`
40: the frame at twice its size, 8.3 million pixels) and the camera moved, the search
runs in two passes, and so does the quick search between two full ones (at 1280x720):
dlib's filters on cells of 4 pixels instead of 8 (a 40-pixel window,
`dlib_models.hog_filters`) over the frame at half that scale, which costs about half as much,
propose faces down to a score of `PROPOSE_BELOW`; a proposal scoring 0 or more
is taken as it is, one below 0 only if dlib's own search of the scaled frame finds a face
there (`CONFIRM_MARGIN` around it). On the street clip's frames the two passes found 63
of the 66 faces the whole search found, plus one it did not; in tracks, the same faces.
"""

from __future__ import annotations

import numpy as np

from frs_cli.faces import detect
from frs_cli.records import Box, Detection
from frs_cli.video import decode
from frs_cli.video.stages import STAGES

TWO_PASS_ABOVE = 2560 * 1440  # scaled frames of more pixels than this may be split
PROPOSE_BELOW = -0.2  # the first pass proposes faces down to this score
CONFIRM_MARGIN = 1.0  # a doubtful proposal is searched for again in a region this much
# larger than it on each side (less: a large face near the region's edge went unfound)
CONFIRM_IOU = 0.3  # what dlib finds there must overlap the proposal this much


class WholeFrame:
    def __init__(self, model: str, width: int, height: int, rotation: int):
        self.searcher = detect.get(model, whole_frame=True)
        self.model = model
        self.fine: detect.Detector | None = None  # loaded when first needed
        self.width, self.height, self.rotation = width, height, rotation

    def splits(self, size: tuple[int, int]) -> bool:
        """Whether a search at `size` is worth two passes."""
        if size[0] * size[1] <= TWO_PASS_ABOVE:
            return False
        if self.fine is None:
            self.fine = detect.fine(self.model)
        return self.fine is not None

    def frame(self, fr: decode.Frame, size: tuple[int, int]) -> list[Detection]:
        """dlib's search of the whole frame scaled to `size` (source-pixel boxes)."""
        with STAGES.timed("convert"):
            image = decode.frame_luma_scaled(fr.frame, self.rotation, *size)
        sx, sy = size[0] / self.width, size[1] / self.height
        with STAGES.timed("detect"):
            raw = self.searcher(image, 0.0)
        return [detect.to_source(d, sx, sy) for d in raw]

    def regions(
        self, fr: decode.Frame, size: tuple[int, int], regions: list[Box]
    ) -> list[Detection]:
        """The whole-frame search in some regions only: the frame is scaled as for a
        whole-frame search and each region cut from it, so a region covering the frame
        finds exactly what the whole-frame search finds, and a small one costs only its
        pixels. A face across two regions may be found twice; the duplicates are dropped
        like any second box on one face."""
        if not regions:
            return []
        with STAGES.timed("convert"):
            image = decode.frame_luma_scaled(fr.frame, self.rotation, *size)
        sx, sy = size[0] / self.width, size[1] / self.height
        found: list[Detection] = []
        for roi in regions:
            left, top = round(roi.left * sx), round(roi.top * sy)
            right, bottom = round(roi.right * sx), round(roi.bottom * sy)
            smallest = detect.window(self.model) // 2
            if right - left < smallest or bottom - top < smallest:
                continue  # smaller than any face that must be found
            crop = np.ascontiguousarray(image[top:bottom, left:right])
            with STAGES.timed("detect"):
                raw = self.searcher(crop, 0.0)
            for d in raw:
                b = d.box
                moved = d.moved(Box(b.left + left, b.top + top, b.width, b.height), dx=left, dy=top)
                found.append(detect.to_source(moved, sx, sy))
        return found

    def two_passes(self, fr: decode.Frame, size: tuple[int, int]) -> list[Detection]:
        """Proposals of the fine first pass at half the scale, the doubtful ones confirmed."""
        assert self.fine is not None, "only where splits()"
        half = (max(detect.WINDOW_PX // 2, size[0] // 2), max(detect.WINDOW_PX // 2, size[1] // 2))
        with STAGES.timed("convert"):
            image = decode.frame_luma_scaled(fr.frame, self.rotation, *half)
        sx, sy = half[0] / self.width, half[1] / self.height
        with STAGES.timed("detect"):
            proposed = [detect.to_source(d, sx, sy) for d in self.fine(image, PROPOSE_BELOW)]
        found = [d for d in proposed if d.score >= 0]
        doubtful = [d.box for d in proposed if d.score < 0]
        areas = [b.expanded(CONFIRM_MARGIN, self.width, self.height) for b in doubtful]
        again = self.regions(fr, size, areas) if doubtful else []
        for box in doubtful:
            best = max(again, key=lambda d: d.box.iou(box), default=None)
            if best is not None and best.box.iou(box) >= CONFIRM_IOU and best not in found:
                found.append(best)
        return found
