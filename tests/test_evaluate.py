"""frs evaluate: metrics on hand-built searches, the CLI on a tiny dataset made from the
sample portraits, and (with ../shared/data) LFW numbers checked against an independent
computation written here with dlib directly."""

import json
import multiprocessing
import shutil

import dlib
import numpy as np
import pytest
from conftest import SAMPLE, SHARED, needs_shared, run_cli
from PIL import Image, ImageOps

from frs_cli.accuracy.evaluation import Search, at_fpir, fnir, fpir, precision, rank1_rate
from frs_cli.faces import dlib_models


def searches() -> list[Search]:
    return [
        Search("a", "a2", True, "a", 0.30),  # hit
        Search("a", "a3", True, "b", 0.40),  # wrong person at rank 1: a miss
        Search("b", "b2", True, "b", 0.70),  # right person, too far: a miss at 0.6
        Search("b", "b3", True, None, float("inf")),  # no face found: a miss
        Search("x", "x1", False, "a", 0.50),  # false alert at 0.6
        Search("y", "y1", False, "b", 0.65),
        Search("z", "z1", False, None, float("inf")),
        Search("w", "w1", False, "a", 0.20),  # false alert even at 0.3
    ]


def test_fnir_fpir_rank1_by_hand():
    s = searches()
    assert fnir(s, 0.6) == 3 / 4
    assert fpir(s, 0.6) == 2 / 4
    assert fnir(s, 0.8) == 2 / 4 and fpir(s, 0.8) == 3 / 4
    assert rank1_rate(s) == 2 / 4
    best = at_fpir(s, 0.25)
    assert best == {"fpir_target": 0.25, "threshold": 0.4, "fpir": 0.25, "fnir": 0.75}


def test_precision_reproduces_the_two_denominators_of_the_london_figures():
    # 2020: ~13,000 faces scanned, 8 alerts, 7 of them wrong.
    false_alerts_per_face = 7 / 13000
    assert round(false_alerts_per_face * 100, 3) == 0.054
    assert 1 / 8 == 0.125  # 87.5% of alerts wrong
    # With a perfect TPIR, 1 true alert among 13,000 people needs FPIR ~= 7/12999.
    assert precision(1.0, 7 / 12999, 1 / 13000) == pytest.approx(0.125, rel=1e-3)


def tiny_dataset(root):
    hopper = Image.open(SAMPLE / "Grace_Hopper.jpg").convert("RGB")
    collins = Image.open(SAMPLE / "Eileen_Collins.png").convert("RGB")
    (root / "Grace_Hopper").mkdir()
    (root / "Eileen_Collins").mkdir()
    hopper.save(root / "Grace_Hopper" / "1.jpg")
    ImageOps.mirror(hopper).save(root / "Grace_Hopper" / "2.jpg")
    hopper.convert("L").save(root / "Grace_Hopper" / "3.jpg")
    collins.save(root / "Eileen_Collins" / "1.png")
    ImageOps.mirror(collins).save(root / "Eileen_Collins" / "2.png")
    Image.new("RGB", (200, 200), (90, 90, 90)).save(root / "Eileen_Collins" / "3.png")  # no face


def test_evaluate_cli_on_a_tiny_dataset(tmp_path):
    data = tmp_path / "people"
    data.mkdir()
    tiny_dataset(data)
    out = tmp_path / "eval.json"
    plot = tmp_path / "det.png"
    result = run_cli(
        "evaluate", data, "--seed", "1", "--json", out, "--plot", plot, "--workers", "1"
    )
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["gallery_identities"] == 1
    (gallery_name,) = report["split"]["gallery"]
    mated, non_mated = report["mated_searches"], report["non_mated_searches"]
    assert mated == 2 and non_mated == 3
    assert report["rank1_identification_rate"] == 1.0  # mirrored and gray views of one photo
    assert report["at_tolerance"]["fnir"] == 0.0
    expected_fta = (
        {"mated": 0, "non_mated": 1}
        if gallery_name == "Grace_Hopper"
        else {"mated": 1, "non_mated": 0}
    )
    assert report["failures_to_acquire"] == expected_fta
    assert "rank-1 identification rate: 1.0000" in result.stderr
    assert Image.open(plot).size == (768, 576)
    assert report["alert_precision_by_prevalence"][0]["prevalence"] == 0.1


