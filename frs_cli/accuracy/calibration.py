"""The alert rule, chosen for each watchlist to hold a stated false-alert rate.

An alert needs the nearest identity within distance `t` *and* the next identity at
least `m` farther (the margin). In 1:N search the chance that *some* identity falls
within a fixed threshold grows with the watchlist (docs/accuracy.md: at 0.6 most
searches of unlisted people alert against a few thousand identities), so `t` and `m`
are chosen per watchlist:

- FPIR (false positive identification rate, per face of an unlisted person) is
  estimated by *leave-identity-out* searches: each enrolled face is searched against
  the other identities, as if its person were not on the list.
- FNIR (misses, per face of a listed person) is estimated from the watchlist's own
  geometry and a table of same-person distances (the family's `GENUINE_CDF`, in
  faces/dlib_tables.py for dlib): a listed person's face lies at a same-person distance
  from their photo and must beat the nearest other identity by the margin. Where identities have two or more photos,
  *leave-one-photo-out* searches measure it directly; they are blended in with the
  weight of their number against `PRIOR_SEARCHES` (a few persons of interest with five
  photos give ten searches: too few to see a rate, and on lfw-dev they made the
  estimate 0.00 where 0.71 was measured).
- Where the watchlist is too small for the target (fewer than `MIN_SEARCHES_PER_RATE`
  / target searches), FPIR comes from a table of per-comparison impostor rates instead
  (`IMPOSTOR_CDF`), with the threshold alone.

Among the (t, m) whose estimated FPIR is at most the target (with caution for the
sampling error), the one with the fewest estimated misses is used. Each stated rate
comes with a 95% interval. Both tables are numbers measured on a public photo set, never
anyone's encoding (docs/accuracy.md says how they were made).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from frs_cli.faces import bands
from frs_cli.faces.families import DLIB, Family, get

# Each family's grids and tables (families.py); dlib's, as named before families came:
T_GRID = DLIB.t_grid  # 0.30 ... 0.65
M_GRID = DLIB.m_grid  # 0.00 ... 0.20
# The margin is measured to the mean distance of the next this-many identities (or cohort
# faces), not to the next one alone: a face's distance to one look-alike is noisy, to
# eight is a steadier measure of how crowded its neighbourhood is. On lfw-dev (2,429
# identities, one photo each) the fewest misses at a measured FPIR <= 1% went from 0.388
# to 0.358 (dev half) and 0.395 to 0.365 (held-out half); 2 and 16 gave 0.372 and 0.363,
# 0.368 and 0.356 (benchmarks/recall.py --levers; docs/accuracy.md).
MARGIN_IDENTITIES = 8
MIN_SEARCHES_PER_RATE = 10  # leave-identity-out searches needed per unit of 1/target
MAX_PROBES = 5000  # faces searched for the estimates (a random sample beyond this)
DEFAULT_FPIR = 0.01
# A (t, m) holds the target only if its false alerts plus CAUTION standard deviations
# (Poisson) do: choosing the best of many cells on one sample picks cells whose estimate
# came out low (on lfw-dev, 1,400 identities, 5 splits: the point estimate alone gave
# measured FPIR 0.013 on average for a 0.01 target; with CAUTION 1: 0.011).
CAUTION = 1.5
# The same-person model counts as this many leave-one-photo-out searches when the two
# are blended: with 10 searches (two persons of interest with 5 photos) the estimate is
# 95% the model's, with 2,000 it is 91% the searches'. On lfw-dev the model alone was
# within 0.03 of the measured FNIR (docs/accuracy.md).
PRIOR_SEARCHES = 200
Z95 = 1.96
# A table-based FPIR (small watchlists) has no sampling interval of its own: its interval
# is the spread of measured / stated over 40 random 20-identity lists of lfw-dev
# (benchmarks/recall.py --small), 0.25x to 2x.
TABLE_FPIR_SPREAD = (0.25, 2.0)


@dataclass(frozen=True)
class BandRate:
    """The rule for faces of one size band (faces/bands.py) and what it costs there."""

    band: str  # e.g. "24-32" (px, the detector's box), "24-32 high" (bands.key)
    threshold: float | None  # None: too small to identify, never alerted on
    fnir: float | None
    fpir: float | None

    @property
    def identifiable(self) -> bool:
        return self.threshold is not None


@dataclass(frozen=True)
class Rule:
    """The decision in force for a scan, and what it is expected to cost."""

    threshold: float
    margin: float | None  # None: not used (face_recognition's fixed-threshold rule); 0.0:
    # the nearest identity must be the nearest face of all (a cohort face may be nearer)
    target_fpir: float | None  # what --fpir asked; None when --tolerance fixed the rule
    fpir: float | None  # estimated for this watchlist (None: not estimated)
    fnir: float | None
    source: str  # how the estimates were obtained
    fpir_interval: tuple[float, float] | None = None  # 95%
    fnir_interval: tuple[float, float] | None = None
    # Per face size (bands.keys(family)): the threshold and rates there; empty: one
    # threshold for every size (a fixed --tolerance), rates not estimated per size.
    bands: tuple[BandRate, ...] = ()
    family: str = "dlib"  # whose size bands (faces/bands.py)

    def band(self, height: float, length: float | None = None) -> BandRate | None:
        """The rule for a face `height` px tall whose encoding was `length` long before
        normalisation (None: no rule per size)."""
        name = bands.key(self.family, height, length)
        return next((b for b in self.bands if b.band == name), None)

    def alerts(
        self,
        distance: float,
        margin: float,
        height: float | None = None,
        length: float | None = None,
    ) -> bool:
        """Whether a face at `distance` from its nearest identity, `margin` nearer than
        the others, alerts; `height`: the face's size, px, and `length` its encoding's
        before normalisation (its size band's threshold)."""
        threshold = self.threshold
        band = self.band(height, length) if height is not None else None
        if band is not None:
            if band.threshold is None:
                return False  # too small to identify
            threshold = band.threshold
        return distance <= threshold and (self.margin is None or margin >= self.margin)

    def describe(self) -> str:
        rule = f"distance <= {self.threshold:.2f}"
        if self.margin:
            rule += f" and margin >= {self.margin:.2f}"
        if self.target_fpir is None:
            return f"{rule} (fixed by --tolerance; no margin)"
        return f"{rule}, chosen for FPIR <= {self.target_fpir:g} on this watchlist"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Rule:
        """The rule as `to_dict` (a summary, the audit trail) wrote it."""
        names = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("fpir_interval", "fnir_interval"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        values["bands"] = tuple(BandRate(**b) for b in values.get("bands") or ())
        return cls(**values)


@dataclass(frozen=True)
class Calibration:
    """What the watchlist says about its own error rates, per (t, m) of the grids."""

    identities: int
    faces: int
    lio_searches: int  # leave-identity-out searches (non-mated stand-ins)
    lopo_searches: int  # leave-one-photo-out searches (mated); 0: FNIR from the table
    fpir: tuple[tuple[float, ...], ...]  # [t][m]
    fnir: tuple[tuple[float, ...], ...]  # leave-one-photo-out where there were any, else the model
    fnir_model: tuple[tuple[float, ...], ...] = ()  # the same-person model, always
    family: str = "dlib"  # whose grids [t][m] index (families.py)
    # The model per measured size band (bands.tables): its own same-person distances,
    # the threshold and the competitors' distances moved by its shift.
    fnir_bands: dict[str, tuple[tuple[float, ...], ...]] = field(default_factory=dict)

    @property
    def grids(self) -> Family:
        return get(self.family)

    def estimated_fnir(self, ti: int, mi: int) -> float:
        """The model and the leave-one-photo-out searches, blended by their weights."""
        model = self.fnir_model[ti][mi] if self.fnir_model else self.fnir[ti][mi]
        n = self.lopo_searches
        return (n * self.fnir[ti][mi] + PRIOR_SEARCHES * model) / (n + PRIOR_SEARCHES)

    def fnir_interval(self, ti: int, mi: int) -> tuple[float, float]:
        return wilson(self.estimated_fnir(ti, mi), self.lopo_searches + PRIOR_SEARCHES)

    def band_rates(self, ti: int, mi: int, fpir: float | None) -> tuple[BandRate, ...]:
        """The rule (t, m) = cell (ti, mi) per size band: too small, measured (threshold
        plus the band's shift, its own miss model moved by what the leave-one-photo-out
        searches corrected at photo size, never under the photos' rate) or photo size (as
        calibrated). The shift keeps the photos' false-alert rate, `fpir`, in every band."""
        t = self.grids.t_grid[ti]
        fnir = self.estimated_fnir(ti, mi)
        model = self.fnir_model[ti][mi] if self.fnir_model else self.fnir[ti][mi]
        shifts = {table.band: table.shift for table in bands.tables(self.family)}
        out = []
        for band in bands.keys(self.family):
            role = bands.role(self.family, band)
            if role == "too small":
                out.append(BandRate(band, None, 1.0, 0.0))
            elif role == "measured" and band in self.fnir_bands:
                # Never fewer misses stated than for photo-size faces: a band of faces
                # nearly that size (48-64 px) measures about the same, either side of it.
                own = max(fnir, self.fnir_bands[band][ti][mi] + fnir - model)
                out.append(
                    BandRate(
                        band, round(t + shifts[band], 4), round(min(1.0, max(0.0, own)), 6), fpir
                    )
                )
            else:
                out.append(BandRate(band, t, round(fnir, 6), fpir))
        return tuple(out)

    def fnir_how(self) -> str:
        if not self.lopo_searches:
            return "FNIR from the watchlist's spacing and a table of same-person distances"
        weight = self.lopo_searches / (self.lopo_searches + PRIOR_SEARCHES)
        return (
            f"FNIR from the watchlist's spacing and a table of same-person distances, blended "
            f"with {self.lopo_searches} leave-one-photo-out searches (weight {weight:.2f})"
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Calibration:
        def grid(value: object) -> tuple[tuple[float, ...], ...]:
            assert isinstance(value, list)
            return tuple(tuple(float(x) for x in row) for row in value)

        return cls(
            identities=int(data["identities"]),  # type: ignore[call-overload]
            faces=int(data["faces"]),  # type: ignore[call-overload]
            lio_searches=int(data["lio_searches"]),  # type: ignore[call-overload]
            lopo_searches=int(data["lopo_searches"]),  # type: ignore[call-overload]
            fpir=grid(data["fpir"]),
            fnir=grid(data["fnir"]),
            fnir_model=grid(data["fnir_model"]),
            family=str(data.get("family", "dlib")),
            fnir_bands={
                str(k): grid(v)
                for k, v in data.get("fnir_bands", {}).items()  # type: ignore[attr-defined]
            },
        )


def fixed(tolerance: float, cal: Calibration | None = None) -> Rule:
    """--tolerance: face_recognition's rule (nearest identity within `tolerance`), with
    this watchlist's estimates for it where the grid reaches that far."""
    grid = cal.grids.t_grid if cal is not None else T_GRID
    if cal is None or not grid[0] <= tolerance <= grid[-1]:
        family = cal.family if cal is not None else DLIB.name
        return Rule(tolerance, None, None, None, None, "fixed threshold, not estimated",
                    family=family)  # fmt: skip
    ti = min(range(len(grid)), key=lambda i: abs(grid[i] - tolerance))
    if cal.lio_searches >= MIN_SEARCHES_PER_RATE / 0.01:
        fpir, how = cal.fpir[ti][0], f"leave-identity-out over {cal.lio_searches} searches"
        fpir_interval = wilson(fpir, cal.lio_searches)
    else:
        fpir = round(table_fpir(grid[ti], cal.identities, cal.grids), 6)
        how = f"a table of impostor rates for {cal.identities} identities"
        low, high = TABLE_FPIR_SPREAD
        fpir_interval = (round(fpir * low, 6), round(min(1.0, fpir * high), 6))
    return Rule(
        tolerance, None, None, fpir, round(cal.estimated_fnir(ti, 0), 6),
        f"fixed threshold; FPIR from {how}; {cal.fnir_how()}",
        fpir_interval, cal.fnir_interval(ti, 0), family=cal.family,
    )  # fmt: skip


def expected_false_alerts(
    rule: Rule, looks: dict[int, int], by_band: dict[str, int] | None = None
) -> float | None:
    """How many faces of unlisted people are expected to alert, for `looks` = {k: number
    of faces followed matched on k encodings}. A face is matched on the mean of its
    views' distances (`Watchlist.match_views`), which alerts no more often than one view
    (docs/accuracy.md), so each face counts FPIR once, whatever its k. With `by_band`
    ({size band: faces}), each band's FPIR for its faces (none for faces too small)."""
    if rule.fpir is None:
        return None
    if by_band and rule.bands:
        rates = {b.band: b.fpir or 0.0 for b in rule.bands}
        return round(sum(rates.get(band, rule.fpir) * n for band, n in by_band.items()), 3)
    return round(rule.fpir * sum(looks.values()), 3)


def expected_rates(rule: Rule, by_band: dict[str, int]) -> tuple[float | None, float | None]:
    """(FNIR, FPIR) over the faces a scan saw, `by_band` = {size band: faces}: each band's
    rates weighted by its faces (a face too small to identify: missed if listed, never a
    false alert). None where the rule has no rates per size, or the scan saw no face."""
    faces = sum(by_band.values())
    rates = {b.band: b for b in rule.bands}
    if not faces or any(band not in rates or rates[band].fnir is None for band in by_band):
        return None, None
    fnir = sum(n * (rates[band].fnir or 0.0) for band, n in by_band.items()) / faces
    fpir = sum(n * (rates[band].fpir or 0.0) for band, n in by_band.items()) / faces
    return round(fnir, 4), round(fpir, 6)


def summary_lines(
    rule: Rule, looks: dict[int, int], by_band: dict[str, int] | None = None
) -> list[str]:
    """What the rule is, what it is expected to cost, and what that means for a scan
    whose faces had `looks` ({encodings per face: faces}) and sizes `by_band` ({size
    band: faces})."""
    faces = sum(looks.values())
    lines = [f"rule: {rule.describe()}"]
    if rule.fpir is None or rule.fnir is None:
        lines.append("its error rates on this watchlist were not estimated")
        return lines
    fp = f"FPIR {rule.fpir:.4f}" + _interval(rule.fpir_interval, 4)
    fn = f"FNIR {rule.fnir:.2f}" + _interval(rule.fnir_interval, 2)
    lines.append(
        f"estimated for this watchlist at photo size: {fp} (a face of someone not on it "
        f"alerts), {fn} (a face of someone on it is missed); {rule.source}"
    )
    by_band = by_band or {}
    rates = {b.band: b for b in rule.bands}
    if by_band and rates:
        sizes = []
        for band in bands.keys(rule.family):
            n = by_band.get(band, 0)
            if not n:
                continue
            rate = rates[band]
            if rate.threshold is None:
                sizes.append(
                    f"{bands.describe(band)}: {n}, too small to identify (never alerted on)"
                )
            else:
                sizes.append(
                    f"{bands.describe(band)}: {n} (distance <= {rate.threshold:.2f}, "
                    f"FNIR {rate.fnir:.2f}, FPIR {rate.fpir:.4f})"
                )
        lines.append("faces followed by size: " + "; ".join(sizes))
        fnir, fpir = expected_rates(rule, by_band)
        if fnir is not None and fpir is not None:
            lines.append(
                f"over the faces this scan saw: expected FNIR {fnir:.2f}, FPIR {fpir:.4f} "
                "(each size's rates, weighted by its faces)"
            )
    expected = expected_false_alerts(rule, looks, by_band) or 0.0
    lines.append(
        f"for this scan: if none of the {faces} faces followed is on the watchlist, at most "
        f"about {expected:.2g} of them are expected to alert anyway"
    )
    return lines


def _interval(bounds: tuple[float, float] | None, digits: int) -> str:
    return f" (95% {bounds[0]:.{digits}f}-{bounds[1]:.{digits}f})" if bounds else ""


def _table(cdf: Sequence[float], distance: np.ndarray | float, step: float) -> np.ndarray:
    """P(d <= distance) from a table sampled every `step` from 0, interpolated."""
    return np.asarray(np.interp(distance, np.arange(len(cdf)) * step, cdf))


def impostor_rate(distance: float, family: Family = DLIB) -> float:
    """Share of comparisons of two different people's faces at or below `distance`."""
    return float(_table(family.impostor_cdf, distance, family.table_step))


def genuine_rate(distance: float, family: Family = DLIB) -> float:
    """Share of comparisons of two photos of one person at or below `distance`."""
    return float(_table(family.genuine_cdf, distance, family.table_step))


def table_fpir(threshold: float, identities: int, family: Family = DLIB) -> float:
    """FPIR of the threshold alone against `identities` independent comparisons."""
    return 1.0 - (1.0 - impostor_rate(threshold, family)) ** max(1, identities)


KNN = 256  # neighbours looked at per search: enough for the nearest two other identities
# and the nearest other photo of the same one, unless someone has hundreds of photos

Knn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def exact_knn(vectors: np.ndarray) -> Knn:
    """Neighbours by brute force: for each probe index, the KNN nearest faces (itself
    included) and their distances, nearest first."""
    from frs_cli.faces.distances import distances

    k = min(KNN, len(vectors))

    def knn(probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = distances(vectors[probes], vectors)
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.argsort(d, 1)
        rows = np.arange(len(d))[:, None]
        order = np.argsort(d[rows, part], axis=1, kind="stable")
        idx = part[rows, order]
        return idx, d[rows, idx]

    return knn


def reference(others: Sequence[float]) -> float:
    """What the margin is measured to: the mean distance of the next `MARGIN_IDENTITIES`
    identities (or cohort faces), given their distances nearest first (inf: none)."""
    near = list(others[:MARGIN_IDENTITIES])
    return float(np.mean(near)) if near else float("inf")


def _search(
    idx: np.ndarray, dist: np.ndarray, labels: np.ndarray, own: int
) -> tuple[float, float, float, float]:
    """What a search of a face of identity `own` with its own identity left out finds:
    the nearest *listed* identity's distance d1, the `reference` of the identities after
    it (listed or cohort), the nearest of any identity but `own`, and the `reference`
    of all identities but `own` (inf: none among the neighbours). Cohort faces have
    negative labels, each its own."""
    seen: dict[int, float] = {}  # label -> its nearest face's distance, nearest first
    first: int | None = None
    for i, d in zip(idx, dist, strict=True):
        label = int(labels[i])
        if label == own or label in seen:
            continue
        seen[label] = float(d)
        if first is None and label >= 0:
            first = label
        if first is not None and len(seen) > MARGIN_IDENTITIES:
            break
    ordered = list(seen.values())
    if first is None:
        return float("inf"), float("inf"), min(ordered, default=float("inf")), reference(ordered)
    after = [d for label, d in seen.items() if label != first]
    anyone = ordered[0] if ordered else float("inf")
    return seen[first], reference(after), anyone, reference(ordered)


def calibrate(labels: np.ndarray, knn: Knn, seed: int = 0, family: Family = DLIB) -> Calibration:
    """Estimate FPIR and FNIR over the `family`'s (t, m) grids from the enrolled faces alone.

    `labels[i]` is the identity of face i: watchlist identities are integers >= 0, each
    cohort face (a person not on the list) a distinct negative one. `knn(probe
    indices)` gives each probe's nearest faces (see `exact_knn`). Cohort faces are
    searched too, as the real non-mated searches they are."""
    n = len(labels)
    listed = labels >= 0
    identities = len(set(labels[listed].tolist()))
    rng = np.random.default_rng(seed)
    probes = np.arange(n) if n <= MAX_PROBES else np.sort(rng.choice(n, MAX_PROBES, False))
    values, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse)
    photos = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    # Leave-identity-out: the probe's person is not on the list (or is in the cohort).
    lio_d1: list[float] = []
    lio_ref: list[float] = []
    # per listed probe: the nearest other identity, and the reference of the others
    competitor: list[float] = []
    competitor_ref: list[float] = []
    # Leave-one-photo-out: the probe's person is, by their other photos.
    mate: list[float] = []
    other: list[float] = []
    other_ref: list[float] = []
    for start in range(0, len(probes), 512):
        chunk = probes[start : start + 512]
        idx, dist = knn(chunk)
        for i, row_idx, row_dist in zip(chunk, idx, dist, strict=True):
            own = int(labels[i])
            d1, ref, anyone, anyone_ref = _search(row_idx, row_dist, labels, own)
            if d1 < float("inf"):
                lio_d1.append(d1)
                lio_ref.append(ref)
            if own < 0:
                continue
            competitor.append(anyone)
            competitor_ref.append(anyone_ref)
            if photos[own] >= 2:
                same = [float(d) for j, d in zip(row_idx, row_dist, strict=True)
                        if j != i and int(labels[j]) == own]  # fmt: skip
                mate.append(same[0] if same else float(row_dist[-1]))
                other.append(anyone)
                other_ref.append(anyone_ref)
    t_grid, m_grid = family.t_grid, family.m_grid
    t = np.array(t_grid)[:, None, None]
    m = np.array(m_grid)[None, :, None]
    if lio_d1:
        a, b = np.array(lio_d1)[None, None, :], np.array(lio_ref)[None, None, :]
        fpir = ((a <= t) & (b - a >= m)).mean(axis=2)
    else:
        fpir = np.zeros((len(t_grid), len(m_grid)))
    # The model: a probe of a listed person is taken to lie at a same-person distance
    # (the table) from its photo, must be nearer than the nearest other identity (this
    # watchlist's own, or the cohort), and nearer than the others' reference by the margin.
    nearest_other = np.array(competitor) if competitor else np.array([np.inf])
    others_ref = np.array(competitor_ref) if competitor_ref else np.array([np.inf])
    model = np.empty((len(t_grid), len(m_grid)))
    for ti, tv in enumerate(t_grid):
        for mi, mv in enumerate(m_grid):
            limits = np.minimum(np.minimum(tv, others_ref - mv), nearest_other)
            model[ti, mi] = 1.0 - float(
                np.mean(_table(family.genuine_cdf, limits, family.table_step))
            )
    fnir_bands = {}
    for table in bands.tables(family.name):
        limits = np.minimum(
            np.minimum(t, others_ref[None, None, :] - m), nearest_other[None, None, :]
        )
        hit = _table(table.genuine_cdf, limits + table.shift, family.table_step).mean(axis=2)
        fnir_bands[table.band] = tuple(tuple(round(float(x), 6) for x in row) for row in 1.0 - hit)
    if mate:
        dm, do = np.array(mate)[None, None, :], np.array(other)[None, None, :]
        dr = np.array(other_ref)[None, None, :]
        hit = (dm <= t) & (dm < do) & (dr - dm >= m)
        fnir = 1.0 - hit.mean(axis=2)
    else:
        fnir = model
    return Calibration(
        identities=identities,
        faces=int(listed.sum()),
        lio_searches=len(lio_d1),
        lopo_searches=len(mate),
        fpir=tuple(tuple(round(float(x), 6) for x in row) for row in fpir),
        fnir=tuple(tuple(round(float(x), 6) for x in row) for row in fnir),
        fnir_model=tuple(tuple(round(float(x), 6) for x in row) for row in model),
        family=family.name,
        fnir_bands=fnir_bands,
    )


def _upper(rate: float, searches: int) -> float:
    """The rate plus CAUTION standard deviations of its count (at least one alert's)."""
    alerts = rate * searches
    return (alerts + CAUTION * math.sqrt(max(alerts, 1.0))) / searches


def wilson(rate: float, searches: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a rate seen in `searches` trials."""
    if searches <= 0:
        return (0.0, 1.0)
    z2 = Z95 * Z95
    centre = (rate + z2 / (2 * searches)) / (1 + z2 / searches)
    half = (Z95 / (1 + z2 / searches)) * math.sqrt(
        max(rate * (1 - rate), 0.0) / searches + z2 / (4 * searches * searches)
    )
    return (round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6))


def choose(cal: Calibration, target: float) -> Rule:
    """The (t, m) with the fewest estimated misses among those that hold `target`."""
    fnir_how = cal.fnir_how()
    grids = cal.grids
    t_grid, m_grid = grids.t_grid, grids.m_grid
    if cal.lio_searches < MIN_SEARCHES_PER_RATE / target:
        # Too few searches to see a rate this low: the impostor table, threshold alone.
        holding = [t for t in t_grid if table_fpir(t, cal.identities, grids) <= target]
        t = max(holding) if holding else t_grid[0]
        ti = t_grid.index(t)
        fpir = round(table_fpir(t, cal.identities, grids), 6)
        low, high = TABLE_FPIR_SPREAD
        return Rule(
            t,
            0.0,
            target,
            fpir,
            round(cal.estimated_fnir(ti, 0), 6),
            f"FPIR from a table of impostor rates for {cal.identities} identities "
            f"(only {cal.lio_searches} leave-identity-out searches of watchlist and cohort "
            f"faces, fewer than {MIN_SEARCHES_PER_RATE}/{target:g}); {fnir_how}",
            (round(fpir * low, 6), round(min(1.0, fpir * high), 6)),
            cal.fnir_interval(ti, 0),
            cal.band_rates(ti, 0, fpir),
            cal.family,
        )
    n = cal.lio_searches
    feasible = [
        (ti, mi)
        for ti in range(len(t_grid))
        for mi in range(len(m_grid))
        if _upper(cal.fpir[ti][mi], n) <= target
    ]
    ti, mi = 0, len(m_grid) - 1  # the strictest cell when none holds the target
    if feasible:
        # The fewest misses; only an exact tie goes to the fewer false alerts.
        ti, mi = min(
            feasible, key=lambda c: (cal.estimated_fnir(*c), cal.fpir[c[0]][c[1]], c[0], -c[1])
        )
    return Rule(
        t_grid[ti],
        m_grid[mi],
        target,
        cal.fpir[ti][mi],
        round(cal.estimated_fnir(ti, mi), 6),
        f"FPIR by leave-identity-out over {cal.lio_searches} searches; {fnir_how}",
        wilson(cal.fpir[ti][mi], n),
        cal.fnir_interval(ti, mi),
        cal.band_rates(ti, mi, cal.fpir[ti][mi]),
        cal.family,
    )
