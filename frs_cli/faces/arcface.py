"""The second model family's networks (issue 30): SCRFD-500M finds faces and their five
landmarks (eyes, nose tip, mouth corners), each face is aligned on them to ArcFace's
112x112 template by a similarity transform, and ArcFace MobileFaceNet (WebFace600K)
encodes it as 512 numbers of length 1. Both run on ONNX Runtime, one thread, from the
bytes `arcface_weights.load` read and checked; loaded once per process.

SCRFD's input: RGB, (x - 127.5) / 128, the picture scaled to fit and padded to a
multiple of 32. Its outputs, per stride 8, 16 and 32 and two anchors per place: a score,
the distances from the anchor's place to the box's four sides, and the five landmarks'
offsets, all in strides. ArcFace's input: RGB, (x - 127.5) / 127.5.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from frs_cli.errors import FrsError
from frs_cli.faces import arcface_weights, prelu
from frs_cli.records import Box

DIM = 512
STRIDES = (8, 16, 32)
ANCHORS = 2  # per place and stride
SCORE = 0.5  # a face: SCRFD's own default
NMS_IOU = 0.4
DETECT_SIDE = 640  # the longest side SCRFD sees by default (InsightFace's 640x640)
# SCRFD-500M's anchors stop at faces about 300-350 px wide in its input: tight crops of
# three photos (Hopper, Obama, Biden) upscaled so the face is 150-800 px were found up to
# 300-350 px, none at 400 and above (a 1000 px headshot got no face). Where a picture is
# large enough to hold a face beyond LARGEST_PX, it is searched again scaled down, so that
# its largest possible face is COARSE_PX, and again, until every size is covered.
LARGEST_PX = 300
COARSE_PX = 256
COARSE_STEP = 4  # each further pass at most 4x smaller: SCRFD finds 16 px faces surely, so
# what one pass finds from 16 px up overlaps what the last found up to LARGEST_PX (4 x 16 < 300)
CHIP = 112
# Where the five landmarks lie in ArcFace's 112x112 input (InsightFace's template).
TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
     [41.5493, 92.3655], [70.7299, 92.2041]]
)  # fmt: skip


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # left, top, right, bottom, in source pixels
    score: float
    landmarks: np.ndarray  # (5, 2): eyes, nose tip, mouth corners, in source pixels


def _session(model: bytes) -> Any:
    """An ONNX Runtime session built from the model's bytes (those whose hash was checked:
    a path would be opened again, and could hold other bytes by then)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


@functools.cache
def detector() -> Detector:
    return Detector(_session(arcface_weights.load("scrfd")[1]))


@functools.cache
def encoder() -> Encoder:
    return Encoder(_session(prelu.without_prelu(arcface_weights.load("arcface")[1])))