def test_groups_give_per_group_rows(tmp_path):
    data = tmp_path / "people"
    data.mkdir()
    tiny_dataset(data)
    groups = tmp_path / "groups.csv"
    groups.write_text("identity,group\nGrace_Hopper,g1\nEileen_Collins,g2\n")
    out = tmp_path / "eval.json"
    result = run_cli("evaluate", data, "--groups", groups, "--json", out, "--workers", "1")
    assert result.exit_code == 0, result.stderr
    per = json.loads(out.read_text())["groups"]["per_group"]
    assert set(per) == {"g1", "g2"}
    assert sum(r["mated_searches"] + r["non_mated_searches"] for r in per.values()) == 5
    assert "Per group: at frs scan's rule" in result.stderr and "as often as the" in result.stderr
    data = json.loads(out.read_text())
    rule = data["scan_rule"]["rule"]
    assert data["groups"]["scan_rule"] == {"threshold": rule["threshold"], "margin": rule["margin"]}
    for row in per.values():
        at = row["at_scan_rule"]
        if row["mated_searches"]:
            low, high = at["fnir_interval"]
            assert low <= at["fnir"] <= high
    assert set(data["groups"]["ratio_at_scan_rule"]) == {"fnir", "fpir"}


def dlib_encoding(path: str) -> np.ndarray | None:
    """Independent of frs: face_recognition's defaults, most central face."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    rects = dlib.get_frontal_face_detector()(rgb, 1)
    if not rects:
        return None
    h, w = rgb.shape[:2]
    rect = min(rects, key=lambda r: (r.center().x - w / 2) ** 2 + (r.center().y - h / 2) ** 2)
    shape = dlib_models.shape_predictor()(rgb, rect)
    return np.asarray(dlib_models.face_encoder().compute_face_descriptor(rgb, shape, 1), np.float32)


@needs_shared
@pytest.mark.slow
def test_lfw_subset_counts_match_an_independent_computation(tmp_path):
    out = tmp_path / "eval.json"
    result = run_cli("evaluate", SHARED / "lfw-dev", "--limit", "30", "--seed", "7", "--json", out)
    assert result.exit_code == 0, result.stderr
    report = json.loads(out.read_text())
    gallery = report["split"]["gallery"]
    # dlib's own encoder takes ~130 ms a photo (this test's 19 s, the slowest but one):
    # two processes encode the ~100 photos.
    paths = [photos[0] for photos in gallery.values()]
    paths += report["split"]["mated"] + report["split"]["non_mated"]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        encoded = dict(zip(paths, pool.map(dlib_encoding, paths), strict=True))
    enrolled = {name: encoded[photos[0]] for name, photos in gallery.items()}
    names = [n for n, v in enrolled.items() if v is not None]
    matrix = np.stack([enrolled[n] for n in names])
    rank1_hits = misses = alerts = fta = 0
    rule = report["scan_rule"]["rule"]
    t, m = rule["threshold"], rule["margin"] or 0.0
    rule_alerts = rule_misses = 0
    for kind in ("mated", "non_mated"):
        for path in report["split"][kind]:
            person = path.split("/")[-2]
            vec = encoded[path]
            if vec is None:
                fta += 1
                misses += kind == "mated"
                rule_misses += kind == "mated"
                continue
            d = np.linalg.norm(matrix - vec, axis=1)
            top, dist = names[int(np.argmin(d))], float(d.min())
            # One photo per identity in this gallery: the margin is to the mean of the
            # next eight identities' distances.
            ref = float(np.mean(np.sort(d)[1:9]))
            passes = dist <= t and ref - dist >= m
            if kind == "mated":
                rank1_hits += top == person
                misses += not (top == person and dist <= 0.6)
                rule_misses += not (passes and top == person)
            else:
                alerts += dist <= 0.6
                rule_alerts += passes
    assert report["mated_searches"] == len(report["split"]["mated"])
    assert round(report["rank1_identification_rate"] * report["mated_searches"]) == rank1_hits
    assert report["at_tolerance"]["mated_misses"] == misses
    assert report["at_tolerance"]["non_mated_alerts"] == alerts
    assert sum(report["failures_to_acquire"].values()) == fta
    # The rule frs scan would choose for this gallery, measured here independently.
    assert report["scan_rule"]["measured_fpir"] == rule_alerts / len(report["split"]["non_mated"])
    assert report["scan_rule"]["measured_fnir"] == rule_misses / len(report["split"]["mated"])
    assert {"threshold", "threshold+margin"} <= set(report["rules"])
    assert report["fnir_at_fpir_rule"] == "threshold+margin"
    shutil.rmtree(tmp_path, ignore_errors=True)
