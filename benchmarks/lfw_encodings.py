"""Every photo of ../shared/data/lfw-dev encoded once with frs's own photo path (the
central face, as `frs evaluate` does), cached for the accuracy benchmarks.

    python benchmarks/lfw_encodings.py [--lfw DIR] [--cache FILE]

The cache (default ~/.cache/frs/lfw-dev-every-photo.npz, owner-only: these are
biometric data of the people in LFW) holds identity names, photo names and 128-d
encodings; ~2 min on 2 cores. `load()` is what the other benchmarks call.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LFW = ROOT.parent / "shared" / "data" / "lfw-dev"
CACHE = Path.home() / ".cache" / "frs" / "lfw-dev-every-photo.npz"

# One person filed under two names in lfw-dev, found by eye among the closest pairs of
# different names' first photos (ArcFace, benchmarks/alert_rule.py): the same picture
# (Carlos_Beltran / Raul_Ibanez, distance 0), Carlos_Ruckauf_0001.jpg showing Eduardo
# Duhalde (0.69), two spellings of one name (Chyung_Dai-chul, Ruano_Pascual: 0.86, 0.91),
# a maiden and married name (Talisa Soto, 0.97). Not merged: Carolina and Isabela Moraes
# (twin sisters, 0.95) and every pair farther than 1.0 (alike, not clearly one person).
MERGED = {
    "Raul_Ibanez": "Carlos_Beltran",
    "Carlos_Ruckauf": "Eduardo_Duhalde",
    "Dai_Chul_Chyung": "Chyung_Dai-chul",
    "Virgina_Ruano_Pascal": "Ruano_Pascual",
    "Talisa_Bratt": "Talisa_Soto",
}


def merged(names: np.ndarray) -> np.ndarray:
    """`names` with the identities in MERGED under one name."""
    return np.array([MERGED.get(n, n) for n in names.tolist()])


def load(lfw: Path = LFW, cache: Path = CACHE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(identities, photo names, encodings) of every lfw-dev photo with a face."""
    if cache.exists():
        data = np.load(cache)
        return data["names"], data["photos"], data["vectors"]
    from multiprocessing import get_context

    from frs_cli import files
    from frs_cli.faces import dlib_models
    from frs_cli.faces.photos import PhotoJob, encode_photo

    jobs = [
        PhotoJob(d.name, str(p))
        for d in sorted(x for x in lfw.iterdir() if x.is_dir())
        for p in sorted(d.glob("*.jpg"))
    ]
    started = time.time()
    with get_context("fork").Pool(os.cpu_count(), dlib_models.preload, ("hog",)) as pool:
        results = pool.map(functools.partial(encode_photo, choose="central"), jobs, 16)
    kept = [r for r in results if r.vector is not None]
    names = np.array([r.job.identity for r in kept])
    photos = np.array([Path(r.job.path).name for r in kept])
    vectors = np.array([r.vector for r in kept], np.float32)
    print(
        f"encoded {len(kept)} of {len(jobs)} photos in {time.time() - started:.0f} s",
        file=sys.stderr,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    with files.replacing(cache, binary=True) as f:
        np.savez(f, names=names, photos=photos, vectors=vectors)
    return names, photos, vectors


def _mirrored(path: str) -> np.ndarray | None:
    from PIL import ImageOps

    from frs_cli.faces import images
    from frs_cli.faces.dlib_encoder import face_encoding
    from frs_cli.faces.photos import find_faces

    photo = images.load_photo(path)
    rgb = np.ascontiguousarray(np.asarray(ImageOps.mirror(_image(photo.rgb))))
    boxes = find_faces(rgb, "central")
    return face_encoding(rgb, boxes[0]) if boxes else None


def _image(rgb: np.ndarray):  # noqa: ANN202 - a PIL image
    from PIL import Image

    return Image.fromarray(rgb)


def load_mirrored(
    names: np.ndarray, photos: np.ndarray, vectors: np.ndarray, lfw: Path = LFW
) -> np.ndarray:
    """The encoding of each photo mirrored left-right (the original's where the mirrored
    photo gives no face), in the order `load` gives; cached beside it. ~1 min."""
    cache = CACHE.with_name(CACHE.stem + "-mirrored.npz")
    if cache.exists():
        return np.load(cache)["vectors"]
    from multiprocessing import get_context

    from frs_cli import files
    from frs_cli.faces import dlib_models

    paths = [str(lfw / n / p) for n, p in zip(names.tolist(), photos.tolist(), strict=True)]
    with get_context("fork").Pool(os.cpu_count(), dlib_models.preload, ("hog",)) as pool:
        found = pool.map(_mirrored, paths, 16)
    out = np.array([f if f is not None else v for f, v in zip(found, vectors, strict=True)])
    with files.replacing(cache, binary=True) as f:
        np.savez(f, vectors=out.astype(np.float32))
    return out


def _arcface_photo(path: str) -> np.ndarray | None:
    """SCRFD's face nearest the middle of the photo, aligned and encoded by ArcFace."""
    from frs_cli.faces import arcface, images

    rgb = images.load_photo(path).rgb
    faces = arcface.detector()(rgb)
    if not faces:
        return None
    h, w = rgb.shape[:2]

    def off_centre(f: arcface.Face) -> float:
        left, top, right, bottom = f.box
        return ((left + right) / 2 - w / 2) ** 2 + ((top + bottom) / 2 - h / 2) ** 2

    return arcface.encode_faces(rgb, [min(faces, key=off_centre)])[0]


def load_arcface(lfw: Path = LFW) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(identities, photo names, 512-d ArcFace encodings, found) of every lfw-dev photo,
    `found` False where SCRFD finds no face (a zero vector there); cached beside `load`'s."""
    cache = CACHE.with_name("lfw-dev-every-photo-arcface.npz")
    if cache.exists():
        data = np.load(cache)
        return data["names"], data["photos"], data["vectors"], data["found"]
    from multiprocessing import get_context

    from frs_cli import files

    pairs = [
        (d.name, p)
        for d in sorted(x for x in lfw.iterdir() if x.is_dir())
        for p in sorted(d.glob("*.jpg"))
    ]
    started = time.time()
    with get_context("fork").Pool(os.cpu_count()) as pool:
        results = pool.map(_arcface_photo, [str(p) for _, p in pairs], 16)
    found = np.array([r is not None for r in results])
    vectors = np.array([r if r is not None else np.zeros(512) for r in results], np.float32)
    names = np.array([n for n, _ in pairs])
    photos = np.array([p.name for _, p in pairs])
    print(
        f"ArcFace: encoded {found.sum()} of {len(pairs)} photos in {time.time() - started:.0f} s",
        file=sys.stderr,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    with files.replacing(cache, binary=True) as f:
        np.savez(f, names=names, photos=photos, vectors=vectors, found=found)
    return names, photos, vectors, found


def load_family(family: str = "dlib") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`load`'s (identities, photo names, encodings) of every lfw-dev photo in which the
    `family`'s detector found a face."""
    if family == "dlib":
        return load()
    names, photos, vectors, found = load_arcface()
    return names[found], photos[found], vectors[found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args()
    names, _, vectors = load(args.lfw, args.cache)
    print(f"{len(vectors)} encodings of {len(set(names.tolist()))} identities in {args.cache}")


if __name__ == "__main__":
    main()
