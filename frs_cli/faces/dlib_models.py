"""Where the dlib model files are, and loading them once per process.

The files come from the `face_recognition_models` package. Its `__init__`
imports `pkg_resources`, gone from recent setuptools, so the folder is found
without importing the package. A file in `FRS_MODELS_DIR` is used before the package's
(file by file: that folder may hold the ArcFace family's files too, or only those).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from frs_cli import files
from frs_cli.errors import ModelsMissing

SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"
MMOD = "mmod_human_face_detector.dat"

MODEL_ID_PREFIX = "dlib_resnet_v1:"
INSTALL_HINT = "install it with: pip install face_recognition_models (or set FRS_MODELS_DIR)"


def places() -> list[tuple[str, Path]]:
    """(what, folder) where dlib's model files are looked for, each file on its own, in
    order: `$FRS_MODELS_DIR` may hold only some of them (the ArcFace family's files, say),
    the rest come from the face_recognition_models package."""
    found: list[tuple[str, Path]] = []
    override = os.environ.get("FRS_MODELS_DIR")
    if override:
        if not Path(override).is_dir():
            raise ModelsMissing(f"FRS_MODELS_DIR={override} is not a folder")
        found.append(("$FRS_MODELS_DIR", Path(override)))
    package = _package_dir()
    if package is not None:
        found.append(("the face_recognition_models package", package))
    return found


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_path(name: str) -> Path:
    """The file `name`, from the first place that has it."""
    looked = places()
    for where, folder in looked:
        path = folder / name
        if path.is_file():
            try:
                with open(path, "rb"):  # dlib's own error for an unreadable file is vague
                    pass
            except OSError as err:
                raise ModelsMissing(
                    f"cannot read model file {path} ({where}): {err.strerror or err}; fix its "
                    f"permissions or remove it"
                ) from None
            return path
    where = ", ".join(str(folder) for _, folder in looked) or "nowhere: no package"
    raise ModelsMissing(f"model file {name} is missing (looked in {where}); {INSTALL_HINT}")


# dlib's face detector is five HOG filters: 0 frontal, 1 and 2 the two profiles, 3 and 4
# frontal but tilted left and right. The features are computed once per image and each filter
# costs about a ninth of a search: whole-frame searches use the upright three (a quarter
# cheaper; the tilted ones added no face to the street clip), faces being followed all five.
HOG_ALL = (0, 1, 2, 3, 4)
HOG_UPRIGHT = (0, 1, 2)


@functools.cache
def hog_detector(
    filters: tuple[int, ...] = HOG_ALL, max_levels: int | None = None, fine: bool = False
) -> Any:
    """dlib's HOG face detector, or the sub-detectors `filters` of it (`run` then reports
    positions in `filters` as the detector index), searching at most `max_levels` pyramid
    levels; the whole detector where dlib's file layout is not the one `hog_filters` knows.
    `fine`: the same filters on cells of 4 pixels instead of 8, so a 40-pixel window (see
    `hog_filters`); None where the layout is not known (then nothing can stand in for it).

    Building dlib's detector takes ~0.3 s (dlib parses it from text); loading it saved in
    binary takes ~1 ms, so each variant is cached per dlib version in the cache folder."""
    import dlib

    tag = "" if filters == HOG_ALL else "-" + "".join(map(str, filters))
    tag += f"-L{max_levels}" if max_levels else ""
    tag += "-c4" if fine else ""
    cache = _cache_dir() / f"hog-frontal-{dlib.__version__}{tag}.svm"
    if cache.is_file():
        try:
            return dlib.fhog_object_detector(str(cache))
        except RuntimeError:
            pass  # damaged cache: rebuild it below
    if not tag:
        detector = dlib.get_frontal_face_detector()
        with contextlib.suppress(OSError):
            _write_cache(cache, _hog_bytes(detector))
        return detector
    full = hog_detector()
    try:
        data = hog_filters(_hog_bytes(full), filters, max_levels, fine)
        detector = _hog_from_bytes(data)
    except (ValueError, OSError, RuntimeError):
        # An unknown layout (or no temporary folder): the whole detector, which finds the
        # same faces more slowly; nothing finds what a fine one does.
        return None if fine else full
    _write_cache(cache, data)
    return detector


def _hog_bytes(detector: Any) -> bytes:
    """A HOG detector as dlib serializes it (dlib only saves to a file)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hog.svm"
        detector.save(str(path))
        return path.read_bytes()


