"""Where the dlib model files are, and loading them once per process.

The files come from the `face_recognition_models` package. Its `__init__`
imports `pkg_resources`, gone from recent setuptools, so the folder is found
without importing the package. `FRS_MODELS_DIR` overrides the location.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from frs_cli.errors import ModelsMissing

SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
MMOD = "mmod_human_face_detector.dat"

MODEL_ID_PREFIX = "dlib_resnet_v1:"
INSTALL_HINT = "install it with: pip install face_recognition_models (or set FRS_MODELS_DIR)"


def models_dir() -> Path:
    override = os.environ.get("FRS_MODELS_DIR")
    if override:
        path = Path(override)
        if not path.is_dir():
            raise ModelsMissing(f"FRS_MODELS_DIR={override} is not a folder")
        return path
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelsMissing(f"the face_recognition_models package is missing; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(name: str) -> Path:
    path = models_dir() / name
    if not path.is_file():
        raise ModelsMissing(f"model file {path} is missing; {INSTALL_HINT}")
    return path


@functools.cache
def hog_detector() -> Any:
    """dlib's frontal HOG detector. Building it takes ~0.3 s (dlib parses it from text);
    loading the same detector saved in binary takes ~1 ms, so it is cached per dlib version."""
    import dlib

    cache = _cache_dir() / f"hog-frontal-{dlib.__version__}.svm"
    if cache.is_file():
        try:
            return dlib.fhog_object_detector(str(cache))
        except RuntimeError:
            pass  # damaged cache: rebuild it below
    detector = dlib.get_frontal_face_detector()
    with contextlib.suppress(OSError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        detector.save(str(tmp))
        os.replace(tmp, cache)
    return detector


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "frs"


@functools.cache
def cnn_detector() -> Any:
    import dlib

    return dlib.cnn_face_detection_model_v1(str(model_path(MMOD)))


@functools.cache
def shape_predictor() -> Any:
    import dlib

    return dlib.shape_predictor(str(model_path(SHAPE_5)))


@functools.cache
def face_encoder() -> Any:
    import dlib

    return dlib.face_recognition_model_v1(str(model_path(RESNET)))


@functools.cache
def encoder_model_id() -> str:
    """Names the encoder and the exact weights, so watchlists never mix encoders.

    Hashing the 22 MB weights costs ~60 ms, a tenth of a short scan's start-up, so the
    id is cached per file (path, size, mtime, inode) in the cache folder."""
    path = model_path(RESNET)
    st = path.stat()
    key = hashlib.sha256(
        f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}".encode()
    ).hexdigest()[:24]
    cache = _cache_dir() / f"model-id-{key}"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        cached = cache.read_text(encoding="ascii").strip()
        if cached.startswith(MODEL_ID_PREFIX) and len(cached) == len(MODEL_ID_PREFIX) + 16:
            return cached
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    model_id = f"{MODEL_ID_PREFIX}{digest}"
    _write_cache(cache, model_id.encode("ascii"))
    return model_id


def _write_cache(path: Path, data: bytes) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


def check(model: str) -> None:
    """Raise ModelsMissing unless the files a scan with `model` loads are there."""
    for name in (MMOD if model == "cnn" else None, SHAPE_5, RESNET):
        if name is not None:
            model_path(name)


def preload(model: str) -> None:
    """Load what a scan needs, e.g. before forking workers so that each inherits it."""
    (cnn_detector if model == "cnn" else hog_detector)()
    shape_predictor()
    face_encoder()
