"""The alert rule on LFW (../shared/data/lfw-dev): reproduces docs/accuracy.md's tables.

    python benchmarks/alert_rule.py [--lfw DIR] [--cache FILE] [--tables]

1. Encodes up to 3 photos per identity with frs's own photo path (the central face),
   cached in --cache (default ~/.cache/frs/lfw-dev-encodings.npz; ~5 min on 2 cores).
2. FPIR of the fixed thresholds 0.6 / 0.5 / 0.45 against galleries of 100, 1,000 and
   2,450 identities (1 photo each; non-mated probes: first photos of the others).
3. At ~1,400 gallery identities: FNIR at FPIR 1% for the threshold alone and for the
   threshold + margin chosen by frs's calibration, and the FPIR the calibration
   predicted beside the FPIR measured on real non-mated probes (also at 400).
With --footage: a watchlist of every lfw-dev identity (up to 3 photos each) scanned over
the shared footage at the default rule and at face_recognition's 0.6 (none of the
footage's people is on it: every alert is false).
With --tables: prints frs_cli/faces/dlib_tables.py (per-comparison impostor and same-person
distance distributions: numbers only, never an encoding).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from frs_cli.accuracy import calibration  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def encode(lfw: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    if cache.exists():
        data = np.load(cache)
        return data["names"], data["vectors"]
    from multiprocessing import get_context

    from frs_cli.faces import dlib_models
    from frs_cli.faces.photos import PhotoJob, encode_photo

    jobs = [
        PhotoJob(d.name, str(p))
        for d in sorted(x for x in lfw.iterdir() if x.is_dir())
        for p in sorted(d.glob("*.jpg"))[:3]
    ]
    started = time.time()
    with get_context("fork").Pool(os.cpu_count(), initializer=dlib_models.preload) as pool:
        results = pool.map(functools.partial(encode_photo, choose="central"), jobs, 16)
    kept = [r for r in results if r.vector is not None]
    names = np.array([r.job.identity for r in kept])
    vectors = np.array([r.vector for r in kept], np.float32)
    print(f"encoded {len(kept)} of {len(jobs)} photos in {time.time() - started:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, names=names, vectors=vectors)
    return names, vectors


def first_photos(names: np.ndarray) -> dict[str, list[int]]:
    by: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        by.setdefault(str(n), []).append(i)
    return by


def nearest_two(queries: np.ndarray, gallery: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per query: index of the nearest gallery face, its distance, the second distance
    (one face per identity in these galleries)."""
    d = np.sqrt(
        np.maximum(
            (queries**2).sum(1)[:, None] + (gallery**2).sum(1)[None, :] - 2 * queries @ gallery.T,
            0,
        )
    )
    order = np.argsort(d, axis=1)[:, :2]
    rows = np.arange(len(d))
    return order[:, 0], d[rows, order[:, 0]], d[rows, order[:, 1]]


def nearest_cohort(queries: np.ndarray, cohort: np.ndarray) -> np.ndarray:
    if not len(cohort):
        return np.full(len(queries), np.inf)
    return nearest_two(queries, cohort)[1]


def experiment(names, vectors, size: int, seed: int, cohort_size: int = 0) -> dict[str, object]:
    by = first_photos(names)
    people = sorted(by)
    rng = np.random.default_rng(seed)
    rng.shuffle(people)
    gallery_people = people[:size]
    cohort_people = people[size : size + cohort_size]
    others = people[size + cohort_size :]
    g_idx = np.array([by[p][0] for p in gallery_people])
    gallery = vectors[g_idx]
    cohort = vectors[np.array([by[p][0] for p in cohort_people], dtype=int)].reshape(-1, 128)
    mated = [(k, by[p][1]) for k, p in enumerate(gallery_people) if len(by[p]) > 1]
    non_mated = np.array([by[p][0] for p in others])
    nm_first, nm_d1, nm_d2 = nearest_two(vectors[non_mated], gallery)
    nm_d2 = np.minimum(nm_d2, nearest_cohort(vectors[non_mated], cohort))
    m_pos = np.array([k for k, _ in mated])
    m_vectors = vectors[np.array([i for _, i in mated])]
    m_first, m_d1, m_d2 = nearest_two(m_vectors, gallery)
    m_d2 = np.minimum(m_d2, nearest_cohort(m_vectors, cohort))
    out: dict[str, object] = {
        "gallery": size, "cohort": cohort_size, "mated": len(mated), "non_mated": len(non_mated)
    }  # fmt: skip
    out["fpir_fixed"] = {t: float((nm_d1 <= t).mean()) for t in (0.6, 0.5, 0.45)}

    def rates(t: float, m: float) -> tuple[float, float]:
        fp = float(((nm_d1 <= t) & (nm_d2 - nm_d1 >= m)).mean())
        hit = (m_first == m_pos) & (m_d1 <= t) & (m_d2 - m_d1 >= m)
        return fp, 1.0 - float(hit.mean())

    best_thr = min(
        (rates(t, 0.0)[1], t) for t in np.arange(0.30, 0.66, 0.005) if rates(t, 0.0)[0] <= 0.01
    )
    out["threshold_only_at_fpir_1pct"] = {"fnir": best_thr[0], "t": round(best_thr[1], 3)}
    best_both = min(
        (rates(t, m)[1], t, m)
        for t in np.arange(0.30, 0.66, 0.01)
        for m in np.arange(0.0, 0.151, 0.01)
        if rates(t, m)[0] <= 0.01
    )
    out["oracle_threshold_margin_at_fpir_1pct"] = {
        "fnir": best_both[0], "t": round(best_both[1], 2), "m": round(best_both[2], 2)
    }  # fmt: skip
    # frs's own choice, from the gallery alone (1 photo each: FNIR from the table).
    labels = np.concatenate([np.arange(size), -1 - np.arange(cohort_size)])
    cal = calibration.calibrate(labels, calibration.exact_knn(np.concatenate([gallery, cohort])))
    rule = calibration.choose(cal, 0.01)
    fp, fn = rates(rule.threshold, rule.margin)
    out["frs_rule"] = {
        "t": rule.threshold, "m": rule.margin, "predicted_fpir": rule.fpir,
        "measured_fpir": fp, "predicted_fnir": rule.fnir, "measured_fnir": fn,
        "source": rule.source,
    }  # fmt: skip
    return out


