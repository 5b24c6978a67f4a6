"""Faces as CCTV films them (issue 36): the rule and its stated rates per face size, the
faces too small to identify, a quality record for each view, and `frs evaluate
--face-px`, on real faces (the sample portraits)."""

import json

import numpy as np
import pytest
from conftest import SAMPLE, run_cli
from PIL import Image, ImageFilter

from frs_cli.accuracy import calibration
from frs_cli.faces import arcface, bands, quality
from frs_cli.records import Box
from frs_cli.watchlist import Watchlist


@pytest.fixture(scope="module")
def rule(demo_watchlist):
    with Watchlist.open(demo_watchlist) as wl:
        return wl.rule(0.01)


def test_each_size_band_has_its_threshold_and_the_smallest_none(rule):
    assert [b.band for b in rule.bands] == bands.names()
    shifts = {t.band: t.shift for t in bands.tables("dlib")}
    for b in rule.bands:
        role = bands.role("dlib", b.band)
        if role == "too small":
            assert (b.threshold, b.fnir, b.fpir) == (None, 1.0, 0.0)
        elif role == "measured":
            assert b.threshold == pytest.approx(rule.threshold + shifts[b.band])
            assert b.fpir == rule.fpir and b.fnir >= rule.fnir  # smaller faces: more misses
        else:
            assert (b.threshold, b.fnir, b.fpir) == (rule.threshold, rule.fnir, rule.fpir)
    tiny = bands.identify_from("dlib") - 1
    assert not rule.alerts(0.0, 1.0, tiny)  # the nearest possible face, too small
    assert rule.alerts(0.0, 1.0, 200) and rule.alerts(0.0, 1.0)


def test_expected_rates_weigh_each_size_by_its_faces(rule):
    by_band = {"<12": 1, ">=64": 3}
    fnir, fpir = calibration.expected_rates(rule, by_band)
    assert fnir == pytest.approx((1.0 + 3 * rule.fnir) / 4, abs=1e-4)
    assert fpir == pytest.approx(3 * rule.fpir / 4, abs=1e-6)
    assert calibration.expected_false_alerts(rule, {1: 4}, by_band) == round(3 * rule.fpir, 3)
    assert calibration.expected_rates(rule, {}) == (None, None)
    fixed = calibration.fixed(0.6)  # a fixed --tolerance: no rates per size
    assert calibration.expected_rates(fixed, by_band) == (None, None)
    assert fixed.alerts(0.5, 0.0, 4)


def test_the_rule_per_size_survives_the_summary_and_the_audit_trail(rule):
    again = calibration.Rule.from_dict(json.loads(json.dumps(rule.to_dict())))
    assert again == rule


def test_a_views_quality_record_sees_blur_size_and_pose():
    rgb = np.asarray(Image.open(SAMPLE / "Grace_Hopper.jpg").convert("RGB"))
    h, w = rgb.shape[:2]
    box = Box(w // 4, h // 6, w // 2, h // 2)
    blurred = np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(4)))
    sharp = quality.of(rgb, box, 0.5)
    assert sharp.face_px == box.height and sharp.score == 0.5 and sharp.eye_px is None
    assert quality.of(blurred, box, 0.5).sharpness < sharp.sharpness / 2  # 1481 and 3586
    frontal = tuple(arcface.TEMPLATE.ravel().tolist())  # ArcFace's frontal template
    seen = quality.of(rgb, box, 0.5, frontal)
    assert seen.eye_px == pytest.approx(35.2, abs=0.1)
    assert abs(seen.yaw) <= 0.01 and abs(seen.pitch) <= 0.01
    turned = np.array(frontal).reshape(5, 2)
    turned[2, 0] += 10  # the nose towards one eye: a head turned
    assert quality.of(rgb, box, 0.5, tuple(turned.ravel())).yaw == pytest.approx(0.57, abs=0.01)