def _hog_from_bytes(data: bytes) -> Any:
    import dlib

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hog.svm"
        path.write_bytes(data)
        return dlib.fhog_object_detector(str(path))


def hog_filters(
    data: bytes, keep: tuple[int, ...], max_levels: int | None = None, fine: bool = False
) -> bytes:
    """A serialized dlib HOG detector (`object_detector<scan_fhog_pyramid>`, as `save` writes
    it) with only the filters `keep`, in that order, and, given `max_levels`, searching only
    that many pyramid levels (each 5/6 the size of the one before). `fine`: HOG cells of 4
    pixels instead of 8 and a window of 40 instead of 80, the filters unchanged (each
    covers the same 10x10 cells): on an image at half the scale this approximates the
    search of the whole one at a quarter of the pixel work (see docs/performance.md).
    Raises ValueError for any other layout.

    dlib writes an integer as one byte holding its length (0x80 set when negative) and then
    its bytes, little-endian; a double as two integers (mantissa, exponent). The detector is:
    version 2; the scanner (version 1, an empty feature array as two integers, seven
    integers of geometry, a double, the feature dimension); the box-overlap test (two
    doubles); the number of filters; each filter a column vector (minus its rows, minus one,
    then the values) of the feature dimension plus one (the bias).
    """
    pos = 0

    def integer() -> int:
        nonlocal pos
        if pos >= len(data):
            raise ValueError("truncated")
        head = data[pos]
        size = head & 0x0F
        if size > 8 or pos + 1 + size > len(data):
            raise ValueError("bad integer")
        value = int.from_bytes(data[pos + 1 : pos + 1 + size], "little")
        pos += 1 + size
        return -value if head & 0x80 else value

    def double() -> None:
        integer()
        integer()

    if integer() != 2 or integer() != 1 or integer() != 0 or integer() != 0:
        raise ValueError("not a HOG detector of the known version")
    geometry_at = pos
    geometry = [integer() for _ in range(4)]  # cell size, padding, window width and height
    geometry_end = pos
    levels_at = pos
    integer()  # at most this many pyramid levels
    levels_end = pos
    integer()  # smallest level's width
    integer()  # and height
    double()
    dims = integer()
    double()
    double()
    count_at = pos
    count = integer()
    filters = []
    for _ in range(count):
        start = pos
        if integer() != -(dims + 1) or integer() != -1:
            raise ValueError("unexpected filter shape")
        for _ in range(dims + 1):
            double()
        filters.append(data[start:pos])
    if pos != len(data) or not keep or any(not 0 <= k < count for k in keep):
        raise ValueError("unexpected detector layout or filters")
    if max_levels is not None:
        if not 0 < max_levels < 256:
            raise ValueError("max_levels must be 1-255")
        data = data[:levels_at] + bytes([1, max_levels]) + data[levels_end:]
        count_at += levels_at + 2 - levels_end
    data = data[:count_at] + bytes([1, len(keep)]) + b"".join(filters[k] for k in keep)
    if fine:
        if geometry != [8, 0, 80, 80]:
            raise ValueError("not dlib's 8-pixel cells and 80-pixel window")
        data = data[:geometry_at] + bytes([1, 4, 1, 0, 1, 40, 1, 40]) + data[geometry_end:]
    return data


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "frs"


def cnn_detector() -> Any:
    """dlib's MMOD CNN detector: on ONNX Runtime where it can run there (`choice`), else
    dlib's own. Both are called as `detector(image, threshold)` -> list of ((left, top,
    right, bottom) inclusive, confidence), for confidences above the threshold."""
    return _cnn_detector(_wanted())


@functools.cache
def _cnn_detector(wanted: str) -> Any:
    net = _onnx_net(MMOD, wanted)
    if net is not None:
        return net
    import dlib

    dlib_net = dlib.cnn_face_detection_model_v1(str(model_path(MMOD)))

    def run(image: Any, threshold: float = 0.0) -> list[tuple[tuple[int, int, int, int], float]]:
        return [
            ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
            for d in dlib_net(image, 0)
            if d.confidence > threshold
        ]

    return run


