"""Where the picture changed since the last whole-frame search, for a fixed camera.

A face in a part of the frame whose pixels are the same as at the previous whole-frame
search was there then: it was found then (and is being followed) or it was not findable
on those same pixels. So a whole-frame search need only look again where the picture
changed, grown by the largest face it must see whole; faces larger than that are left to
the quick searches, which always look at the whole frame. Where the camera moves, most of
the frame changes and the whole frame is searched as before. Every `COMPLETE_EVERY`th
search (on the absolute time grid) looks at everything regardless, so that a change too
slow to pass `LEVEL` between two searches is caught within a few seconds.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from frs_cli.records import Box
from frs_cli.video import decode
from frs_cli.video.stages import STAGES

CELL_PX = 8  # the change map's cells: the mean luma of 8x8 source pixels
LEVEL = 12  # a cell whose mean luma moved by more than this (of 255) has changed; sensor
# and compression noise of an area average stays well below it
MAX_SHARE = 0.5  # search the changed areas only while they are under half the frame
MOVED_SHARE = 0.3  # more cells than this changed: the camera moved (or the whole scene
# changed); the street clip, filmed walking backwards: 54-69%; a fixed camera with people
# crossing: up to 10%
COMPLETE_EVERY = 5  # whole-frame searches: every 5th looks at the whole frame


class ChangeMap:
    """The regions of a frame that changed since the frame of the previous call."""

    def __init__(self, width: int, height: int, margin_px: float):
        self.width, self.height = width, height
        self.cols, self.rows = width // CELL_PX, height // CELL_PX  # the last few px: none
        # A face overlapping a changed cell lies within its own size of it.
        self.grow = math.ceil(margin_px / CELL_PX) + 1
        self.base: np.ndarray | None = None
        self.moved = False  # whether most of the picture changed at the last call

    def regions(self, frame: decode.Frame, complete: bool) -> list[Box] | None:
        """The changed regions (source pixels) to search, or None: search everything."""
        if not (self.cols and self.rows):
            return None
        # The luma plane read in place and summed in numpy: asking swscale for a small
        # copy cost more (~0.7 ms at 360p, its context rebuilt between sizes).
        with STAGES.timed("convert"):
            h, w = self.rows * CELL_PX, self.cols * CELL_PX
            cells = frame.gray[:h, :w].reshape(self.rows, CELL_PX, self.cols, CELL_PX)
            small = cells.sum(axis=(1, 3), dtype=np.int32) // (CELL_PX * CELL_PX)
        base, self.base = self.base, small
        if base is None:
            self.moved = False
            return None
        changed = np.abs(small - base) > LEVEL
        self.moved = bool(changed.mean() > MOVED_SHARE)
        if complete:
            return None
        boxes = []
        for r0, r1, c0, c1 in rectangles(grow(changed, self.grow)):
            left, top = c0 * CELL_PX, r0 * CELL_PX
            right = self.width if c1 == self.cols else c1 * CELL_PX
            bottom = self.height if r1 == self.rows else r1 * CELL_PX
            boxes.append(Box(left, top, right - left, bottom - top))
        if sum(b.width * b.height for b in boxes) > MAX_SHARE * self.width * self.height:
            return None
        return boxes


def grow(mask: np.ndarray, cells: int) -> np.ndarray:
    """`mask` with every set cell grown by `cells` on each side (a square dilation)."""
    if cells <= 0 or not mask.any():
        return mask
    h, w = mask.shape
    k = 2 * cells + 1
    integral = np.pad(np.pad(mask.astype(np.int32), cells).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    total = (
        integral[k : k + h, k : k + w]
        - integral[0:h, k : k + w]
        - integral[k : k + h, 0:w]
        + integral[0:h, 0:w]
    )
    return total > 0


def rectangles(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Rectangles (row0, row1, col0, col1; ends exclusive) that together hold every set cell,
    each a whole group: a rectangle is cut only along rows or columns with no set cell, so
    a connected group of cells (a face and its margin) always lies in one of them."""
    found = []
    stack = [(0, mask.shape[0], 0, mask.shape[1])]
    while stack:
        r0, r1, c0, c1 = stack.pop()
        sub = mask[r0:r1, c0:c1]
        rows, cols = _runs(sub.any(axis=1)), _runs(sub.any(axis=0))
        if not rows:
            continue
        if len(rows) > 1:
            stack += [(r0 + a, r0 + b, c0, c1) for a, b in rows]
        elif len(cols) > 1:
            stack += [(r0, r1, c0 + a, c0 + b) for a, b in cols]
        else:
            (a, b), (c, d) = rows[0], cols[0]
            found.append((r0 + a, r0 + b, c0 + c, c0 + d))
    return sorted(found)


def _runs(flags: Any) -> list[tuple[int, int]]:
    """(start, end) of each run of True in a 1-D array."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    return list(zip(starts, ends, strict=True))
