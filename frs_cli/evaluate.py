"""1:N evaluation on a folder-per-identity dataset (e.g. LFW): both error rates, the
threshold that gives each, and what they mean for the precision of alerts.

Terms (ISO/IEC 19795-1, NIST FRTE 1:N):
- a *mated* search has its person in the gallery, a *non-mated* search does not;
- FNIR(T): share of mated searches whose rank-1 candidate is not the mate at distance
  <= T (a probe photo in which no face is found counts as a miss);
- FPIR(T): share of non-mated searches whose rank-1 candidate is at distance <= T
  (a probe without a face cannot alert);
- TPIR = 1 - FNIR; precision of alerts at prevalence p (the share of people searched
  who are on the watchlist) = TPIR p / (TPIR p + FPIR (1 - p)).
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frs_cli import images
from frs_cli.enroll import PhotoJob, PhotoResult
from frs_cli.errors import FrsError, UsageError

FPIR_TARGETS = (0.01, 0.003, 0.001)
PREVALENCES = (0.1, 0.01, 0.001, 0.0001, 0.00001)

Mapper = Callable[[Callable[[PhotoJob], PhotoResult], list[PhotoJob]], Iterable[PhotoResult]]


@dataclass(frozen=True)
class Split:
    gallery: dict[str, list[str]]  # identity -> enrolled photos
    mated: list[tuple[str, str]]  # (identity, photo) of gallery identities, not enrolled
    non_mated: list[tuple[str, str]]  # (identity, photo) of identities left out


@dataclass(frozen=True)
class Search:
    identity: str
    photo: str
    mated: bool
    rank1: str | None  # None: no face found in the probe
    rank1_distance: float


@dataclass
class Report:
    dataset: str
    seed: int
    enrol: int
    gallery_share: float
    tolerance: float
    split: Split
    failures_to_enrol: list[str] = field(default_factory=list)
    searches: list[Search] = field(default_factory=list)


def dataset_identities(root: Path) -> dict[str, list[str]]:
    people: dict[str, list[str]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(
            str(p) for p in folder.iterdir() if p.suffix.lower() in images.IMAGE_SUFFIXES
        )
        if photos:
            people[folder.name] = photos
    if not people:
        raise UsageError(f"{root}: no identity folders with photos (expected NAME/*.jpg)")
    return people


def make_split(people: dict[str, list[str]], enrol: int, gallery_share: float, seed: int) -> Split:
    """Enrol the first `enrol` photos of a random `gallery_share` of the identities."""
    names = sorted(people)
    random.Random(seed).shuffle(names)
    cut = round(len(names) * gallery_share)
    in_gallery = set(names[:cut])
    gallery, mated, non_mated = {}, [], []
    for name in sorted(people):
        photos = people[name]
        if name in in_gallery:
            gallery[name] = photos[:enrol]
            mated += [(name, p) for p in photos[enrol:]]
        else:
            non_mated += [(name, p) for p in photos]
    return Split(gallery, mated, non_mated)


def run_evaluation(
    dataset: Path,
    enrol: int,
    gallery_share: float,
    seed: int,
    tolerance: float,
    mapper: Mapper | None = None,
    limit: int | None = None,
) -> Report:
    from frs_cli.enroll import encode_photos

    people = dataset_identities(dataset)
    if limit is not None:
        people = {k: people[k] for k in sorted(people)[:limit]}
    split = make_split(people, enrol, gallery_share, seed)
    report = Report(str(dataset), seed, enrol, gallery_share, tolerance, split)
    jobs = [PhotoJob(name, p) for name, photos in split.gallery.items() for p in photos]
    jobs += [PhotoJob(name, p) for name, p in split.mated + split.non_mated]
    mated_people = set(split.gallery)
    vectors: list[np.ndarray] = []
    labels: list[str] = []
    n_gallery = sum(len(v) for v in split.gallery.values())
    probes: list[tuple[PhotoJob, np.ndarray | None]] = []
    for k, result in enumerate(encode_photos(jobs, mapper, choose="central")):
        if k < n_gallery:
            if result.vector is None:
                report.failures_to_enrol.append(result.job.path)
            else:
                vectors.append(result.vector)
                labels.append(result.job.identity)
        else:
            probes.append((result.job, result.vector))
    if not vectors:
        raise FrsError("no gallery photo could be enrolled")
    gallery = np.stack(vectors)
    label_arr = np.array(labels)
    for job, vec in probes:
        mated = job.identity in mated_people
        if vec is None:
            report.searches.append(Search(job.identity, job.path, mated, None, float("inf")))
            continue
        dist = np.linalg.norm(gallery - vec, axis=1)
        best = int(np.argmin(dist))
        report.searches.append(
            Search(job.identity, job.path, mated, str(label_arr[best]), float(dist[best]))
        )
    return report


# -- metrics --------------------------------------------------------------
def _hit(s: Search, threshold: float) -> bool:
    return s.rank1 == s.identity and s.rank1_distance <= threshold


def fnir(searches: Sequence[Search], threshold: float) -> float:
    mated = [s for s in searches if s.mated]
    return sum(not _hit(s, threshold) for s in mated) / len(mated) if mated else float("nan")


def fpir(searches: Sequence[Search], threshold: float) -> float:
    non = [s for s in searches if not s.mated]
    return sum(s.rank1_distance <= threshold for s in non) / len(non) if non else float("nan")


def rank1_rate(searches: Sequence[Search]) -> float:
    mated = [s for s in searches if s.mated]
    return sum(s.rank1 == s.identity for s in mated) / len(mated) if mated else float("nan")


def det_curve(searches: Sequence[Search]) -> list[tuple[float, float, float]]:
    """(threshold, FPIR, FNIR) at every distinct rank-1 distance."""
    thresholds = sorted({s.rank1_distance for s in searches if np.isfinite(s.rank1_distance)})
    return [(t, fpir(searches, t), fnir(searches, t)) for t in thresholds]


def at_fpir(searches: Sequence[Search], target: float) -> dict[str, float] | None:
    """The largest threshold whose FPIR is at most `target`, and the FNIR there."""
    best = None
    for t, fp, fn in det_curve(searches):
        if fp <= target:
            best = {"fpir_target": target, "threshold": round(t, 4), "fpir": fp, "fnir": fn}
    return best


def precision(tpir: float, fp: float, prevalence: float) -> float:
    denominator = tpir * prevalence + fp * (1 - prevalence)
    return tpir * prevalence / denominator if denominator else float("nan")


def summarise(searches: Sequence[Search], tolerance: float) -> dict[str, Any]:
    mated = [s for s in searches if s.mated]
    non = [s for s in searches if not s.mated]
    fn, fp = fnir(searches, tolerance), fpir(searches, tolerance)
    return {
        "mated_searches": len(mated),
        "non_mated_searches": len(non),
        "failures_to_acquire": {
            "mated": sum(s.rank1 is None for s in mated),
            "non_mated": sum(s.rank1 is None for s in non),
        },
        "rank1_identification_rate": rank1_rate(searches),
        "at_tolerance": {
            "threshold": tolerance,
            "fnir": fn,
            "fpir": fp,
            "mated_misses": sum(not _hit(s, tolerance) for s in mated),
            "non_mated_alerts": sum(s.rank1_distance <= tolerance for s in non),
        },
        "fnir_at_fpir": [at_fpir(searches, t) for t in FPIR_TARGETS],
        "alert_precision_by_prevalence": [
            {"prevalence": p, "precision": precision(1 - fn, fp, p)} for p in PREVALENCES
        ],
    }


def report_dict(report: Report, groups: dict[str, str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "dataset": report.dataset,
        "seed": report.seed,
        "enrol_per_identity": report.enrol,
        "gallery_share": report.gallery_share,
        "gallery_identities": len(report.split.gallery),
        "gallery_faces": sum(len(v) for v in report.split.gallery.values())
        - len(report.failures_to_enrol),
        "failures_to_enrol": report.failures_to_enrol,
        **summarise(report.searches, report.tolerance),
        "det": [
            {"threshold": round(t, 4), "fpir": fp, "fnir": fn}
            for t, fp, fn in det_curve(report.searches)
        ],
        "split": {
            "gallery": report.split.gallery,
            "mated": [p for _, p in report.split.mated],
            "non_mated": [p for _, p in report.split.non_mated],
        },
    }
    if groups is not None:
        data["groups"] = group_rows(report, groups)
    return data


def load_groups(path: Path) -> dict[str, str]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    if not rows or not {"identity", "group"} <= set(rows[0]):
        raise UsageError(f"{path}: expected a CSV with columns identity,group")
    return {r["identity"]: r["group"] for r in rows}


def group_rows(report: Report, groups: dict[str, str]) -> dict[str, Any]:
    by_group: dict[str, list[Search]] = {}
    for s in report.searches:
        by_group.setdefault(groups.get(s.identity, "(no group)"), []).append(s)
    rows = {}
    for name in sorted(by_group):
        searches = by_group[name]
        rows[name] = {
            "mated_searches": sum(s.mated for s in searches),
            "non_mated_searches": sum(not s.mated for s in searches),
            "rank1_identification_rate": rank1_rate(searches),
            "fnir": fnir(searches, report.tolerance),
            "fpir": fpir(searches, report.tolerance),
        }
    spread = {}
    for key in ("fnir", "fpir", "rank1_identification_rate"):
        values = [r[key] for r in rows.values() if not np.isnan(r[key])]
        spread[key] = (max(values) - min(values)) if values else float("nan")
    return {"per_group": rows, "spread": spread}


def plot_det(data: dict[str, Any], path: Path) -> None:
    """A DET curve (FNIR against FPIR, log axes) with the operating point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(d["fpir"], d["fnir"]) for d in data["det"] if d["fpir"] > 0 and d["fnir"] > 0]
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    if points:
        xs, ys = zip(*points, strict=True)
        ax.step(xs, ys, where="post", label="DET")
    op = data["at_tolerance"]
    if op["fpir"] > 0 and op["fnir"] > 0:
        ax.plot(
            [op["fpir"]], [op["fnir"]], "o", color="C3",
            label=f"tolerance {op['threshold']}: FPIR {op['fpir']:.4f}, FNIR {op['fnir']:.4f}",
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FPIR (non-mated searches that alert)")
    ax.set_ylabel("FNIR (mated searches that miss)")
    ax.set_title(
        f"{Path(data['dataset']).name}: {data['gallery_identities']} identities in the gallery"
    )
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
