"""dlib's encoder against ArcFace MobileFaceNet (SCRFD faces, five-landmark alignment) on
../shared/data/lfw-dev, threshold only, issue 21's composition (issue 30's table).

    python benchmarks/families.py

Every photo is encoded once per family (benchmarks/lfw_encodings.py: `load` for dlib,
`load_arcface` for ArcFace, both the face nearest the middle). Identities with two or
more photos are split by name into two halves (even and odd positions; "held-out" swaps
them). Gallery: the first photo of each identity of the enrolled half plus every
single-photo identity; mated probes: the other photos of the enrolled half; non-mated
probes: every photo of the other half. A probe in which no face is found is a miss when
mated and no alert when not; a gallery photo without a face enrols nobody. Distances are
Euclidean (ArcFace's encodings have length 1: 0 to 2). `lfw_encodings.MERGED`: one person filed
under two names, found by eye among the closest pairs of different names.

Per family and half: rank-1 (mated probes whose nearest identity is their own), FNIR at
the largest threshold whose FPIR is at most 1%, 0.3% and 0.1%, and FNIR for women and
men (../shared/data/lfw-dev-gender.csv) at the 1% threshold.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import lfw_encodings  # noqa: E402

GENDER = ROOT.parent / "shared" / "data" / "lfw-dev-gender.csv"
TARGETS = (0.01, 0.003, 0.001)


def families() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """family -> (identities, photo names, vectors, found), over the same photos."""
    names, photos, arc, found = lfw_encodings.load_arcface()
    d_names, d_photos, d_vectors = lfw_encodings.load()
    at = {
        (n, p): i for i, (n, p) in enumerate(zip(d_names.tolist(), d_photos.tolist(), strict=True))
    }
    dlib = np.zeros((len(names), d_vectors.shape[1]), np.float32)
    d_found = np.zeros(len(names), bool)
    for k, key in enumerate(zip(names.tolist(), photos.tolist(), strict=True)):
        if key in at:
            dlib[k], d_found[k] = d_vectors[at[key]], True
    return {"dlib": (names, photos, dlib, d_found), "arcface": (names, photos, arc, found)}


def composition(names: np.ndarray, swap: bool) -> tuple[list[int], list[int], list[int]]:
    people: dict[str, list[int]] = {}
    for i, n in enumerate(names.tolist()):
        people.setdefault(n, []).append(i)
    multi = sorted(n for n, ix in people.items() if len(ix) >= 2)
    single = sorted(n for n, ix in people.items() if len(ix) == 1)
    enrolled, other = (multi[1::2], multi[0::2]) if swap else (multi[0::2], multi[1::2])
    gallery = [people[n][0] for n in enrolled + single]
    mated = [i for n in enrolled for i in people[n][1:]]
    non_mated = [i for n in other for i in people[n]]
    return gallery, mated, non_mated


def nearest(
    probes: np.ndarray, gallery: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per probe: the nearest gallery face's label and distance (in blocks)."""
    near_label, near_dist = [], []
    g2 = (gallery.astype(np.float64) ** 2).sum(axis=1)
    for start in range(0, len(probes), 512):
        p = probes[start : start + 512].astype(np.float64)
        d2 = (p**2).sum(axis=1)[:, None] + g2[None, :] - 2 * p @ gallery.T.astype(np.float64)
        k = np.argmin(d2, axis=1)
        near_label.append(labels[k])
        near_dist.append(np.sqrt(np.maximum(d2[np.arange(len(p)), k], 0)))
    return np.concatenate(near_label), np.concatenate(near_dist)


def measure(family: tuple, swap: bool, groups: dict[str, str]) -> dict[str, object]:
    names, _, vectors, found = family
    # Issue 21's halves from the names as LFW files them; who is who with one person
    # filed under two names merged (a probe of someone listed under the other is mated).
    gallery, mated, non_mated = composition(names, swap)
    names = lfw_encodings.merged(names)
    listed = set(names[gallery].tolist())
    mated += [i for i in non_mated if names[i] in listed]
    non_mated = [i for i in non_mated if names[i] not in listed]
    gallery = [i for i in gallery if found[i]]
    labels = names[gallery]
    m_found = np.array([found[i] for i in mated])
    m_label, m_dist = nearest(vectors[mated], vectors[gallery], labels)
    m_right = (m_label == names[mated]) & m_found
    n_found = np.array([found[i] for i in non_mated])
    _, n_dist = nearest(vectors[non_mated], vectors[gallery], labels)
    n_dist = np.where(n_found, n_dist, np.inf)  # no face: no alert
    m_dist = np.where(m_found, m_dist, np.inf)
    out: dict[str, object] = {
        "gallery": len(gallery), "mated": len(mated), "non_mated": len(non_mated),
        "rank1": float(m_right[m_found].mean()),
    }  # fmt: skip
    ordered = np.sort(n_dist)
    for target in TARGETS:
        allowed = int(np.floor(target * len(n_dist)))  # false alerts within the target
        threshold = ordered[allowed] - 1e-9 if allowed < len(ordered) else np.inf
        hit = m_right & (m_dist <= threshold)
        out[f"fnir@{target:g}"] = (float(1 - hit.mean()), float(threshold))
        if target == TARGETS[0]:
            for group in ("female", "male"):
                mine = np.array([groups.get(n) == group for n in names[mated]])
                out[f"fnir_{group}@{target:g}"] = float(1 - hit[mine].mean())
    return out


def main() -> None:
    with open(GENDER, newline="") as f:
        groups = {r["identity"]: r["group"] for r in csv.DictReader(f)}
    print("| encoder | half | rank-1 | FNIR @ FPIR 1% | @ 0.3% | @ 0.1% | FNIR women / men @ 1% |")
    print("|---|---|---|---|---|---|---|")
    for name, family in families().items():
        for half, swap in (("dev", False), ("held-out", True)):
            m = measure(family, swap, groups)
            cells = [f"{m[f'fnir@{t:g}'][0]:.3f} (t {m[f'fnir@{t:g}'][1]:.3f})" for t in TARGETS]  # type: ignore[index]
            print(
                f"| {name} | {half} | {m['rank1']:.3f} | {' | '.join(cells)} | "
                f"{m['fnir_female@0.01']:.3f} / {m['fnir_male@0.01']:.3f} |"
            )


if __name__ == "__main__":
    main()
