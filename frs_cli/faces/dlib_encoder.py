"""128-d face encodings, identical to `face_recognition.face_encodings` defaults:
5-point landmarks, one jitter, 150 px chip, padding 0.25, on the source-resolution image.

dlib finds the landmarks and cuts the chip (`get_face_chip`, what its own
`compute_face_descriptor` does); the network runs on ONNX Runtime where it can
(`dlib_models.onnx_encoder`: same encodings within 1e-6, ~10x faster than the dlib-bin wheel),
else on dlib. Several faces are encoded in one call to the network.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from frs_cli.faces import dlib_models
from frs_cli.records import Box


def _rect(box: Box) -> object:
    import dlib

    return dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)


def face_encoding(image: np.ndarray, box: Box) -> np.ndarray:
    """The encoding of the face at `box` in an RGB uint8 image, as float32[128]."""
    return face_encodings([(image, box)])[0]


def face_encodings(faces: Sequence[tuple[np.ndarray, Box]]) -> np.ndarray:
    """The encodings of faces given as (RGB uint8 image, box), as float32[n, 128]."""
    import dlib

    onnx = dlib_models.onnx_encoder()
    shapes = [(image, dlib_models.shape_predictor()(image, _rect(box))) for image, box in faces]
    if onnx is None:
        encoder = dlib_models.face_encoder()
        vectors = [
            encoder.compute_face_descriptor(image, shape, 1, 0.25) for image, shape in shapes
        ]
        return np.asarray(vectors, dtype=np.float32).reshape(len(faces), 128)
    rows, cols = onnx.size
    chips = [np.asarray(dlib.get_face_chip(image, shape, rows, 0.25)) for image, shape in shapes]
    return onnx(np.stack(chips) if chips else np.empty((0, rows, cols, 3), np.uint8))