class Detector:
    def __init__(self, session: Any):
        self.session = session
        self.input = session.get_inputs()[0].name
        self._places: dict[tuple[int, int, int], np.ndarray] = {}

    def places(self, height: int, width: int, stride: int) -> np.ndarray:
        """Each anchor's place (x, y) in the input, ANCHORS times each, row by row."""
        key = (height, width, stride)
        if key not in self._places:
            ys, xs = np.mgrid[: height // stride, : width // stride]
            grid = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
            self._places[key] = np.repeat(grid, ANCHORS, axis=0)
        return self._places[key]

    def __call__(
        self, rgb: np.ndarray, side: int = DETECT_SIDE, score: float = SCORE, coarse: bool = True
    ) -> list[Face]:
        """Faces in an RGB picture, best first, of every size from SCRFD's smallest at
        the scale that fits the picture's longest side to `side` (never enlarged) up to
        the whole picture: where a face larger than SCRFD's anchors could be there, the
        picture is searched again, smaller (`scales`); not with `coarse` False, where
        the caller knows the face's size (a box's landmarks)."""
        finest, *coarser = scales(rgb.shape[0], rgb.shape[1], side)
        if not coarse:
            coarser = []
        found = self._search(rgb, finest, score)
        for scale in coarser:
            # A face found at a finer scale keeps that finding (its box and landmarks are
            # the more exact): a coarser pass only adds the faces too large for it.
            known = np.array([f.box for f in found], np.float64).reshape(-1, 4)
            found += [
                f for f in self._search(rgb, scale, score)
                if not len(known) or _overlaps(np.array(f.box), known).max() <= NMS_IOU
            ]  # fmt: skip
        return found

    def _search(self, rgb: np.ndarray, scale: float, score: float) -> list[Face]:
        """SCRFD's faces in the picture scaled by `scale` (padded to a multiple of 32),
        in source pixels."""
        height, width = rgb.shape[:2]
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        padded = np.zeros((-(-h // 32) * 32, -(-w // 32) * 32, 3), np.float32)
        small = (
            rgb
            if scale == 1.0
            else np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))
        )
        padded[:h, :w] = small
        blob = ((padded - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outputs = [o[0] if o.ndim == 3 else o for o in self.session.run(None, {self.input: blob})]
        boxes, scores, marks = [], [], []
        for k, stride in enumerate(STRIDES):
            found = np.flatnonzero(outputs[k][:, 0] >= score)
            if not len(found):
                continue
            at = self.places(padded.shape[0], padded.shape[1], stride)[found]
            sides = outputs[k + 3][found] * stride
            boxes.append(np.concatenate([at - sides[:, :2], at + sides[:, 2:]], axis=1))
            scores.append(outputs[k][found, 0])
            marks.append(outputs[k + 6][found].reshape(-1, 5, 2) * stride + at[:, None, :])
        if not boxes:
            return []
        box, sc, mk = np.concatenate(boxes), np.concatenate(scores), np.concatenate(marks)
        keep = suppress(box, sc, NMS_IOU)
        return [
            Face(tuple(float(v) for v in box[i] / scale), float(sc[i]), mk[i] / scale)  # type: ignore[arg-type]
            for i in keep
        ]


def scales(height: int, width: int, side: int) -> list[float]:
    """The scales SCRFD searches a `width` x `height` picture at: the one that fits its
    longest side to `side` (at most 1), then smaller ones while a face larger than
    LARGEST_PX at the last one could be in the picture."""
    longest = max(height, width)
    found = [min(1.0, side / longest)]
    while LARGEST_PX / found[-1] < longest:
        found.append(max(COARSE_PX / longest, found[-1] / COARSE_STEP))
    return found


def suppress(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression: the best box, then each next one that overlaps
    none kept by more than `iou`."""
    order = list(np.argsort(-scores, kind="stable"))
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order:
        i, rest = order[0], np.array(order[1:], int)
        keep.append(int(i))
        if not len(rest):
            break
        lo = np.maximum(boxes[i, :2], boxes[rest, :2])
        hi = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= iou].tolist()
    return keep


class Unalignable(FrsError):
    """A face's landmarks are all at one point (or not finite): no transform maps them
    onto the template, and the face cannot be encoded."""


MIN_SPREAD_PX = 0.5  # landmarks closer than this to their mean, on average: one point


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 rotation, uniform scale and shift that best maps points `src` onto `dst`
    (least squares; Umeyama 1991, without reflection). Unalignable where the points of
    `src` lie at one point."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mean_s, mean_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mean_s, dst - mean_d
    spread = float((s**2).sum() / len(src))
    if not np.isfinite(spread) or spread < MIN_SPREAD_PX**2:
        raise Unalignable(
            f"the face's {len(src)} landmarks lie at one point "
            f"({', '.join(f'{x:.1f},{y:.1f}' for x, y in src[:2])}...): it cannot be aligned"
        )
    u, sigma, vt = np.linalg.svd(d.T @ s / len(src))
    flip = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ flip @ vt
    scale = float(np.trace(np.diag(sigma) @ flip)) / spread
    shift = mean_d - scale * rotation @ mean_s
    return np.hstack([scale * rotation, shift[:, None]])


def align(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The face whose five landmarks are given, as ArcFace's 112x112 RGB input."""
    return _warp(rgb, similarity(landmarks, TEMPLATE))


def _warp(rgb: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """The 112x112 chip that the 2x3 `transform` maps the picture onto."""
    forward = np.vstack([transform, [0.0, 0.0, 1.0]])
    back = np.linalg.inv(forward)[:2].ravel()  # PIL maps output pixels to input ones
    chip = Image.fromarray(rgb).transform(
        (CHIP, CHIP), Image.Transform.AFFINE, tuple(back), resample=Image.Resampling.BILINEAR
    )
    return np.asarray(chip)


class Encoder:
    def __init__(self, session: Any):
        self.session = session
        self.input = session.get_inputs()[0].name

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        """(n, 112, 112, 3) aligned RGB chips -> (n, 512) encodings of length 1."""
        return self.with_lengths(chips)[0]

    def with_lengths(self, chips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The encodings of length 1, and each one's length before it was normalised: a
        measure of how well the network saw the face (on lfw-dev probes shrunk to 24 px,
        the same-person distance fell as it grew: correlation -0.56; faces/bands.py)."""
        if not len(chips):
            return np.zeros((0, DIM), np.float32), np.zeros(0, np.float32)
        x = ((np.asarray(chips, np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
        out = self.session.run(None, {self.input: np.ascontiguousarray(x)})[0]
        lengths = np.linalg.norm(out, axis=1)
        return (out / lengths[:, None]).astype(np.float32), lengths.astype(np.float32)


def encode_faces(rgb: np.ndarray, faces: list[Face]) -> np.ndarray:
    """Encodings of `faces` in `rgb`, in one batch."""
    return encoder()(
        np.stack([align(rgb, f.landmarks) for f in faces])
        if faces
        else np.zeros((0, CHIP, CHIP, 3), np.uint8)
    )


# -- faces given as boxes (from any detector) ------------------------------------
LANDMARK_MARGIN = 1.0  # SCRFD looks for a box's landmarks in the box grown by this much (the
# context matters: at 0.5 the encodings of LFW faces moved 0.17 from those of the landmarks
# found on the whole photo, at 1.0 by 0 in the median, 0.13 at the 95th percentile)
LANDMARK_FACE_PX = 112  # ... scaled down so the box is about this wide
LANDMARK_LEAST_PX = 48  # ... or up (bicubic, RGB) to at least this wide: SCRFD placed the
# landmarks of 24-32 px faces better so (issue 36: misses at 24 / 32 px 0.170 / 0.065 at
# their own size, 0.155 / 0.050 enlarged to 48 px; to 64 px, 0.060 at 32 px)
LANDMARK_SCORE = 0.3  # a face known to be there may score lower than a new one
LANDMARK_IOU = 0.3  # SCRFD's face must overlap the box this much to be the same face


def landmarks(rgb: np.ndarray, box: Box) -> np.ndarray | None:
    """The five landmarks of the face at `box`, found by SCRFD in a crop around it (the
    face that overlaps the box most); None where SCRFD sees no face there."""
    height, width = rgb.shape[:2]
    area = box.expanded(LANDMARK_MARGIN, width, height)
    crop = np.ascontiguousarray(rgb[area.top : area.bottom, area.left : area.right])
    if min(crop.shape[:2]) < 8:
        return None
    grow = max(1.0, LANDMARK_LEAST_PX / max(1, box.width))
    if grow > 1.0:
        size = (round(crop.shape[1] * grow), round(crop.shape[0] * grow))
        crop = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BICUBIC))
    side = max(crop.shape[:2])
    side = max(32, round(side * min(1.0, LANDMARK_FACE_PX / max(1.0, grow * box.width))))
    inside = grow * np.array([box.left - area.left, box.top - area.top, box.right - area.left,
                              box.bottom - area.top], np.float64)  # fmt: skip
    best, best_iou = None, LANDMARK_IOU
    for face in detector()(crop, side, LANDMARK_SCORE, coarse=False):
        iou = _iou(np.array(face.box), inside)
        if iou >= best_iou:
            best, best_iou = face, iou
    if best is None:
        return None
    return best.landmarks / grow + np.array([area.left, area.top], np.float64)


def _overlaps(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one (left, top, right, bottom) box with each of `boxes`."""
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    union = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(_overlaps(a, b[None])[0])


def eyes_chip(rgb: np.ndarray, box: Box) -> np.ndarray:
    """The chip of a face SCRFD does not see, aligned on its two eyes only (their centres
    from dlib's 5-point landmarks, exact for two points) to the template's eyes."""
    import dlib

    from frs_cli.faces import dlib_models

    shape = dlib_models.shape_predictor()(
        rgb, dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
    )
    p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(4)], np.float64)
    eyes = sorted([p[:2].mean(axis=0), p[2:4].mean(axis=0)], key=lambda e: float(e[0]))
    return _warp(rgb, similarity(np.array(eyes), TEMPLATE[:2]))


def encode_boxes(
    faces: Sequence[tuple[np.ndarray, Box] | tuple[np.ndarray, Box, tuple[float, ...]]],
) -> np.ndarray:
    """Encodings of faces given as (RGB image, box) or (image, box, landmarks), in one
    batch: each aligned on the landmarks given (SCRFD found the face) or those SCRFD finds
    around its box, or on its eyes where it finds none, each tried in turn where the one
    before lies at one point. A face none of them can align gets a row of NaN: the
    caller skips it (Family.encode)."""
    return encode_boxes_lengths(faces)[0]


def encode_boxes_lengths(
    faces: Sequence[tuple[np.ndarray, Box] | tuple[np.ndarray, Box, tuple[float, ...]]],
) -> tuple[np.ndarray, np.ndarray]:
    """`encode_boxes`, and each encoding's length before normalisation (NaN where none)."""
    chips, skipped = [], []
    for k, face in enumerate(faces):
        chip = _chip(face[0], face[1], face[2] if len(face) > 2 else ())
        if chip is None:
            skipped.append(k)
            chip = np.zeros((CHIP, CHIP, 3), np.uint8)
        chips.append(chip)
    out, lengths = encoder().with_lengths(
        np.stack(chips) if chips else np.zeros((0, CHIP, CHIP, 3), np.uint8)
    )
    out[skipped] = np.nan
    lengths[skipped] = np.nan
    return out, lengths


def _chip(rgb: np.ndarray, box: Box, given: tuple[float, ...]) -> np.ndarray | None:
    """The face at `box` aligned for ArcFace, or None where no way aligns it."""
    ways: list[Callable[[], np.ndarray | None]] = []
    if len(given) == 10:
        ways.append(lambda: align(rgb, np.reshape(given, (5, 2))))

    def found() -> np.ndarray | None:
        marks = landmarks(rgb, box)
        return None if marks is None else align(rgb, marks)

    ways += [found, lambda: eyes_chip(rgb, box)]
    for way in ways:
        try:
            chip = way()
        except Unalignable:
            continue
        if chip is not None:
            return chip
    return None


def photo_faces(rgb: np.ndarray) -> list[Face]:
    """The faces of an enrolment photo (SCRFD on the photo scaled to DETECT_SIDE)."""
    return detector()(rgb)


def to_box(face: Face, width: int, height: int) -> Box:
    """A face's box in whole pixels, inside the picture."""
    left, top, right, bottom = face.box
    x0, y0 = max(0, int(round(left))), max(0, int(round(top)))
    x1, y1 = min(width, int(round(right))), min(height, int(round(bottom)))
    return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))
