"""End to end on sample_media/demo.mp4: real HOG detection and ResNet encodings on
public-domain portraits pasted into a synthetic clip at known frames."""

import csv
import io
import json

import pytest
from conftest import SAMPLE, jsonl, run_cli

from frs_cli.video import synthetic

DEMO = SAMPLE / "demo.mp4"


def appearances(rows):
    return sorted((r["identity"], r["start_s"], r["end_s"]) for r in rows if r["identity"])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_scan_finds_each_person_at_the_exact_frames(demo_watchlist, demo_expected, workers):
    result = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--workers", workers, DEMO
    )
    assert result.exit_code == 0, result.stderr
    rows = jsonl(result.stdout)
    assert appearances(rows) == demo_expected
    for row in rows:
        assert row["distance"] < 0.3
        assert row["source"] == str(DEMO)
    assert [r["track_id"] for r in rows] == sorted(r["track_id"] for r in rows)


def test_csv_columns_and_timecodes(demo_watchlist):
    result = run_cli("scan", "-q", "-w", demo_watchlist, DEMO)
    assert result.exit_code == 0
    reader = csv.DictReader(io.StringIO(result.stdout))
    assert reader.fieldnames == [
        "source", "identity", "start_s", "end_s", "start_tc", "end_tc", "best_s",
        "distance", "detections", "track_id", "left", "top", "width", "height",
        "margin", "second_identity", "start_wall", "end_wall", "face_px", "face_band",
    ]  # fmt: skip
    rows = list(reader)
    hopper = [r for r in rows if r["identity"] == "Grace_Hopper"][0]
    assert (hopper["start_s"], hopper["end_s"]) == ("1.000", "3.960")
    assert (hopper["start_tc"], hopper["end_tc"]) == ("00:00:01.000", "00:00:03.960")
    assert int(hopper["detections"]) >= 15  # analysed frames plus refined edges


def test_json_format_is_one_array(demo_watchlist, demo_expected):
    result = run_cli("scan", "-q", "-w", demo_watchlist, "--format", "json", DEMO)
    assert appearances(json.loads(result.stdout)) == demo_expected


def test_detections_rows_have_exact_frame_numbers(demo_watchlist):
    result = run_cli("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--detections", DEMO)
    rows = jsonl(result.stdout)
    assert set(rows[0]) == {
        "source", "frame", "time_s", "timecode", "track_id", "identity", "distance",
        "left", "top", "width", "height", "time_wall",
    }  # fmt: skip
    for row in rows:
        assert row["time_s"] == pytest.approx(row["frame"] / 25, abs=0.0005)
    first = min((r for r in rows if r["identity"] == "Grace_Hopper"), key=lambda r: r["frame"])
    assert first["frame"] == 25
    eileen = [r["frame"] for r in rows if r["identity"] == "Eileen_Collins"]
    assert min(eileen) == 125 and max(eileen) == 199


def test_data_on_stdout_messages_on_stderr(demo_watchlist, tmp_path):
    out = tmp_path / "rows.csv"
    result = run_cli("scan", "-w", demo_watchlist, "--out", out, DEMO)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "scanned 1 file(s)" in result.stderr and "3 alerts" in result.stderr
    assert out.read_text().startswith("source,identity,")


def test_unmatched_lists_the_faces_the_rule_did_not_name(tmp_path):
    """Only Grace Hopper listed: Eileen Collins's face (0.678 from her, beyond dlib's whole
    scale) is listed with no identity, under a person label of its own."""
    wl = tmp_path / "hopper.db"
    assert run_cli("enroll", "-q", "-w", wl, SAMPLE / "Grace_Hopper.jpg").exit_code == 0
    strict = run_cli("scan", "-q", "-w", wl, "--tolerance", "0.3", "--format", "jsonl", DEMO)
    assert strict.exit_code == 0
    assert [(r["identity"], r["start_s"]) for r in jsonl(strict.stdout)] == [
        ("Grace_Hopper", 1.0),
        ("Grace_Hopper", 6.0),
    ]
    faces = run_cli(
        "scan", "-q", "-w", wl, "--tolerance", "0.3", "--unmatched", "--format", "jsonl", DEMO
    )  # fmt: skip
    rows = jsonl(faces.stdout)
    assert [(r["identity"], r["start_s"]) for r in rows] == [
        ("Grace_Hopper", 1.0),
        (None, 5.0),
        ("Grace_Hopper", 6.0),
    ]
    assert rows[1]["person"] and rows[1]["margin"] is None


def test_summary_json_counts_match_rows(demo_watchlist, tmp_path):
    summary = tmp_path / "s.json"
    result = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--summary", summary, DEMO
    )
    data = json.loads(summary.read_text())
    assert data["alerts"] == len(jsonl(result.stdout)) == 3
    assert data["watchlist_identities"] == 2
    # Two identities: too few to search for a 1% rate, so the impostor table sets t.
    assert data["rule"]["target_fpir"] == 0.01 and data["rule"]["margin"] == 0.0
    assert data["rule"]["source"].startswith("FPIR from a table of impostor rates for 2 ")
    assert data["rule_text"] == (
        f"distance <= {data['rule']['threshold']:.2f}, chosen for FPIR <= 0.01 on this watchlist"
    )
    assert data["footage_s"] == pytest.approx(7.96, abs=0.05)
    assert data["alerts_per_1000_faces"] == round(1000 * 3 / data["tracks"], 2)
    assert "depends on how many of the people filmed are really on the watchlist" in data["note"]
    assert "frs evaluate" in result.stderr or data["note"]


