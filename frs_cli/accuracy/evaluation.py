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

Rules compared on the same split (FNIR at each FPIR target, the best any parameters
give on these searches): the threshold alone; threshold + margin (to the next gallery
identity); + cohort (the margin is also to the nearest face of `--cohort DIR`); and
+ fusion (each probe the mean of two encodings of one person, where identities have
two probe photos). Beside them, the rule `frs scan` would choose from the gallery alone
(calibration.py) with its predicted FPIR and FNIR and the ones measured here.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from frs_cli import files
from frs_cli.accuracy import calibration
from frs_cli.errors import FrsError, UsageError
from frs_cli.faces import families, images
from frs_cli.faces.photos import PhotoJob

FPIR_TARGETS = (0.01, 0.003, 0.001)
PREVALENCES = (0.1, 0.01, 0.001, 0.0001, 0.00001)

# An executor's map, in order: photos to encode, and probes to shrink (--face-px, sizes.py).
Mapper = Callable[[Callable[[Any], Any], list[Any]], Iterable[Any]]


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
    second_distance: float = float("inf")  # the nearest other gallery identity
    cohort_distance: float = float("inf")  # the nearest cohort face (--cohort)
    # What frs scan's margin is measured to (calibration.reference): the mean distance of
    # the next identities after the nearest, without and with the cohort's faces.
    reference: float = float("inf")
    reference_cohort: float = float("inf")
    fused: bool = False  # the probe is the mean of two encodings of one person


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
    fused: list[Search] = field(default_factory=list)
    cohort_faces: int = 0
    calibration: dict[str, Any] = field(default_factory=dict)
    family: str = "dlib"  # the model family that encoded every photo (families.py)
    by_face_px: dict[str, Any] = field(default_factory=dict)  # --face-px (sizes.py)


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
    cohort: Path | None = None,
    family: str = "dlib",
    face_px: tuple[int, ...] = (),
) -> Report:
    from frs_cli.faces.photos import encode_photos

    people = dataset_identities(dataset)
    if limit is not None:
        people = {k: people[k] for k in sorted(people)[:limit]}
    split = make_split(people, enrol, gallery_share, seed)
    report = Report(str(dataset), seed, enrol, gallery_share, tolerance, split, family=family)
    jobs = [PhotoJob(name, p) for name, photos in split.gallery.items() for p in photos]
    jobs += [PhotoJob(name, p) for name, p in split.mated + split.non_mated]
    n_gallery = sum(len(v) for v in split.gallery.values())
    n_probes = len(jobs) - n_gallery
    if cohort is not None:
        jobs += _cohort_jobs(cohort, people)
    mated_people = set(split.gallery)
    vectors: list[np.ndarray] = []
    labels: list[str] = []
    probes: list[tuple[PhotoJob, np.ndarray | None]] = []
    face_h: dict[str, int] = {}  # probe photo -> its face's height (photo pixels)
    cohort_vectors: list[np.ndarray] = []
    for k, result in enumerate(encode_photos(jobs, mapper, "central", family)):
        if k < n_gallery:
            if result.vector is None:
                report.failures_to_enrol.append(result.job.path)
            else:
                vectors.append(result.vector)
                labels.append(result.job.identity)
        elif k < n_gallery + n_probes:
            probes.append((result.job, result.vector))
            if result.box is not None:
                face_h[result.job.path] = result.box.height
        elif result.vector is not None:
            cohort_vectors.append(result.vector)
    if not vectors:
        raise FrsError("no gallery photo could be enrolled")
    gallery = np.stack(vectors)
    label_arr = np.array(labels)
    cohort_arr = np.stack(cohort_vectors) if cohort_vectors else np.zeros((0, gallery.shape[1]))
    report.cohort_faces = len(cohort_arr)
    for job, vec in probes:
        report.searches.append(_search(job.identity, job.path, job.identity in mated_people,
                                       vec, gallery, label_arr, cohort_arr))  # fmt: skip
    # Fusion: the mean of the first two probe encodings of each person that has two.
    by_person: dict[str, list[tuple[str, np.ndarray]]] = {}
    for job, vec in probes:
        if vec is not None:
            by_person.setdefault(job.identity, []).append((job.path, vec))
    for person, views in sorted(by_person.items()):
        if len(views) >= 2:
            mean = fuse(views[0][1], views[1][1], families.get(family))
            report.fused.append(_search(person, f"{views[0][0]} + {views[1][0]}",
                                        person in mated_people, mean, gallery, label_arr,
                                        cohort_arr, fused=True))  # fmt: skip
    # The rule frs scan would choose from this gallery (and cohort) alone.
    codes = {name: i for i, name in enumerate(sorted(set(labels)))}
    ids = np.concatenate([[codes[n] for n in labels], -1 - np.arange(len(cohort_arr))])
    cal = calibration.calibrate(
        ids.astype(np.int64),
        calibration.exact_knn(np.concatenate([gallery, cohort_arr])),
        family=families.get(family),
    )
    rule = calibration.choose(cal, calibration.DEFAULT_FPIR)
    fp, fn = rule_rates(report.searches, rule.threshold, rule.margin, cohort=bool(len(cohort_arr)))
    report.calibration = {
        "rule": rule.to_dict(),
        "predicted_fpir": rule.fpir,
        "measured_fpir": fp,
        "predicted_fnir": rule.fnir,
        "measured_fnir": fn,
    }
    if face_px:
        from frs_cli.accuracy import sizes

        shrunk = [
            sizes.Probe(job.identity, job.path, job.identity in mated_people, face_h[job.path])
            for job, _ in probes
            if job.path in face_h
        ]
        report.by_face_px = sizes.measure(
            shrunk, face_px, rule, family,
            lambda who, photo, mated, vec: _search(who, photo, mated, vec, gallery, label_arr,
                                                   cohort_arr),
            mapper or map, bool(len(cohort_arr)),
        )  # fmt: skip
    return report