@functools.cache
def shape_predictor() -> Any:
    import dlib

    return dlib.shape_predictor(str(model_path(SHAPE_5)))


@functools.cache
def face_encoder() -> Any:
    """dlib's own encoder (`compute_face_descriptor`); frs_cli.faces.dlib_encoder uses `onnx_encoder`
    instead where it can run."""
    import dlib

    return dlib.face_recognition_model_v1(str(model_path(RESNET)))


# -- which code runs dlib's two networks ---------------------------------------------------
BACKEND_ENV = "FRS_BACKEND"
NETWORKS = {RESNET: "encoder", MMOD: "CNN detector"}


@dataclass(frozen=True)
class Choice:
    backend: str  # "onnxruntime" or "dlib"
    why: str
    fallback: bool = False  # dlib runs it because ONNX Runtime could not


def _wanted() -> str:
    return os.environ.get(BACKEND_ENV, "").strip().lower()


def choice(name: str) -> Choice:
    """Which code runs the network in model file `name` (RESNET or MMOD) and why.

    ONNX Runtime unless FRS_BACKEND=dlib, the runtime is not installed, or the file is not
    of a layout frs_cli.faces.dlib_dnn knows (then the graph cannot be built). The graph is built
    at first use and cached (`onnx_graph`), so this is cheap after the first time."""
    return _choice(name, _wanted())


@functools.cache
def _choice(name: str, wanted: str) -> Choice:
    if wanted == "dlib":
        return Choice("dlib", f"{BACKEND_ENV}=dlib")
    if wanted not in ("", "onnxruntime", "onnx"):
        return Choice("dlib", f"{BACKEND_ENV}={wanted} is not a backend (onnxruntime, dlib)", True)
    if importlib.util.find_spec("onnxruntime") is None:
        return Choice("dlib", "onnxruntime is not installed", True)
    import dlib

    if getattr(dlib, "DLIB_USE_CUDA", False):
        return Choice("dlib", "dlib is built with CUDA: it runs the network on the GPU")
    try:
        onnx_graph(name)
    except ModelsMissing:
        raise
    except Exception as err:  # noqa: BLE001 - any failure to build means: use dlib
        return Choice("dlib", f"{name} could not be converted ({err})", True)
    from importlib.metadata import PackageNotFoundError, version

    try:  # importing onnxruntime takes ~0.15 s: not in the parent, which only decides
        release = version("onnxruntime")
    except PackageNotFoundError:
        release = "?"
    return Choice("onnxruntime", f"onnxruntime {release}, one thread per process")


@functools.cache
def onnx_graph(name: str) -> Path:
    """The ONNX graph of dlib's network in model file `name`, from the cache folder (keyed
    by the weights' hash and frs's graph version), built there first if missing. Raises
    frs_cli.faces.dlib_dnn.LayoutError (or ImportError without the `onnx` package to build it)."""
    from frs_cli.faces import dlib_onnx

    path = model_path(name)
    cached = _cache_dir() / (
        f"onnx-{Path(name).stem}-{file_digest(path)}-g{dlib_onnx.GRAPH_VERSION}.onnx"
    )
    if cached.is_file():
        return cached
    from frs_cli.faces import dlib_dnn

    model = dlib_onnx.build(dlib_dnn.read(str(path)))
    _write_cache(cached, model)
    if not cached.is_file():  # no cache folder: one in the temporary folder, this user's
        private = Path(tempfile.gettempdir()) / f"frs-cache-{os.getuid()}"
        private.mkdir(mode=0o700, exist_ok=True)
        cached = private / cached.name
        if not cached.is_file():
            _write_cache(cached, model)
    return cached


_warned: set[str] = set()


def forget() -> None:
    """Forget every model, hash and backend choice this process holds (for tests that
    change FRS_MODELS_DIR or the cache folder)."""
    for cached in (
        file_digest, encoder_model_id, _choice, onnx_graph, _onnx_net, _cnn_detector,
        shape_predictor, face_encoder,
    ):  # fmt: skip
        cached.cache_clear()
    _warned.clear()


