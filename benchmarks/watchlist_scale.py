"""Watchlists of 10k, 100k and 1M faces: build time, open time, RSS, file size, query
latency p50/p99 and recall@1 of the HNSW index against exact search.

    python benchmarks/watchlist_scale.py [--sizes 10000,100000,1000000] [--out results.json]
                                         [--family dlib|arcface]

Vectors are synthetic with the statistics of real encodings: the mean, the covariance
between identities and the covariance within an identity are measured on real dlib
encodings of ../shared/data/lfw-dev (150 identities with several photos; computed
once and cached in the temporary folder, never in the repository), then identity
centres and photos are drawn from those Gaussians, 4 photos per identity. Queries are
new photos of enrolled identities (mated searches). Each size runs in a fresh
process, so RSS is that size's alone. `--family arcface`: 512-d vectors with the
statistics of ArcFace's encodings of the same kind of photos (benchmarks/lfw_encodings.py's
cache), each scaled to length 1 as ArcFace's are, in an ArcFace watchlist.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LFW = ROOT.parent / "shared" / "data" / "lfw-dev"

PER_IDENTITY = 4
QUERIES = 1000
STATS = Path(tempfile.gettempdir()) / "frs-lfw-encoding-stats.npz"
FAMILY = "dlib"  # --family
MODEL_IDS = {"dlib": "synthetic", "arcface": "arcface_w600k_mbf:synthetic"}


def _statistics(groups: list[np.ndarray]) -> dict[str, np.ndarray]:
    centres = np.stack([g.mean(axis=0) for g in groups])
    within = np.concatenate([g - g.mean(axis=0) for g in groups])
    return {
        "mean": centres.mean(axis=0),
        "between": np.cov(centres, rowvar=False),
        "within": np.cov(within, rowvar=False) * len(within) / max(1, len(within) - len(groups)),
    }


def arcface_statistics() -> dict[str, np.ndarray]:
    """As `lfw_statistics`, of ArcFace's encodings of the same 150 identities' photos."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import lfw_encodings

    names, _, vectors, found = lfw_encodings.load_arcface()
    by: dict[str, list[np.ndarray]] = {}
    for n, v, ok in zip(names.tolist(), vectors, found, strict=True):
        if ok:
            by.setdefault(n, []).append(v)
    people = [n for n in sorted(by) if len(by[n]) >= 2][:150]
    return _statistics([np.stack(by[n][:3]) for n in people])


def lfw_statistics() -> dict[str, np.ndarray]:
    """Mean, between- and within-identity covariance of real LFW encodings."""
    if FAMILY == "arcface":
        return arcface_statistics()
    if STATS.exists():
        return dict(np.load(STATS))
    from frs_cli.faces.photos import PhotoJob, encode_photos
    from frs_cli.workers import executors

    people = [p for p in sorted(LFW.iterdir()) if len(list(p.glob("*.jpg"))) >= 2][:150]
    jobs = [PhotoJob(p.name, str(f)) for p in people for f in sorted(p.glob("*.jpg"))[:3]]
    executor = executors.make_executor(2, "hog")
    by_person: dict[str, list[np.ndarray]] = {}
    for r in executors.ordered_map(executor, encode_photos_one, jobs):
        if r.vector is not None:
            by_person.setdefault(r.job.identity, []).append(r.vector)
    executor.shutdown()
    stats = _statistics([np.stack(v) for v in by_person.values() if len(v) >= 2])
    np.savez(STATS, **stats)
    _ = encode_photos
    return stats


def encode_photos_one(job):  # type: ignore[no-untyped-def]
    from frs_cli.faces.photos import encode_photo

    return encode_photo(job, choose="central")


def _factor(cov: np.ndarray) -> np.ndarray:
    return np.linalg.cholesky(cov + np.eye(len(cov)) * 1e-6 * np.trace(cov) / len(cov))


def synthetic(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    stats = lfw_statistics()
    rng = np.random.default_rng(seed)
    between, within = _factor(stats["between"]), _factor(stats["within"])
    identities, dim = n // PER_IDENTITY, len(stats["mean"])
    centres = stats["mean"] + rng.standard_normal((identities, dim)) @ between.T
    faces = np.repeat(centres, PER_IDENTITY, axis=0)
    faces += rng.standard_normal((len(faces), dim)) @ within.T
    names = [f"id{i // PER_IDENTITY:07d}" for i in range(n)]
    picks = rng.integers(0, identities, QUERIES)
    queries = centres[picks] + rng.standard_normal((QUERIES, dim)) @ within.T
    if FAMILY == "arcface":  # ArcFace's encodings have length 1
        faces /= np.linalg.norm(faces, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return names, faces.astype(np.float32), queries.astype(np.float32)


def one_size(n: int, folder: Path) -> dict:
    from frs_cli.watchlist import Watchlist

    names, faces, queries = synthetic(n)
    path = folder / f"wl{n}.db"
    t0 = time.perf_counter()
    with Watchlist.create(path, MODEL_IDS[FAMILY]) as wl:
        for start in range(0, n, 100_000):
            wl.add_vectors(names[start : start + 100_000], faces[start : start + 100_000])
        t_store = time.perf_counter() - t0
        wl.rebuild()
        t_index = time.perf_counter() - t0 - t_store
    t1 = time.perf_counter()
    wl = Watchlist.open(path)
    wl.exact_limit = 0
    wl.index()  # load and check the index, load the store's ids and labels
    t_open = time.perf_counter() - t1
    assert wl._labels is not None
    vectors = wl.vectors  # exact search needs them; the timed open above did not
    # Exact nearest faces, in batches: |a-b|^2 = |a|^2 - 2ab + |b|^2 (|a|^2 is constant).
    norms = np.einsum("ij,ij->i", vectors, vectors)
    exact = []
    for start in range(0, len(queries), 50):
        block = queries[start : start + 50]
        d2 = norms[None, :] - 2 * block @ vectors.T
        exact += [wl._names[wl._labels[int(i)]] for i in np.argmin(d2, axis=1)]
    result: dict = {
        "faces": n,
        "build_store_s": round(t_store, 2),
        "build_index_s": round(t_index, 2),
        "open_s": round(t_open, 3),
        "store_mb": round(path.stat().st_size / 1e6, 1),
        "index_mb": round(wl.index_path.stat().st_size / 1e6, 1),
        "by_ef": {},
    }
    for ef in (32, 64, 128, 160, 192, 256):
        wl.ef = ef
        wl._index.set_ef(max(ef, 32))
        times, hits = [], 0
        for q, want in zip(queries, exact, strict=True):
            t = time.perf_counter()
            got = wl.search(q)[0]
            times.append(time.perf_counter() - t)
            hits += got is not None and got.identity == want
        result["by_ef"][ef] = {
            "p50_ms": round(1000 * float(np.percentile(times, 50)), 3),
            "p99_ms": round(1000 * float(np.percentile(times, 99)), 3),
            "recall_at_1": hits / len(queries),
        }
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    wl.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--family", choices=tuple(MODEL_IDS), default="dlib")
    args = parser.parse_args()
    global FAMILY
    FAMILY = args.family
    if args.one:
        print(json.dumps(one_size(args.one, args.dir)))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, args.sizes.split(",")):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--dir", tmp, "--family", FAMILY],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            r = json.loads(out.stdout)
            results.append(r)
            print(json.dumps(r))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
