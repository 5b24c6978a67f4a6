"""Distances between encodings, the same measure for every model family (each family's
numbers in families.py are on its own scale of it)."""

from __future__ import annotations

import numpy as np


def distances(queries: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Euclidean distances between every query and every face, shape (queries, faces),
    in float64 through one matrix product (|q|^2 + |f|^2 - 2 q.f)."""
    q = np.asarray(queries, np.float64)
    f = np.asarray(faces, np.float64)
    squared = (q**2).sum(1)[:, None] + (f**2).sum(1)[None, :] - 2.0 * q @ f.T
    return np.sqrt(np.maximum(squared, 0.0))


def face_distance(known: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Euclidean distances, the measure face_recognition's tolerance 0.6 is meant for."""
    if len(known) == 0:
        return np.empty(0, dtype=np.float32)
    return np.linalg.norm(known - vector, axis=1)