def warn_fallbacks(model: str, stream: Any = None, encodes: bool = True) -> None:
    """One line on stderr (once per process) for each network a scan or enrolment with
    `model` will run on dlib although ONNX Runtime was asked for (not for FRS_BACKEND=dlib)."""
    names = ((MMOD,) if model == "cnn" else ()) + ((RESNET,) if encodes else ())
    for name in names:
        c = choice(name)
        if c.fallback:
            _warn_once(name, c.why, stream)


def _warn_once(name: str, why: str, stream: Any = None) -> None:
    if name not in _warned:
        _warned.add(name)
        print(
            f"frs: warning: dlib runs the {NETWORKS[name]} (slower): {why}",
            file=stream or sys.stderr,
        )


@functools.cache
def _onnx_net(name: str, wanted: str) -> Any:
    """The ONNX Runtime runner for `name`, or None where dlib must run it."""
    if _choice(name, wanted).backend != "onnxruntime":
        return None
    from frs_cli.faces import dlib_onnx

    def make() -> Any:
        if name == RESNET:
            return dlib_onnx.Encoder(onnx_graph(name))
        return dlib_onnx.Detector(model_path(name), onnx_graph(name))

    try:
        return make()
    except Exception:  # noqa: BLE001 - most likely a damaged cached graph: build it again
        with contextlib.suppress(Exception):
            onnx_graph(name).unlink()
        onnx_graph.cache_clear()
    try:
        return make()
    except Exception as err:  # noqa: BLE001 - the runtime cannot run it: dlib still can
        _warn_once(name, f"ONNX Runtime failed ({err})")
        return None


def onnx_encoder() -> Any:
    """frs_cli.faces.dlib_onnx.Encoder, or None where dlib runs the encoder."""
    return _onnx_net(RESNET, _wanted())


@functools.cache
def encoder_model_id() -> str:
    """Names the encoder and the exact weights, so watchlists never mix encoders."""
    return f"{MODEL_ID_PREFIX}{file_digest(model_path(RESNET))}"


@functools.cache
def file_digest(path: Path) -> str:
    """The first 16 hex digits of a model file's sha256.

    Hashing the 22 MB encoder weights costs ~60 ms, a tenth of a short scan's start-up, so
    the digest is cached per file (path, size, mtime, inode) in the cache folder."""
    st = path.stat()
    key = hashlib.sha256(
        f"{path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}".encode()
    ).hexdigest()[:24]
    cache = _cache_dir() / f"model-id-{key}"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        cached = cache.read_text(encoding="ascii").strip()
        if cached.startswith(MODEL_ID_PREFIX) and len(cached) == len(MODEL_ID_PREFIX) + 16:
            return cached[len(MODEL_ID_PREFIX) :]  # the format earlier versions wrote
        if len(cached) == 16 and all(c in "0123456789abcdef" for c in cached):
            return cached
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    _write_cache(cache, digest.encode("ascii"))
    return digest


def _write_cache(path: Path, data: bytes) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(path, data)


def check(model: str, encodes: bool = True) -> None:
    """Raise ModelsMissing unless dlib's files a scan with the detector `model` loads are
    there (the encoder's only where dlib `encodes`; the 5-point landmarks always: the
    ArcFace family aligns on dlib's eyes where SCRFD sees none); say which networks dlib
    will run although ONNX Runtime was wanted (once per process)."""
    for name in (MMOD if model == "cnn" else None, SHAPE_5, RESNET if encodes else None):
        if name is not None:
            model_path(name)
    if encodes or model == "cnn":
        warn_fallbacks(model, encodes=encodes)


def preload(model: str, encodes: bool = True) -> None:
    """Load what a scan needs of dlib's, e.g. before forking workers so that each inherits
    it: the detector `model` (SCRFD's is loaded by families.preload), the landmarks, and
    the encoder where dlib `encodes`."""
    if model == "cnn":
        cnn_detector()
    elif model != "scrfd":
        hog_detector()
        hog_detector(HOG_UPRIGHT)
    shape_predictor()
    if encodes and onnx_encoder() is None:
        face_encoder()
