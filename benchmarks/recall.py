"""Stated against measured error rates of frs scan's alert rule, for several watchlist
compositions on ../shared/data/lfw-dev (issue 21; docs/accuracy.md).

    python benchmarks/recall.py [--split dev|held-out|both] [--family dlib|arcface|both]
                                [--fpir 0.01] [--levers]

Every photo is encoded once (benchmarks/lfw_encodings.py) and searched in NumPy. The
identities with two or more photos are split in two halves by name (even and odd
positions of the sorted list: `--split held-out` swaps them):
- gallery: the first photo of each identity of the enrolled half, plus every
  single-photo identity (one photo each, as an analyst's big list);
- mated probes: the other photos of the enrolled half;
- non-mated probes: every photo of the other half.
Compositions: that gallery; the same with two persons of interest (Serena_Williams and
John_Ashcroft, or the first two identities with 10+ photos of the held-out half) enrolled
with 5 photos each; 20 identities (a small list: 20 of the enrolled half); the gallery
with 1,000 of its single-photo identities moved to a cohort. For each: the rule frs chooses at --fpir 0.01, the FPIR and FNIR it states
(with intervals) and the FPIR and FNIR measured on the probes, and per gender
(../shared/data/lfw-dev-gender.csv) at that rule; per model family (`--family`: dlib,
ArcFace, or both), each over the photos in which its detector found a face, with the
labelling errors in `lfw_encodings.MERGED` merged (unmerged, Eduardo Duhalde's 14 photos
were 14 of ArcFace's 26 "false" alerts in the held-out half at the rule for 1%).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import lfw_encodings  # noqa: E402

from frs_cli.accuracy import calibration  # noqa: E402
from frs_cli.faces import families  # noqa: E402
from frs_cli.faces.distances import distances  # noqa: E402

GENDER = ROOT.parent / "shared" / "data" / "lfw-dev-gender.csv"
POI = ("Serena_Williams", "John_Ashcroft")


def by_identity(names: np.ndarray) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, n in enumerate(names.tolist()):
        out.setdefault(n, []).append(i)
    return out


def compositions(names: np.ndarray, swap: bool) -> dict[str, dict[str, object]]:
    """name -> {gallery: indices, cohort: indices, mated: indices, non_mated: indices}."""
    people = by_identity(names)
    multi = sorted(n for n, ix in people.items() if len(ix) >= 2)
    single = sorted(n for n, ix in people.items() if len(ix) == 1)
    enrolled, other = multi[0::2], multi[1::2]
    if swap:
        enrolled, other = other, enrolled
    base_gallery = [people[n][0] for n in enrolled] + [people[n][0] for n in single]
    mated = [i for n in enrolled for i in people[n][1:]]
    non_mated = [i for n in other for i in people[n]]
    out: dict[str, dict[str, object]] = {
        "1 photo each": {"gallery": base_gallery, "mated": mated},
    }
    # Two persons of interest, enrolled with 5 photos each (moved from the other half if
    # that is where the split put them); their other photos are mated searches.
    poi_photos = [i for p in POI for i in people[p][:5]]
    poi_rest = [i for p in POI for i in people[p][5:]]
    out["+ Serena_Williams and John_Ashcroft, 5 photos each"] = {
        "gallery": sorted(set(base_gallery) | set(poi_photos)),
        "mated": sorted((set(mated) - set(poi_photos)) | set(poi_rest)),
        "non_mated": [i for n in other if n not in POI for i in people[n]],
    }
    small = enrolled[:20]
    out["20 identities, 1 photo each"] = {
        "gallery": [people[n][0] for n in small],
        "mated": [i for n in small for i in people[n][1:]],
    }
    # A cohort: 1,000 single-photo identities move from the list to the cohort.
    cohort = [people[n][0] for n in single[:1000]]
    out["+ cohort of 1,000 (others listed)"] = {
        "gallery": [people[n][0] for n in enrolled] + [people[n][0] for n in single[1000:]],
        "cohort": cohort,
        "mated": mated,
    }
    for comp in out.values():
        comp.setdefault("non_mated", non_mated)
        comp.setdefault("cohort", [])
    return out


def search(vectors, names, gallery, cohort, probes):
    """Per probe: the nearest listed identity, its distance d1, and the reference of the
    identities and cohort faces after it, as frs scan measures its margin to."""
    g_names = names[gallery]
    ids, inverse = np.unique(g_names, return_inverse=True)
    d = distances(vectors[probes], vectors[gallery])
    per_id = np.full((len(probes), len(ids)), np.inf)
    np.minimum.at(per_id.T, inverse, d.T)  # nearest face of each identity
    k = calibration.MARGIN_IDENTITIES
    near = np.sort(per_id, axis=1)[:, : k + 1]
    if len(cohort):
        faces = np.sort(distances(vectors[probes], vectors[cohort]), axis=1)[:, :k]
        near = np.concatenate([near[:, :1], np.sort(np.concatenate([near[:, 1:], faces], 1), 1)], 1)
    d1 = near[:, 0]
    ref = np.array([calibration.reference(row[1:].tolist()) for row in near])
    return ids[np.argmin(per_id, axis=1)], d1, ref


def rates(vectors, names, comp, rule, groups=None):
    gallery, cohort = comp["gallery"], comp["cohort"]
    out = {}
    for kind in ("mated", "non_mated"):
        probes = np.array(comp[kind])
        who, d1, d2 = search(vectors, names, gallery, cohort, probes)
        alert = (d1 <= rule.threshold) & (d2 - d1 >= (rule.margin or 0.0))
        right = who == names[probes]
        out[kind] = (alert, right, names[probes])
    fpir = float(out["non_mated"][0].mean())
    fnir = float(1 - (out["mated"][0] & out["mated"][1]).mean())
    result = {"fpir": fpir, "fnir": fnir, "mated": len(comp["mated"]),
              "non_mated": len(comp["non_mated"])}  # fmt: skip
    if groups:
        for g in sorted(set(groups.values())):
            nm = np.array([groups.get(n) == g for n in out["non_mated"][2]])
            mm = np.array([groups.get(n) == g for n in out["mated"][2]])
            result[g] = {
                "fpir": float(out["non_mated"][0][nm].mean()) if nm.any() else float("nan"),
                "fnir": float(1 - (out["mated"][0] & out["mated"][1])[mm].mean())
                if mm.any()
                else float("nan"),
            }
    return result


def calibrate(vectors, names, comp, family=families.DLIB):
    gallery, cohort = np.array(comp["gallery"]), np.array(comp["cohort"], dtype=int)
    codes = {n: i for i, n in enumerate(sorted(set(names[gallery].tolist())))}
    labels = np.concatenate([[codes[n] for n in names[gallery]], -1 - np.arange(len(cohort))])
    both = np.concatenate([vectors[gallery], vectors[cohort]])
    return calibration.calibrate(
        labels.astype(np.int64), calibration.exact_knn(both), family=family
    )


def load_groups() -> dict[str, str]:
    import csv

    with open(GENDER, newline="") as f:
        return {r["identity"]: r["group"] for r in csv.DictReader(f)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "held-out", "both"), default="both")
    parser.add_argument("--fpir", type=float, default=0.01)
    parser.add_argument("--levers", action="store_true", help="measure the recall levers")
    parser.add_argument("--family", choices=("dlib", "arcface", "both"), default="both")
    args = parser.parse_args()
    if args.levers:
        names, photos, vectors = lfw_encodings.load()
        flipped = lfw_encodings.load_mirrored(names, photos, vectors)
        for split in ("dev", "held-out"):
            print(f"## levers, split {split}: FNIR at measured FPIR <= 0.01 (best cell)")
            levers(names, vectors, flipped, split == "held-out")
        return
    groups = load_groups() if GENDER.exists() else None
    splits = ["dev", "held-out"] if args.split == "both" else [args.split]
    for family in ("dlib", "arcface") if args.family == "both" else (args.family,):
        names, _, vectors = lfw_encodings.load_family(family)
        for split in splits:
            table(families.get(family), names, vectors, split, args.fpir, groups)


def table(family, names, vectors, split, fpir, groups) -> None:
    """One split's table: the rule chosen per composition, stated and measured."""
    print(f"## {family.name}, split: {split}, --fpir {fpir:g}")
    print("| composition | ids | rule | stated FPIR | stated FNIR | measured FPIR | "
          "measured FNIR | FNIR f / m | FPIR f / m |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    # The compositions from the names as LFW files them (issue 21's halves); who is who
    # from the names with one person under two names merged.
    comps = compositions(names, split == "held-out")
    names = lfw_encodings.merged(names)
    for comp in comps.values():  # a probe of someone listed under another name is mated
        listed = set(names[np.array(comp["gallery"])].tolist())
        moved = [i for i in comp["non_mated"] if names[i] in listed]
        comp["mated"] = sorted([*comp["mated"], *moved])
        comp["non_mated"] = [i for i in comp["non_mated"] if names[i] not in listed]
    for name, comp in comps.items():
        started = time.perf_counter()
        cal = calibrate(vectors, names, comp, family)
        rule = calibration.choose(cal, fpir)
        m = rates(vectors, names, comp, rule, groups)
        ids = len(set(names[np.array(comp["gallery"])].tolist()))
        lo_p, hi_p = getattr(rule, "fpir_interval", None) or (float("nan"), float("nan"))
        lo_n, hi_n = getattr(rule, "fnir_interval", None) or (float("nan"), float("nan"))
        gf = (
            f"{m['female']['fnir']:.3f} / {m['male']['fnir']:.3f} | "
            f"{m['female']['fpir']:.4f} / {m['male']['fpir']:.4f}"
            if groups
            else "- | -"
        )
        print(
            f"| {name} | {ids} | t {rule.threshold:.2f}, m {rule.margin or 0:.2f} | "
            f"{rule.fpir:.4f} [{lo_p:.4f}, {hi_p:.4f}] | {rule.fnir:.3f} [{lo_n:.3f}, "
            f"{hi_n:.3f}] | {m['fpir']:.4f} ({m['non_mated']}) | {m['fnir']:.3f} "
            f"({m['mated']}) | {gf} |"
        )
        print(f"  ({time.perf_counter() - started:.1f} s; {rule.source})", file=sys.stderr)


def oracle(fp_scores, fn_scores, target=0.01):
    """The fewest misses over a (t, m) grid whose measured FPIR is <= target:
    scores are (d1, d2, right) arrays for non-mated and mated searches."""
    best = None
    d1n, d2n = fp_scores
    d1m, d2m, right = fn_scores
    ts = np.quantile(d1n, np.linspace(0.0, 0.6, 150))
    ms = np.linspace(0, float(np.quantile(d2n - d1n, 0.999)), 60)
    for t in ts:
        for m in ms:
            fp = float(((d1n <= t) & (d2n - d1n >= m)).mean())
            if fp > target:
                continue
            fn = float(1 - ((d1m <= t) & (d2m - d1m >= m) & right).mean())
            if best is None or fn < best[0]:
                best = (fn, fp, float(t), float(m))
    return best


def levers(names, vectors, flipped, split: bool) -> None:
    """FNIR at measured FPIR <= 1% (best cell, an upper bound of what a calibrated rule
    gets) for the plain distances, mirrored enrolment photos, and per-identity Z-scores."""
    comp = compositions(names, split)["1 photo each"]
    gallery = np.array(comp["gallery"])
    labels = names[gallery]
    ids, inverse = np.unique(labels, return_inverse=True)
    dg = distances(vectors[gallery], vectors[gallery])
    np.fill_diagonal(dg, np.nan)
    mu, sd = np.nanmean(dg, axis=1), np.nanstd(dg, axis=1)  # one photo per identity

    def scores(probes, gallery_vectors, z=False, k=1):
        d = distances(vectors[probes], gallery_vectors)
        if gallery_vectors.shape[0] != len(gallery):  # original + mirrored, per identity
            d = np.minimum(d[:, : len(gallery)], d[:, len(gallery) :])
        if z:
            d = (d - mu[None, :]) / sd[None, :]
        per = np.full((len(probes), len(ids)), np.inf)
        np.minimum.at(per.T, inverse, d.T)
        near = np.sort(per, axis=1)
        who = ids[np.argmin(per, axis=1)]
        return near[:, 0], near[:, 1 : 1 + k].mean(axis=1), who == names[probes]

    non, mated = np.array(comp["non_mated"]), np.array(comp["mated"])
    both = np.concatenate([vectors[gallery], flipped[gallery]])
    variants = [("margin to the next identity", vectors[gallery], False, 1)]
    variants += [(f"margin to the mean of the next {k}", vectors[gallery], False, k)
                 for k in (2, 4, 8, 16)]  # fmt: skip
    variants += [("+ mirrored enrolment", both, False, 1),
                 ("per-identity Z-score", vectors[gallery], True, 1)]  # fmt: skip
    for what, gv, z, k in variants:
        n1, n2, _ = scores(non, gv, z, k)
        best = oracle((n1, n2), scores(mated, gv, z, k))
        print(
            f"  {what}: FNIR {best[0]:.3f} at FPIR {best[1]:.4f} (t {best[2]:.3f}, m {best[3]:.3f})"
        )


if __name__ == "__main__":
    main()
