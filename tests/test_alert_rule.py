"""The alert rule (distance <= t and margin >= m, chosen per watchlist for a target FPIR):
the estimates on hand-built vectors, the choice, the cache, and real faces."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from conftest import SAMPLE, SHARED, jsonl, needs_shared, run_cli

import frs_cli as frs
from frs_cli.accuracy import calibration as cal
from frs_cli.accuracy.calibration import M_GRID, T_GRID, Calibration
from frs_cli.faces import bands

DEMO = SAMPLE / "demo.mp4"


def on_a_line(positions: list[float]) -> np.ndarray:
    """128-d vectors whose distances are the gaps between `positions`."""
    vectors = np.zeros((len(positions), 128), np.float32)
    vectors[:, 0] = positions
    return vectors


def cell(t: float, m: float) -> tuple[int, int]:
    return T_GRID.index(t), M_GRID.index(m)


def test_leave_identity_out_and_leave_one_photo_out_on_known_distances():
    # Identity 0 has photos at 0.0 and 0.32; identity 1 at 0.45; 2 at 0.9; 3 at 1.3.
    labels = np.array([0, 0, 1, 2, 3])
    c = cal.calibrate(labels, cal.exact_knn(on_a_line([0.0, 0.32, 0.45, 0.9, 1.3])))
    assert (c.identities, c.faces, c.lio_searches, c.lopo_searches) == (4, 5, 5, 2)
    # Leave-identity-out, per face: (the nearest other identity, the reference = the mean
    # of the identities after it, at most MARGIN_IDENTITIES): 0.0 -> (0.45, mean(0.9,
    # 1.3) = 1.1); 0.32 -> (0.13, 0.78); 0.45 -> (0.13, mean(0.45, 0.85) = 0.65);
    # 0.9 -> (0.4, mean(0.45, 0.58) = 0.515); 1.3 -> (0.4, 0.915). Margins 0.65, 0.65,
    # 0.52, 0.115, 0.515: all at least 0.1.
    fpir = {
        (t, m): c.fpir[cell(t, m)[0]][cell(t, m)[1]]
        for t in (0.3, 0.42, 0.46)
        for m in (0.0, 0.1, 0.12)
    }
    assert fpir == pytest.approx(
        {(0.3, 0.0): 2 / 5, (0.3, 0.1): 2 / 5, (0.3, 0.12): 2 / 5,
         (0.42, 0.0): 4 / 5, (0.42, 0.1): 4 / 5, (0.42, 0.12): 3 / 5,
         (0.46, 0.0): 1.0, (0.46, 0.1): 1.0, (0.46, 0.12): 4 / 5}
    )  # fmt: skip
    # Leave-one-photo-out, identity 0: the photo at 0.0 has its mate at 0.32, the next
    # identity at 0.45 and the reference of the others mean(0.45, 0.9, 1.3) = 0.883
    # (margin 0.563); the one at 0.32 is nearer identity 1 (0.13) than its mate: always
    # a miss, whatever the margin.
    fnir = {(t, m): c.fnir[cell(t, m)[0]][cell(t, m)[1]] for t in (0.31, 0.35) for m in (0.1, 0.2)}
    assert fnir == pytest.approx(
        {(0.31, 0.1): 1.0, (0.31, 0.2): 1.0, (0.35, 0.1): 0.5, (0.35, 0.2): 0.5}
    )
    assert cal.reference([0.45, 0.9, 1.3]) == pytest.approx(2.65 / 3)
    assert cal.reference([0.1 * k for k in range(1, 20)]) == pytest.approx(0.45)  # first 8


def test_without_second_photos_fnir_comes_from_the_same_person_table():
    labels = np.arange(3)
    c = cal.calibrate(labels, cal.exact_knn(on_a_line([0.0, 0.9, 2.0])))
    assert c.lopo_searches == 0
    # Probe of a listed person: a same-person distance within min(t, nearest other - m).
    nearest_other = [0.9, 0.9, 1.1]
    ti, mi = cell(0.5, 0.05)
    want = 1 - np.mean([cal.genuine_rate(min(0.5, d - 0.05)) for d in nearest_other])
    assert c.fnir[ti][mi] == pytest.approx(want, abs=1e-6)


def grid(value: float) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(value for _ in M_GRID) for _ in T_GRID)


def test_small_watchlists_use_the_impostor_table_and_no_margin():
    c = Calibration(3, 3, 3, 0, grid(0.0), grid(0.2))
    rule = cal.choose(c, 0.01)
    assert rule.margin == 0.0 and rule.target_fpir == 0.01
    # The largest grid threshold whose 1 - (1 - p(t))^3 holds 1%.
    assert cal.table_fpir(rule.threshold, 3) <= 0.01
    assert cal.table_fpir(round(rule.threshold + 0.01, 2), 3) > 0.01
    assert rule.fpir == round(cal.table_fpir(rule.threshold, 3), 6)
    assert rule.source.startswith("FPIR from a table of impostor rates for 3 identities")


def test_the_choice_holds_the_target_with_caution_and_the_fewest_misses():
    n = 2000
    # FPIR grows with t and falls with m; FNIR the opposite.
    fpir = tuple(tuple(max(0.0, (t - 0.40) * 0.2 - m * 0.1) for m in M_GRID) for t in T_GRID)
    fnir = tuple(tuple(min(1.0, 1.2 - 2 * t + 2 * m) for m in M_GRID) for t in T_GRID)
    c = Calibration(n, n, n, 100, fpir, fnir)
    rule = cal.choose(c, 0.01)
    assert rule.margin is not None
    ti, mi = cell(rule.threshold, rule.margin)
    alerts = fpir[ti][mi] * n
    assert alerts + cal.CAUTION * math.sqrt(max(alerts, 1)) <= 0.01 * n
    holding = [
        fnir[a][b]
        for a in range(len(T_GRID))
        for b in range(len(M_GRID))
        if (fpir[a][b] * n + cal.CAUTION * math.sqrt(max(fpir[a][b] * n, 1))) <= 0.01 * n
    ]
    assert fnir[ti][mi] == min(holding)  # the fewest misses, no tie-break toward strictness
    assert rule.fpir == fpir[ti][mi] and rule.fnir == pytest.approx(fnir[ti][mi], abs=1e-6)
    low, high = rule.fpir_interval
    assert low < rule.fpir < high and high <= 2 * rule.fpir
    assert rule.alerts(rule.threshold, rule.margin)
    assert not rule.alerts(rule.threshold + 0.001, rule.margin)


def test_scan_rows_carry_the_margin_and_the_rule_is_in_the_summary(demo_watchlist, tmp_path):
    summary = tmp_path / "s.json"
    result = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--summary", summary, DEMO
    )
    rows = jsonl(result.stdout)
    pairs = {(r["identity"], r["second_identity"]) for r in rows}
    assert pairs == {("Grace_Hopper", "Eileen_Collins"), ("Eileen_Collins", "Grace_Hopper")}
    assert all(r["margin"] > 0.4 for r in rows)
    data = json.loads(summary.read_text())
    # The summary's expectation, recomputed: a face matched on the mean of its views'
    # distances alerts no more often than one view, so each face counts FPIR once.
    looks = {int(k): n for k, n in data["encodings_per_face"].items()}
    assert sum(looks.values()) == data["tracks"] == 3
    assert data["expected_false_alerts"] == round(data["rule"]["fpir"] * 3, 3)
    assert os.stat(f"{demo_watchlist}.calibration.json").st_mode & 0o777 == 0o600


def test_tolerance_keeps_the_fixed_rule_and_excludes_fpir(demo_watchlist, tmp_path):
    summary = tmp_path / "s.json"
    result = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--tolerance", "0.3", "--summary", summary,
        "--format", "jsonl", DEMO,
    )  # fmt: skip
    # Each face's views averaged (Watchlist.match_views), every one within 0.3, the bottom
    # of dlib's scale (--tolerance is held to it: issue 37).
    assert [r["distance"] for r in jsonl(result.stdout)] == [0.1275, 0.1694, 0.117]
    data = json.loads(summary.read_text())
    assert data["rule"]["threshold"] == 0.3 and data["rule"]["margin"] is None
    assert data["rule"]["target_fpir"] is None
    both = run_cli("scan", "-w", demo_watchlist, "--tolerance", "0.5", "--fpir", "0.01", DEMO)
    assert both.exit_code == 2 and "not both" in both.stderr


def test_calibration_is_cached_per_generation(tmp_path):
    wl = tmp_path / "wl.db"
    run_cli("enroll", "-q", "-w", wl, SAMPLE / "Grace_Hopper.jpg")
    info = run_cli("watchlist", "info", "-w", wl)
    assert "at --fpir 0.01, rule: distance <= " in info.stdout
    cache = json.loads((tmp_path / "wl.db.calibration.json").read_text())
    assert (cache["generation"], cache["faces"], cache["calibration"]["identities"]) == (1, 1, 1)
    run_cli("enroll", "-q", "-w", wl, SAMPLE / "Eileen_Collins.png")
    run_cli("watchlist", "info", "-w", wl)
    cache = json.loads((tmp_path / "wl.db.calibration.json").read_text())
    assert (cache["generation"], cache["faces"], cache["calibration"]["identities"]) == (2, 2, 2)
    # Made with other size bands' tables (an older frs): computed again, not trusted.
    assert cache["tables"] == bands.fingerprint("dlib")
    cache["tables"], cache["calibration"]["identities"] = "older tables", 99
    (tmp_path / "wl.db.calibration.json").write_text(json.dumps(cache))
    run_cli("watchlist", "info", "-w", wl)
    cache = json.loads((tmp_path / "wl.db.calibration.json").read_text())
    assert (cache["tables"], cache["calibration"]["identities"]) == (bands.fingerprint("dlib"), 2)


@needs_shared
@pytest.mark.slow
def test_estimates_on_real_faces_match_a_direct_count(tmp_path):
    """60 LFW identities (up to 2 photos each): the store's calibration equals a
    brute-force count of leave-identity-out and leave-one-photo-out searches."""
    lfw = SHARED / "lfw-dev"
    people = sorted(p for p in lfw.iterdir() if p.is_dir())[:60]
    folder = tmp_path / "people"
    for person in people:
        (folder / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:2]:
            os.symlink(photo, folder / person.name / photo.name)
    wl = tmp_path / "lfw.db"
    assert run_cli("enroll", "-q", "-w", wl, "--workers", "2", folder).exit_code in (0, 3)
    from frs_cli.watchlist import Watchlist

    with Watchlist.open(wl) as store:
        c = store.calibration()
        vectors = store.vectors.astype(np.float64)
        labels = store._labels
    assert labels is not None
    d = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    fp = fn = lopo = 0
    for i in range(len(vectors)):
        others = sorted({int(j): 0 for j in labels if j != labels[i]})
        per = sorted(d[i][labels == j].min() for j in others)
        fp += per[0] <= 0.5 and per[1] - per[0] >= 0.05
        same = [d[i][j] for j in range(len(vectors)) if j != i and labels[j] == labels[i]]
        if same:
            lopo += 1
            mate = min(same)
            fn += not (mate <= 0.5 and mate < per[0] and per[0] - mate >= 0.05)
    ti, mi = cell(0.5, 0.05)
    assert c.lio_searches == len(vectors) and c.lopo_searches == lopo > 10
    assert c.fpir[ti][mi] == pytest.approx(fp / len(vectors), abs=1e-6)
    assert c.fnir[ti][mi] == pytest.approx(fn / lopo, abs=1e-6)


def test_a_cohort_face_nearer_than_the_best_identity_stops_the_alert(tmp_path):
    """Watchlist: Grace Hopper only. Cohort: Eileen Collins (not on the list). Her face
    in the demo clip is nearer to the cohort face than to Grace Hopper: negative margin,
    no alert under the default rule, while the fixed rule (no margin) would name Grace
    Hopper at a loose enough tolerance."""
    wl = tmp_path / "wl.db"
    run_cli("enroll", "-q", "-w", wl, SAMPLE / "Grace_Hopper.jpg")
    added = run_cli("watchlist", "cohort", "add", "-q", "-w", wl, SAMPLE / "Eileen_Collins.png")
    assert added.exit_code == 0, added.stderr
    assert added.stderr.endswith(f"{wl} has a cohort of 1 faces\n")
    info = run_cli("watchlist", "info", "-w", wl)
    assert "cohort: 1 faces of people not on the watchlist" in info.stdout
    assert "identities: 1\nfaces: 1\n" in info.stdout  # the cohort is not counted
    rows = jsonl(run_cli("scan", "-q", "-w", wl, "--format", "jsonl", DEMO).stdout)
    assert [(r["identity"], r["second_identity"]) for r in rows] == [
        ("Grace_Hopper", "(cohort)"),
        ("Grace_Hopper", "(cohort)"),
    ]
    loose = jsonl(
        run_cli("scan", "-q", "-w", wl, "--format", "jsonl", "--tolerance", "0.65", DEMO).stdout
    )
    assert [r["start_s"] for r in loose] == [1.0, 6.0]  # Collins at 0.678: beyond dlib's scale
    with frs.Watchlist.open(wl) as opened:  # her face, searched: the cohort face is nearer
        [match] = opened.search(opened.cohort[0])
    assert match is not None and match.identity == "Grace_Hopper" and match.margin < 0
    assert (
        "Eileen_Collins"
        not in (tmp_path / "wl.db.audit.jsonl").read_text().split('"command": "scan"')[-1]
    )
    cleared = run_cli("watchlist", "cohort", "clear", "-w", wl)
    assert cleared.stderr == f"removed the cohort (1 faces) from {wl}\n"
    commands = [
        json.loads(line)["command"]
        for line in (tmp_path / "wl.db.audit.jsonl").read_text().splitlines()
    ]
    assert commands == ["enroll", "cohort-add", "scan", "scan", "cohort-clear"]


@needs_shared
@pytest.mark.slow
def test_estimates_with_a_cohort_and_through_the_index_match_a_direct_count(tmp_path):
    """30 LFW identities on the list (2 photos each where there are), 30 others as the
    cohort: the calibration equals a brute-force count, exact and through HNSW."""
    lfw = SHARED / "lfw-dev"
    people = [p for p in sorted(lfw.iterdir()) if p.is_dir()][100:160]
    listed, cohort = tmp_path / "listed", tmp_path / "cohort"
    for person in people[:30]:
        (listed / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:2]:
            os.symlink(photo, listed / person.name / photo.name)
    cohort.mkdir()
    for person in people[30:]:
        photo = sorted(person.glob("*.jpg"))[0]
        os.symlink(photo, cohort / photo.name)
    wl = tmp_path / "lfw.db"
    assert run_cli("enroll", "-q", "-w", wl, "--workers", "2", listed).exit_code in (0, 3)
    assert run_cli("watchlist", "cohort", "add", "-q", "-w", wl, cohort).exit_code in (0, 3)
    from frs_cli.watchlist import Watchlist

    with Watchlist.open(wl) as store:
        exact = store.calibration()
        vectors = np.concatenate([store.vectors, store.cohort]).astype(np.float64)
        assert store._labels is not None
        labels = np.concatenate([store._labels, -1 - np.arange(len(store.cohort))])
        store.calibration_path.unlink()
        store.exact_limit = 10  # through the HNSW index
        indexed = store.calibration()
    d = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    fp = searches = 0
    for i in range(len(vectors)):
        per = {}
        for j in range(len(vectors)):
            if labels[j] != labels[i]:
                per[int(labels[j])] = min(per.get(int(labels[j]), np.inf), d[i, j])
        listed_near = min((v, k) for k, v in per.items() if k >= 0)
        rest = min(v for k, v in per.items() if k != listed_near[1])
        searches += 1
        fp += listed_near[0] <= 0.5 and rest - listed_near[0] >= 0.05
    ti, mi = cell(0.5, 0.05)
    for c in (exact, indexed):
        assert c.lio_searches == searches == len(vectors)
        assert c.fpir[ti][mi] == pytest.approx(fp / searches, abs=1e-6)
    assert exact.fnir == indexed.fnir