def _cohort_jobs(folder: Path, people: dict[str, list[str]]) -> list[PhotoJob]:
    """Every photo under `folder` (recursively); none may be of a dataset identity."""
    photos = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in images.IMAGE_SUFFIXES)
    if not photos:
        raise UsageError(f"{folder}: no photos for the cohort")
    clash = sorted({Path(p).parent.name for p in photos} & set(people))
    if clash:
        raise UsageError(
            f"{folder}: the cohort must hold people outside the dataset; it has {clash[:3]}"
        )
    return [PhotoJob("(cohort)", p) for p in photos]


def _search(
    identity: str,
    photo: str,
    mated: bool,
    vec: np.ndarray | None,
    gallery: np.ndarray,
    labels: np.ndarray,
    cohort: np.ndarray,
    fused: bool = False,
) -> Search:
    if vec is None:
        return Search(identity, photo, mated, None, float("inf"), fused=fused)
    dist = np.linalg.norm(gallery - vec, axis=1)
    best = int(np.argmin(dist))
    # Each other identity at its nearest photo, nearest first; each cohort face its own.
    per: dict[str, float] = {}
    for i in np.argsort(dist, kind="stable"):
        per.setdefault(str(labels[i]), float(dist[i]))
    others = [d for name, d in per.items() if name != str(labels[best])]
    near_cohort = np.sort(np.linalg.norm(cohort - vec, axis=1)) if len(cohort) else np.empty(0)
    with_cohort = sorted([*others, *near_cohort[: calibration.MARGIN_IDENTITIES].tolist()])
    return Search(
        identity,
        photo,
        mated,
        str(labels[best]),
        float(dist[best]),
        others[0] if others else float("inf"),
        float(near_cohort[0]) if len(near_cohort) else float("inf"),
        calibration.reference(others),
        calibration.reference(with_cohort),
        fused,
    )


# -- metrics --------------------------------------------------------------
def _hit(s: Search, threshold: float) -> bool:
    return s.rank1 == s.identity and s.rank1_distance <= threshold


def _competitor(s: Search, cohort: bool) -> float:
    """What the margin is measured to, as frs scan measures it (calibration.reference)."""
    return s.reference_cohort if cohort else s.reference


def rule_rates(
    searches: Sequence[Search], threshold: float, margin: float | None, cohort: bool = False
) -> tuple[float, float]:
    """(FPIR, FNIR) of the rule distance <= threshold and margin >= margin (None: no
    margin); the margin is to the next gallery identity, and the cohort's nearest face
    too when `cohort`."""
    mated = [s for s in searches if s.mated]
    non = [s for s in searches if not s.mated]

    def passes(s: Search) -> bool:
        if s.rank1 is None or s.rank1_distance > threshold:
            return False
        return margin is None or _competitor(s, cohort) - s.rank1_distance >= margin

    fp = sum(passes(s) for s in non) / len(non) if non else float("nan")
    fn = (
        1 - sum(passes(s) and s.rank1 == s.identity for s in mated) / len(mated)
        if mated
        else float("nan")
    )
    return fp, fn