def test_evaluate_measures_the_probes_again_at_the_sizes_asked(tmp_path):
    from test_evaluate import tiny_dataset

    data = tmp_path / "people"
    data.mkdir()
    tiny_dataset(data)
    out = tmp_path / "eval.json"
    result = run_cli("evaluate", data, "--seed", "1", "--json", out, "--workers", "1",
                     "--face-px", "24")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    figures = json.loads(out.read_text())
    (size,) = figures["by_face_px"].values()
    # Faces of 24 px by dlib's photo box fall in the 24-32 band (the boxes of a scan are a
    # little taller), where a scan states more misses than at photo size.
    assert size["faces_by_band"] == {"24-32": 4}
    assert size["mated_found"] == "2/2" and size["non_mated_found"] == "2/2"
    assert size["expected_fnir"] > figures["scan_rule"]["rule"]["fnir"]
    assert "Probes shrunk to the face heights given" in result.stderr
    bad = run_cli("evaluate", data, "--face-px", "24,x")
    assert bad.exit_code == 2 and "give face heights of 8-400 px" in bad.stderr


def test_a_face_too_small_to_identify_is_counted_and_never_alerted_on(arc_watchlist, tmp_path):
    from conftest import jsonl

    from frs_cli.video import synthetic

    tiny = tmp_path / "tiny.mp4"  # Hopper's face ~14 px tall for 2 s: SCRFD finds it
    shot = synthetic.Shot(str(SAMPLE / "Grace_Hopper.jpg"), 0, 49, x=0.4, y=0.3, height=0.1)
    synthetic.write_clip(tiny, [shot], frames=50)
    summary = tmp_path / "s.json"
    result = run_cli("scan", "-w", arc_watchlist, "--min-face", "8", "--format", "jsonl",
                     "--unmatched", "--summary", summary, tiny)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    said = json.loads(summary.read_text())
    assert said["faces_too_small"] == 1 and said["alerts"] == 0
    assert said["faces_by_band"]["12-16"]["identifiable"] is False
    (row,) = jsonl(result.stdout)
    assert row["identity"] is None and row["face_band"] == "12-16" and row["face_px"] < 16
    assert "12-16 px: 1, too small to identify (never alerted on)" in result.stderr
    assert said["expected_fnir"] == 1.0 and said["expected_fpir"] == 0.0


def test_a_small_faces_landmarks_are_found_again_at_its_own_pixels(monkeypatch):
    """A face the search enlarged more than 1.5x keeps no landmarks from that search; SCRFD
    looks again at the frame's own pixels around it, enlarged to 48 px (Grace Hopper's face
    shrunk to 16-40 px: each landmark within 6% of the face's width of where SCRFD put it
    on the photo, nearer on the whole than at the face's own size)."""
    from frs_cli.faces import detect
    from frs_cli.records import Detection

    marks = tuple(float(v) for v in range(10))
    found = Detection(Box(10, 10, 60, 60), 0.5, landmarks=marks)
    assert detect.to_source(found, 1.5, 1.5).landmarks  # kept
    assert detect.to_source(found, 1.6, 1.6).landmarks == ()  # found again when encoded
    rgb = np.asarray(Image.open(SAMPLE / "Grace_Hopper.jpg").convert("RGB"))
    face = arcface.detector()(rgb)[0]
    width = face.box[2] - face.box[0]

    def errors() -> list[float]:
        out = []
        for px in (16, 20, 24, 28, 32, 40):
            s = px / width
            size = (round(rgb.shape[1] * s), round(rgb.shape[0] * s))
            small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))
            moved = arcface.Face(tuple(np.array(face.box) * s), face.score, face.landmarks * s)
            got = arcface.landmarks(small, arcface.to_box(moved, *size))
            assert got is not None
            out.append(float(np.abs(got - face.landmarks * s).max()) / px)
        return out

    enlarged = errors()
    assert max(enlarged) < 0.06
    monkeypatch.setattr(arcface, "LANDMARK_LEAST_PX", 0)
    assert np.mean(enlarged) < np.mean(errors())