def arcface_encodings(lfw: Path) -> tuple[np.ndarray, np.ndarray]:
    """Up to 3 photos per identity encoded by ArcFace (the central face SCRFD finds), as
    `encode` gives dlib's: from lfw_encodings.load_arcface's cache of every photo."""
    from lfw_encodings import load_arcface, merged

    names, _, vectors, found = load_arcface(lfw)
    names = merged(names)  # one person under two names is not an impostor pair
    keep = [i for v in first_photos(names[found]).values() for i in v[:3]]
    return names[found][keep], vectors[found][keep]


def tables(names: np.ndarray, vectors: np.ndarray, last: float = 1.0, step: float = 0.01) -> str:
    """Per-comparison CDFs every `step` from 0 to `last`: impostor pairs (first photos of
    different identities), genuine pairs (two photos of one identity)."""
    by = first_photos(names)
    firsts = vectors[np.array([v[0] for v in by.values()])]
    d = np.sqrt(
        np.maximum(
            (firsts**2).sum(1)[:, None] + (firsts**2).sum(1)[None] - 2 * firsts @ firsts.T, 0
        )
    )
    impostor = d[np.triu_indices(len(firsts), 1)]
    genuine = np.array(
        [
            np.linalg.norm(vectors[a] - vectors[b])
            for v in by.values()
            for i, a in enumerate(v)
            for b in v[i + 1 :]
        ]
    )
    grid = np.round(np.arange(0, last + step / 100, step), 2)

    def cdf(values: np.ndarray) -> str:
        rows = [float((values <= x).mean()) for x in grid]
        return ",\n    ".join(f"{r:.3e}" for r in rows)

    return (
        f"# impostor pairs: {len(impostor):,}; genuine pairs: {len(genuine):,}\n"
        f"IMPOSTOR_CDF = (\n    {cdf(impostor)},\n)\nGENUINE_CDF = (\n    {cdf(genuine)},\n)\n"
    )


def footage(names: np.ndarray, vectors: np.ndarray, folder: Path) -> None:
    import subprocess
    import tempfile

    from frs_cli.faces import dlib_models
    from frs_cli.watchlist import Watchlist

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lfw.db"
        with Watchlist.create(path, dlib_models.encoder_model_id()) as wl:
            wl.add_vectors([str(n) for n in names], vectors, source="lfw-dev")
        clips = sorted(str(p) for p in folder.glob("*.mp4"))
        for extra in ([], ["--tolerance", "0.6"]):
            out = subprocess.run(
                [sys.executable, "-m", "frs_cli", "scan", "-w", str(path), *extra, *clips],
                capture_output=True, text=True, cwd=ROOT,
            )  # fmt: skip
            rows = [r for r in out.stdout.splitlines()[1:] if r]
            print(f"{' '.join(extra) or 'default rule'}: {len(rows)} alerts")
            print(out.stderr)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lfw", type=Path, default=ROOT.parent / "shared/data/lfw-dev")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache/frs/lfw-dev-encodings.npz"
    )
    parser.add_argument("--tables", action="store_true")
    parser.add_argument("--footage", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", choices=("dlib", "arcface"), default="dlib")
    args = parser.parse_args()
    if args.family == "arcface":
        names, vectors = arcface_encodings(args.lfw)
    else:
        names, vectors = encode(args.lfw, args.cache)
    if args.tables:
        arc = args.family == "arcface"  # unit vectors: distances up to 2
        print(tables(names, vectors, *((2.0, 0.02) if arc else (1.0, 0.01))))
        return
    if args.footage:
        footage(names, vectors, args.lfw.parent / "footage")
        return
    for size, cohort in [(n, 0) for n in (100, 400, 1000, 1400, 2450)] + [
        (n, 1000) for n in (100, 400, 1400)
    ]:
        runs = [
            experiment(names, vectors, size, s, cohort) for s in range(args.seed, args.seed + 5)
        ]
        for run in runs:
            print(run, flush=True)
        mean = {
            key: round(float(np.mean([r["frs_rule"][key] for r in runs])), 4)  # type: ignore[index]
            for key in ("predicted_fpir", "measured_fpir", "predicted_fnir", "measured_fnir")
        }
        what = f"gallery {size}" + (f" + cohort {cohort}" if cohort else "")
        print(f"{what}, mean of 5 splits: frs rule {mean}", flush=True)


if __name__ == "__main__":
    main()