def test_missing_watchlist_is_one_line_and_exit_1(tmp_path):
    result = run_cli("scan", "-w", tmp_path / "none.db", DEMO)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: no watchlist at {tmp_path / 'none.db'}; create one with "
        f"`frs enroll -w {tmp_path / 'none.db'} PHOTOS...`"
    ]


def test_watchlist_from_environment(demo_watchlist, monkeypatch):
    monkeypatch.setenv("FRS_WATCHLIST", str(demo_watchlist))
    result = run_cli("scan", "-q", "--format", "jsonl", DEMO)
    assert result.exit_code == 0 and len(jsonl(result.stdout)) == 3


def test_usage_errors_exit_2(demo_watchlist):
    assert run_cli("scan", "-w", demo_watchlist, "--format", "xml", DEMO).exit_code == 2
    assert run_cli("scan", "-w", demo_watchlist).exit_code == 2


def test_the_summary_counts_faces_by_size_with_the_rule_there(demo_watchlist, tmp_path):
    from frs_cli.faces import bands
    from frs_cli.watchlist import Watchlist

    with Watchlist.open(demo_watchlist) as wl:
        rule = wl.rule(0.01)
    summary = tmp_path / "s.json"
    result = run_cli("scan", "-w", demo_watchlist, "--format", "jsonl", "--summary", summary, DEMO)
    said = json.loads(summary.read_text())
    # Hopper's faces 136 and 119 px, Collins's 61 px (their largest encoded views).
    assert sorted(r["face_px"] for r in jsonl(result.stdout)) == [61, 119, 136]
    photo = {"identifiable": True, "threshold": rule.threshold, "fnir": rule.fnir,
             "fpir": rule.fpir}  # fmt: skip
    assert said["faces_by_band"][">=64"] == {"faces": 2, "detections": 36, **photo}
    assert said["faces_by_band"]["48-64"]["faces"] == 1
    assert said["faces_too_small"] == 0
    assert said["expected_fnir"] == pytest.approx(
        (2 * rule.fnir + said["faces_by_band"]["48-64"]["fnir"]) / 3, abs=1e-4
    )
    assert "faces followed by size: 48-64 px: 1 (distance <=" in result.stderr
    # Hopper under 32 px tall for 2 s: the rule of her size, which still finds her.
    small = tmp_path / "small.mp4"
    shot = synthetic.Shot(str(SAMPLE / "Grace_Hopper.jpg"), 0, 49, x=0.4, y=0.3, height=0.18)
    synthetic.write_clip(small, [shot], frames=50)
    result = run_cli("scan", "-w", demo_watchlist, "--min-face", "12", "--format", "jsonl",
                     "--summary", summary, small)  # fmt: skip
    said = json.loads(summary.read_text())
    (band,) = said["faces_by_band"]
    assert band == "24-32" and said["faces_by_band"][band]["threshold"] == pytest.approx(
        rule.threshold + dict((t.band, t.shift) for t in bands.tables("dlib"))[band]
    )
    assert [r["identity"] for r in jsonl(result.stdout)] == ["Grace_Hopper"]


def test_a_face_is_found_back_to_its_first_frame_and_encoded_in_doubling_windows(
    demo_watchlist, tmp_path
):
    """Grace Hopper, small and still, from frame 30 (1.2 s) to 249 (9.96 s) at 25 fps: too
    small for the quick searches, so first found by the full search at 2 s, and looked for
    back to frame 30 three frames at a time, then frame by frame. Her views: the first at
    2 s, the best of each window of track time (1, 2 and 4 s long) at 3, 5 and 9 s, and the
    last window's at her end: 5 (one a second would be 9)."""
    clip, summary = tmp_path / "still.mp4", tmp_path / "s.json"
    synthetic.write_clip(
        clip, [synthetic.Shot(str(SAMPLE / "Grace_Hopper.jpg"), 30, 249, 0.4, 0.3, 0.3)], 260
    )
    result = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--workers", "1", "--format", "jsonl",
        "--detections", "--summary", summary, clip,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = jsonl(result.stdout)
    assert {r["identity"] for r in rows} == {"Grace_Hopper"}
    assert min(r["frame"] for r in rows) == 30 and max(r["frame"] for r in rows) == 249
    assert json.loads(summary.read_text())["encodings_per_face"] == {"5": 1}


def test_a_face_lost_for_a_moment_is_one_appearance_found_again_to_the_frame(
    demo_watchlist, tmp_path
):
    """Grace Hopper walks right 1 px a frame and is hidden for frames 50-69 (0.8 s). Her
    region is searched again at the 1st, 2nd and 4th analysed frames after she was lost,
    not at every one (issue 38); the whole-frame search that finds her again continues
    her track, back to the first frame she is there again (the code before this split it
    in two)."""
    from frs_cli.scanner.analyse import looks_again

    assert [n for n in range(1, 10) if looks_again(n)] == [1, 2, 4, 8]
    hopper, clip = str(SAMPLE / "Grace_Hopper.jpg"), tmp_path / "hidden.mp4"
    shots = [synthetic.Shot(hopper, 0, 49, 0.15, 0.3, 0.3, 1.0),
             synthetic.Shot(hopper, 70, 149, 0.15 + 70 / 640, 0.3, 0.3, 1.0)]  # fmt: skip
    synthetic.write_clip(clip, shots, 150)
    result = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--workers", "1", "--format", "jsonl",
        "--detections", clip,
    )  # fmt: skip
    rows = jsonl(result.stdout)
    assert {(r["identity"], r["track_id"]) for r in rows} == {("Grace_Hopper", 1)}
    frames = sorted(r["frame"] for r in rows)
    assert len(frames) == len(set(frames))  # one sighting a frame
    assert frames[0] == 0 and frames[-1] == 149
    assert max(f for f in frames if f < 60) == 49 and min(f for f in frames if f > 60) == 70
