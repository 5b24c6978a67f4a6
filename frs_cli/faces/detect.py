"""Face detection: a registry of detectors over RGB uint8 arrays.

Every detector works at the scale it is given; the caller picks the scale so
that the smallest face it must find becomes as large as the detector's window
(`WINDOW_PX`). This replaces dlib's `upsample` (a factor of 2 per step) with an
exact factor, and lets large frames be *reduced* when only large faces matter.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np

from frs_cli.faces import dlib_models
from frs_cli.records import Box, Detection

# dlib's HOG and MMOD face detectors both scan an 80x80 window; the smallest
# box reported at scale 1 measured 73-80 px on the shared clips.
WINDOW_PX = 80
# SCRFD-500M (the arcface family's detector) finds faces from about 10 px at its finest
# stride; a face of --min-face pixels is scaled to this many, where it is found surely.
SCRFD_WINDOW_PX = 24
# A face at least this wide where SCRFD found it keeps SCRFD's landmarks for its encoding
# (region searches scale a followed face to 64 px); a smaller one is looked at again
# (arcface.landmarks) in the frame's own RGB pixels.
SCRFD_LANDMARK_PX = 48
# Nor does a face that the search enlarged by more than this (the whole frame scaled up for
# a small --min-face, a followed face scaled to 64 px): SCRFD's landmarks on luma scaled up
# from a few dozen pixels placed the eyes worse than a look at the face's own RGB pixels
# (issue 36, benchmarks/cctv_faces.py, ArcFace, 200 listed probes: misses at 48 / 32 / 24 px
# 0.055 / 0.065 / 0.150 with those landmarks, 0.045 / 0.050 / 0.155 without).
LANDMARK_ENLARGED = 1.5

Detector = Callable[[np.ndarray, float], list[Detection]]


@functools.cache
def _hog_with(filters: tuple[int, ...], max_levels: int | None, fine: bool = False) -> Detector:
    def run(image: np.ndarray, threshold: float = 0.0) -> list[Detection]:
        detector = dlib_models.hog_detector(filters, max_levels, fine)
        rects, scores, kinds = detector.run(image, 0, threshold)
        # `kinds` index `filters` (or all five, where the detector could not be cut down);
        # filter 0 is dlib's frontal one, 1-4 profiles and tilts.
        index = filters if detector.num_detectors == len(filters) else dlib_models.HOG_ALL
        return [
            Detection(rect_to_box(r), float(s), frontal=(index[k] == 0))
            for r, s, k in zip(rects, scores, kinds, strict=True)
        ]

    return run


def _cnn(image: np.ndarray, threshold: float = 0.0) -> list[Detection]:
    # dlib's MMOD detector (on ONNX Runtime where it can run: dlib_models.cnn_detector) reports
    # windows scoring above 0, as dlib's Python API does; a lower threshold finds no more.
    found = dlib_models.cnn_detector()(image, 0.0)
    return [
        Detection(Box(left, top, right - left + 1, bottom - top + 1), float(score))
        for (left, top, right, bottom), score in found
        if score >= threshold
    ]


def _scrfd(image: np.ndarray, threshold: float = 0.0) -> list[Detection]:
    # SCRFD's score is a probability, 0.5 its own cut: reported less 0.5, so that 0 is
    # the default here as it is for dlib's detectors, and a followed face's lower
    # threshold (-0.3) asks 0.2. It reads RGB; luma is given to it as grey.
    from frs_cli.faces import arcface

    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    cut = arcface.SCORE
    faces = arcface.detector()(rgb, max(rgb.shape[:2]), max(0.05, cut + threshold))
    h, w = rgb.shape[:2]
    return [
        Detection(
            arcface.to_box(f, w, h),
            f.score - cut,
            landmarks=tuple(f.landmarks.ravel().tolist())
            if f.box[2] - f.box[0] >= SCRFD_LANDMARK_PX
            else (),
        )
        for f in faces
    ]


def window(name: str) -> int:
    """The size in pixels that a detector finds the smallest faces at surely."""
    return SCRFD_WINDOW_PX if name == "scrfd" else WINDOW_PX


def rect_to_box(rect: object) -> Box:
    left, top = rect.left(), rect.top()  # type: ignore[attr-defined]
    return Box(left, top, rect.right() - left + 1, rect.bottom() - top + 1)  # type: ignore[attr-defined]


def get(name: str, whole_frame: bool = False, max_levels: int | None = None) -> Detector:
    """The detector for whole-frame searches, or for searches around a followed face.

    HOG searches whole frames with its upright filters only (dlib_models.HOG_UPRIGHT); a followed
    face is looked for with all five, so that a track holds while the head tilts, and on
    at most `max_levels` pyramid levels (faces of WINDOW_PX * (6/5)**level pixels)."""
    if name == "cnn":
        return _cnn
    if name == "scrfd":
        return _scrfd
    if name != "hog":
        raise KeyError(name)
    return (
        _hog_with(dlib_models.HOG_UPRIGHT, None)
        if whole_frame
        else _hog_with(dlib_models.HOG_ALL, max_levels)
    )


def fine(name: str) -> Detector | None:
    """The whole-frame HOG filters on 4-pixel cells: a 40-pixel window, so on an image at
    half the scale they find about the faces the whole-frame search finds, for about half
    its cost (dlib_models.hog_filters; wholeframe.py). None where there is none (CNN, or a dlib
    whose detector file has another layout)."""
    if name != "hog" or dlib_models.hog_detector(dlib_models.HOG_UPRIGHT, None, True) is None:
        return None
    return _hog_with(dlib_models.HOG_UPRIGHT, None, True)


def scale_for(min_face: int, window_px: int = WINDOW_PX) -> float:
    """The factor that makes a face of `min_face` source pixels as large as the window."""
    return window_px / max(1, min_face)


def search_size(
    width: int,
    height: int,
    min_face: int,
    max_pixels: int | None = None,
    window_px: int = WINDOW_PX,
) -> tuple[int, int]:
    """The size to scale a `width` x `height` frame to so that a face of `min_face` source
    pixels fills the window; smaller where that would exceed `max_pixels`."""
    scale = scale_for(min_face, window_px)
    if max_pixels and width * height * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / (width * height))
    return (
        max(window_px, int(round(width * scale))),
        max(window_px, int(round(height * scale))),
    )


def to_source(
    det: Detection, scale_x: float, scale_y: float, dx: int = 0, dy: int = 0
) -> Detection:
    """Map a detection made on a scaled (and possibly cropped) image back to source pixels."""
    b = det.box
    left = int(round(b.left / scale_x)) + dx
    top = int(round(b.top / scale_y)) + dy
    width = max(1, int(round(b.width / scale_x)))
    height = max(1, int(round(b.height / scale_y)))
    if det.landmarks and max(scale_x, scale_y) > LANDMARK_ENLARGED:
        det = dataclasses.replace(det, landmarks=())  # found again at the face's own size
    return det.moved(Box(left, top, width, height), scale_x, scale_y, dx, dy)


def clip_box(box: Box, frame_w: int, frame_h: int) -> Box:
    left, top = max(0, box.left), max(0, box.top)
    right, bottom = min(frame_w, box.right), min(frame_h, box.bottom)
    return Box(left, top, max(1, right - left), max(1, bottom - top))