THRESHOLDS = tuple(round(0.30 + 0.005 * i, 3) for i in range(81))  # 0.30 ... 0.70 (dlib)
MARGINS = tuple(round(0.01 * i, 2) for i in range(21))  # 0.00 ... 0.20


def fuse(a: np.ndarray, b: np.ndarray, family: families.Family) -> np.ndarray:
    """Two encodings of one person as one probe: their mean, on the family's scale (the
    mean of two ArcFace encodings is shorter than 1, so nearer everyone: normalised; on
    lfw-dev its FNIR at FPIR 1% came out 0.000 at t 1.075 unnormalised, 0.0045 at t 1.105
    normalised, the same 0.0045 at 0.3%)."""
    mean = (np.asarray(a, np.float64) + np.asarray(b, np.float64)) / 2
    if family.unit:
        mean = mean / np.linalg.norm(mean)
    return mean.astype(np.float32)


def grids(family: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The thresholds (every 0.005, from the family's alert-rule grid to 0.05 past it)
    and margins tried for the best rule at each FPIR."""
    fam = families.get(family)  # dlib's: THRESHOLDS and MARGINS
    first, last = fam.t_grid[0], fam.t_grid[-1] + 0.05
    n = round((last - first) / 0.005) + 1
    return tuple(round(first + 0.005 * i, 3) for i in range(n)), fam.m_grid


def best_rule_at_fpir(
    searches: Sequence[Search], target: float, cohort: bool, family: str = "dlib"
) -> dict[str, float] | None:
    """The threshold and margin with the fewest misses whose FPIR here is <= target."""
    best: dict[str, float] | None = None
    thresholds, margins = grids(family)
    for t in thresholds:
        for m in margins:
            fp, fn = rule_rates(searches, t, m, cohort)
            if fp <= target and (best is None or fn < best["fnir"]):
                best = {"fpir_target": target, "threshold": t, "margin": m, "fpir": fp, "fnir": fn}
    return best


def compare_rules(report: Report) -> dict[str, dict[str, Any]]:
    """FNIR at each FPIR target for each rule, on the same split."""
    rules: dict[str, dict[str, Any]] = {
        "threshold": {"fnir_at_fpir": [at_fpir(report.searches, t) for t in FPIR_TARGETS]},
        "threshold+margin": {
            "fnir_at_fpir": [
                best_rule_at_fpir(report.searches, t, False, report.family) for t in FPIR_TARGETS
            ]
        },
    }
    if report.cohort_faces:
        rules["threshold+margin+cohort"] = {
            "fnir_at_fpir": [
                best_rule_at_fpir(report.searches, t, True, report.family) for t in FPIR_TARGETS
            ]
        }
    if any(s.mated for s in report.fused) and any(not s.mated for s in report.fused):
        name = "fusion of 2+margin" + ("+cohort" if report.cohort_faces else "")
        rules[name] = {
            "fnir_at_fpir": [
                best_rule_at_fpir(report.fused, t, bool(report.cohort_faces), report.family)
                for t in FPIR_TARGETS
            ],
            "mated_searches": sum(s.mated for s in report.fused),
            "non_mated_searches": sum(not s.mated for s in report.fused),
        }
    return rules


def det_margin(
    searches: Sequence[Search], cohort: bool, family: str = "dlib"
) -> list[tuple[float, float]]:
    """(FPIR, FNIR): the lower envelope of threshold + margin over the grids."""
    thresholds, margins = grids(family)
    points = sorted(rule_rates(searches, t, m, cohort) for t in thresholds for m in margins)
    envelope: list[tuple[float, float]] = []
    for fp, fn in points:
        if not envelope or fn < envelope[-1][1]:
            envelope.append((fp, fn))
    return envelope


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
    rules = compare_rules(report)
    default = "threshold+margin+cohort" if report.cohort_faces else "threshold+margin"
    data: dict[str, Any] = {
        "dataset": report.dataset,
        "encoder": report.family,
        "seed": report.seed,
        "enrol_per_identity": report.enrol,
        "gallery_share": report.gallery_share,
        "gallery_identities": len(report.split.gallery),
        "gallery_faces": sum(len(v) for v in report.split.gallery.values())
        - len(report.failures_to_enrol),
        "failures_to_enrol": report.failures_to_enrol,
        **summarise(report.searches, report.tolerance),
        "cohort_faces": report.cohort_faces,
        "rules": rules,
        "scan_rule": report.calibration,
        "det_margin": [
            {"fpir": fp, "fnir": fn}
            for fp, fn in det_margin(report.searches, bool(report.cohort_faces), report.family)
        ],
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
    # `fnir_at_fpir` is for the kind of rule frs scan uses by default (threshold + margin,
    # + cohort when one is given); the threshold alone's stays in `rules`.
    data["fnir_at_fpir"] = rules[default]["fnir_at_fpir"]
    data["fnir_at_fpir_rule"] = default
    if report.by_face_px:
        data["by_face_px"] = report.by_face_px
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
    """Per group of identities: the metrics at the tolerance (as before) and, under
    `at_scan_rule`, FNIR and FPIR at the rule frs scan chose for this gallery, each with
    a 95% interval; `ratio` is the largest group's rate over the smallest's at that rule
    (how many times more often one group is missed, or falsely alerted)."""
    from frs_cli.accuracy.calibration import wilson

    by_group: dict[str, list[Search]] = {}
    for s in report.searches:
        by_group.setdefault(groups.get(s.identity, "(no group)"), []).append(s)
    rule = report.calibration.get("rule") or {}
    threshold, margin = rule.get("threshold"), rule.get("margin")
    cohort = bool(report.cohort_faces)
    rows: dict[str, dict[str, Any]] = {}
    for name in sorted(by_group):
        searches = by_group[name]
        mated = sum(s.mated for s in searches)
        non_mated = len(searches) - mated
        rows[name] = {
            "mated_searches": mated,
            "non_mated_searches": non_mated,
            "rank1_identification_rate": rank1_rate(searches),
            "fnir": fnir(searches, report.tolerance),
            "fpir": fpir(searches, report.tolerance),
        }
        if threshold is not None:
            fp, fn = rule_rates(searches, threshold, margin, cohort)
            rows[name]["at_scan_rule"] = {
                "fnir": fn,
                "fnir_interval": list(wilson(fn, mated)) if mated else None,
                "fpir": fp,
                "fpir_interval": list(wilson(fp, non_mated)) if non_mated else None,
            }
    spread = {}
    for key in ("fnir", "fpir", "rank1_identification_rate"):
        values = [r[key] for r in rows.values() if not np.isnan(r[key])]
        spread[key] = (max(values) - min(values)) if values else float("nan")
    out: dict[str, Any] = {"per_group": rows, "spread": spread}
    if threshold is not None:
        ratio = {}
        for key in ("fnir", "fpir"):
            values = [
                r["at_scan_rule"][key]
                for r in rows.values()
                if not np.isnan(r["at_scan_rule"][key])
            ]
            low = min(values) if values else float("nan")
            ratio[key] = (max(values) / low) if values and low > 0 else None
        out["scan_rule"] = {"threshold": threshold, "margin": margin}
        out["ratio_at_scan_rule"] = ratio
    return out


def plot_det(data: dict[str, Any], path: Path) -> None:
    """A DET curve (FNIR against FPIR, log axes) with the operating point marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    curves = (("det", "threshold"), ("det_margin", f"{data.get('fnir_at_fpir_rule')}"))
    for key, label in curves:
        points = [
            (d["fpir"], d["fnir"]) for d in data.get(key, []) if d["fpir"] > 0 and d["fnir"] > 0
        ]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.step(xs, ys, where="post", label=label)
    scan = data.get("scan_rule") or {}
    if scan.get("measured_fpir") and scan.get("measured_fnir"):
        ax.plot(
            [scan["measured_fpir"]], [scan["measured_fnir"]], "s", color="C2",
            label=f"frs scan's rule (predicted FPIR {scan['predicted_fpir']:.4f})",
        )  # fmt: skip
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
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    files.write_output(path, png.getvalue())
