"""The analyst's workflow (issue 23): the time of day of each appearance, and a Python
API that takes what it hands out. Real faces in generated clips whose clocks are known."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import numpy as np
import pytest
from conftest import SAMPLE, SHARED, jsonl, needs_shared, run_cli

import frs_cli as frs
from frs_cli.errors import UsageError
from frs_cli.video import wallclock
from frs_cli.video.synthetic import Shot, write_clip

HOPPER = str(SAMPLE / "Grace_Hopper.jpg")


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """A 2 s clip whose container says creation_time 2024-03-01T10:00:00Z, Grace Hopper
    from frame 5 to 40 (25 fps)."""
    path = tmp_path_factory.mktemp("clock") / "tagged.mp4"
    shots = [Shot(HOPPER, 5, 40, x=0.1, y=0.1, height=0.8)]
    write_clip(path, shots, 50, fps=25, metadata={"creation_time": "2024-03-01T10:00:00Z"})
    return path


def wall(row: dict, key: str) -> dt.datetime:
    return dt.datetime.fromisoformat(row[key])


def test_the_containers_creation_time_gives_the_time_of_day(demo_watchlist, tagged):
    result = run_cli("scan", "-q", "-v", "-w", demo_watchlist, "--format", "jsonl", tagged)
    assert result.exit_code == 0, result.stderr
    [row] = jsonl(result.stdout)
    assert row["identity"] == "Grace_Hopper" and row["start_s"] == 0.2
    assert row["start_wall"] == "2024-03-01T10:00:00.200+00:00"
    assert wall(row, "end_wall") - wall(row, "start_wall") == dt.timedelta(
        seconds=row["end_s"] - row["start_s"]
    )
    assert "clock: 2024-03-01T10:00:00.000+00:00 at 0 s, from container creation_time" in (
        result.stderr
    )


def test_the_analyst_overrides_and_a_disagreement_is_a_warning(demo_watchlist, tagged, tmp_path):
    summary = tmp_path / "s.json"
    result = run_cli(
        "scan", "-w", demo_watchlist, "--format", "jsonl", "--summary", summary,
        "--start-time", "2024-03-01T12:00:00", "--timezone", "+01:00", tagged,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [row] = jsonl(result.stdout)
    assert row["start_wall"] == "2024-03-01T12:00:00.200+01:00"  # 11:00 UTC
    assert "warning: " in result.stderr and "3600 s from --start-time" in result.stderr
    assert "clock of the files: 1 from --start-time" in result.stderr
    [entry] = json.loads(summary.read_text())["inputs"]
    assert entry["clock"] == {"start": "2024-03-01T12:00:00.000+01:00", "source": "--start-time"}
    # --clock FILE=TIME comes first, for that file only.
    result = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--format", "jsonl",
        "--clock", f"{tagged}=2024-03-01T10:00:30Z", "--start-time", "2024-03-01T12:00:00Z",
        tagged,
    )  # fmt: skip
    assert jsonl(result.stdout)[0]["start_wall"] == "2024-03-01T10:00:30.200+00:00"


def test_the_clock_from_the_file_name(demo_watchlist, tagged, tmp_path):
    named = tmp_path / "cam1_20240301_093000.mp4"
    shutil.copy(tagged, named)
    result = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--timezone", "Europe/Paris",
        "--clock-from-name", "%Y%m%d_%H%M%S", named,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert jsonl(result.stdout)[0]["start_wall"] == "2024-03-01T09:30:00.200+01:00"
    # 09:30 Paris is 08:30 UTC: 5,400 s before the container's 10:00 UTC.
    assert "container creation_time says" in result.stderr and "5400 s" in result.stderr


def test_without_a_clock_the_columns_are_empty_and_the_rest_unchanged(demo_watchlist):
    result = run_cli("scan", "-q", "-w", demo_watchlist, SAMPLE / "demo.mp4")
    header, *rows = result.stdout.splitlines()
    assert header.endswith(",margin,second_identity,start_wall,end_wall,face_px,face_band")
    assert rows and all(r.split(",")[-4:-2] == ["", ""] for r in rows)
    detections = run_cli("scan", "-q", "-w", demo_watchlist, "--detections", SAMPLE / "demo.mp4")
    assert detections.stdout.splitlines()[0].endswith(",height,time_wall")


@pytest.mark.parametrize(
    "args, said",
    [
        (("--start-time", "yesterday"), "is not a date and time"),
        (("--clock", "2024-03-01T10:00:00Z"), "write it as FILE=TIME"),
        (("--clock", "x.mp4=10 o'clock"), "is not a date and time"),
        (("--clock-from-name", "%H%M%S"), "names no date"),
        (("--clock-from-name", "%Y%m%d_%Q"), "unknown code(s) %Q"),
        (("--timezone", "Mars/Olympus_Mons"), "is not a time zone"),
    ],
)
def test_bad_clock_options_are_usage_errors(demo_watchlist, tmp_path, args, said):
    out = tmp_path / "o.csv"
    result = run_cli("scan", "-w", demo_watchlist, "--out", out, *args, SAMPLE / "demo.mp4")
    assert result.exit_code == 2 and said in result.stderr
    assert not out.exists()  # nothing half-written


def test_clock_sources_by_hand():
    utc = dt.UTC
    assert wallclock.from_name("/x/NVR_ch2_20231224-235959.dav", "%Y%m%d-%H%M%S", utc) == (
        dt.datetime(2023, 12, 24, 23, 59, 59, tzinfo=utc)
    )
    assert wallclock.from_name("cam.mp4", "%Y%m%d", utc) is None
    # a placeholder
    assert wallclock.from_container("1970-01-01T00:00:00.000000Z") == (None, None)
    assert wallclock.from_container("2024-03-01 10:00:00") == (
        dt.datetime(2024, 3, 1, 10, tzinfo=utc),
        None,
    )
    with pytest.raises(UsageError):
        wallclock.parse_time("2024-13-01T00:00:00Z")
    clock, warnings = wallclock.resolve("a.mp4", None, wallclock.ClockOptions())
    assert clock is None and warnings == []


def test_the_api_takes_an_open_watchlist_and_gives_records_back(demo_watchlist, tagged, tmp_path):
    with frs.Watchlist.open(demo_watchlist) as wl:
        found = list(frs.scan(tagged, watchlist=wl, workers=1))
        assert wl.face_count() == 2  # still open: the caller's to close
    assert [a.identity for a in found] == ["Grace_Hopper"]
    assert found[0].to_dict()["start_wall"] == "2024-03-01T10:00:00.200+00:00"
    out = tmp_path / "o.jsonl"
    assert run_cli("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--out", out,
                   tagged, SAMPLE / "demo.mp4").exit_code == 0  # fmt: skip
    records = frs.read_results(out, records=True)
    assert all(isinstance(r, frs.Appearance) for r in records)
    assert [r.to_dict() for r in records] == frs.read_results(out)


def test_the_review_page_states_the_rule_and_the_time_of_day(demo_watchlist, tagged, tmp_path):
    out, page = tmp_path / "o.jsonl", tmp_path / "p.html"
    run_cli("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--out", out, tagged)
    assert run_cli("report", out, "--html", page, "-w", demo_watchlist).exit_code == 0
    text = page.read_text()
    assert "this scan alerted at distance &lt;= " in text and "0.6 by default" not in text
    assert '"start_wall": "2024-03-01T10:00:00.200+00:00"' in text
    # A copy elsewhere is the same rows: the scan is found by the file's fingerprint.
    elsewhere = tmp_path / "copy.jsonl"
    shutil.copy(out, elsewhere)
    run_cli("report", elsewhere, "--html", page, "-w", demo_watchlist)
    assert "this scan alerted at distance &lt;= " in page.read_text()
    # Rows no scan wrote (changed, and by another name): the rule is not known.
    elsewhere.write_text(out.read_text().replace("Grace_Hopper", "Grace_B_Hopper"))
    run_cli("report", elsewhere, "--html", page, "-w", demo_watchlist)
    assert "the rule this scan used is not in the watchlist" in page.read_text()


# -- regions of interest and per-camera settings ------------------------------------------
DEMO = SAMPLE / "demo.mp4"  # 640x360: Grace Hopper left (x 230), Eileen Collins right (x 456)


def rows_of(result) -> list[tuple[str, float, float]]:
    assert result.exit_code == 0, result.stderr
    return [(r["identity"], r["start_s"], r["end_s"]) for r in jsonl(result.stdout)]


def test_a_region_covering_the_frame_changes_nothing(demo_watchlist):
    args = ("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--workers", "1")
    whole = run_cli(*args, DEMO)
    covered = run_cli(*args, "--roi", "0,0,640,360", DEMO)
    assert covered.stdout == whole.stdout and len(jsonl(whole.stdout)) == 3


def test_a_region_keeps_only_the_faces_whose_centre_is_in_it(demo_watchlist, tmp_path):
    args = ("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--workers", "1")
    right = rows_of(run_cli(*args, "--roi", "380,0,260,360", DEMO))
    assert [r[0] for r in right] == ["Eileen_Collins"]
    both = rows_of(run_cli(*args, "--roi", "380,0,260,360", "--roi", "0,0,379,360", DEMO))
    assert sorted(both) == sorted(rows_of(run_cli(*args, DEMO)))
    # Less is searched: the detector's seconds fall with the region's pixels.
    small, full = tmp_path / "small.json", tmp_path / "full.json"
    run_cli(*args, "--roi", "380,0,260,360", "--summary", small, DEMO)
    run_cli(*args, "--summary", full, DEMO)
    seconds = [json.loads(f.read_text())["stage_seconds"]["detect"] for f in (small, full)]
    assert seconds[0] < 0.75 * seconds[1], seconds


@pytest.mark.parametrize(
    "roi, said",
    [("1,2,3", "write it as X,Y,W,H"), ("0,0,4,4", "width and height of 8"),
     ("600,0,100,100", "lies outside"), ("a,b,c,d", "write it as X,Y,W,H")],
)  # fmt: skip
def test_bad_regions_are_usage_errors(demo_watchlist, tmp_path, roi, said):
    out = tmp_path / "o.csv"
    result = run_cli("scan", "-w", demo_watchlist, "--out", out, "--roi", roi, DEMO)
    assert result.exit_code == 2 and said in result.stderr
    assert not out.exists()


def test_per_camera_settings_apply_by_glob(demo_watchlist, tagged, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(DEMO, folder / "cam1_20240301_080000.mp4")
    shutil.copy(DEMO, folder / "cam2_20240301_090000.mp4")
    config = tmp_path / "cams.toml"
    config.write_text(
        '[[camera]]\nfiles = "cam1_*"\nroi = [[380, 0, 260, 360]]\n'
        'clock_from_name = "%Y%m%d_%H%M%S"\ntimezone = "UTC"\n\n'
        '[[camera]]\nfiles = "*/cam2_*.mp4"\nstart_time = 2024-03-01T09:00:00Z\n'
    )
    result = run_cli("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--settings",
                     config, folder)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = jsonl(result.stdout)
    cam1 = [r for r in rows if "cam1" in r["source"]]
    cam2 = [r for r in rows if "cam2" in r["source"]]
    assert [r["identity"] for r in cam1] == ["Eileen_Collins"]  # cam1's region only
    assert cam1[0]["start_wall"] == "2024-03-01T08:00:05.000+00:00"
    assert len(cam2) == 3 and cam2[0]["start_wall"] == "2024-03-01T09:00:01.000+00:00"


@pytest.mark.parametrize(
    "text, said",
    [("[[camera]]\nfiles = 'x'\nroi = 3\n", "roi = [[X, Y, W, H]"),
     ("[[camera]]\nroi = [[0, 0, 9, 9]]\n", 'needs files = "GLOB"'),
     ("[[camera]]\nfiles = 'x'\nfps = 3\n", "unknown key(s) ['fps']"),
     ("[[camera]\n", "is not TOML"), ("[other]\n", "expected [[camera]] tables only")],
)  # fmt: skip
def test_a_settings_file_that_does_not_parse_is_a_usage_error(demo_watchlist, tmp_path, text, said):
    config = tmp_path / "cams.toml"
    config.write_text(text)
    result = run_cli("scan", "-w", demo_watchlist, "--settings", config, DEMO)
    assert result.exit_code == 2 and said in result.stderr, result.stderr


# -- unknown people across files ------------------------------------------------------------
def test_people_are_labelled_across_tracks_and_two_faces_in_a_frame_never_share(demo_watchlist):
    result = run_cli("scan", "-q", "-w", demo_watchlist, "--unmatched", "--format", "jsonl", DEMO)
    rows = jsonl(result.stdout)
    assert [(r["identity"], r["person"]) for r in rows] == [
        ("Grace_Hopper", "P0001"), ("Eileen_Collins", "P0002"), ("Grace_Hopper", "P0001"),
    ]  # fmt: skip
    plain = jsonl(run_cli("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", DEMO).stdout)
    assert all("person" not in r for r in plain)  # only with --unmatched


def test_people_by_hand():
    from frs_cli.scanner.persons import People

    a = np.zeros((2, 128))
    b = np.zeros((1, 128))
    b[0, 0] = 1.0  # another person, far away
    people = People()
    # Two faces in the same frames are two people, however alike.
    assert people.label("x.mp4", [(0, 100, a), (50, 150, a + 0.001)]) == ["P0001", "P0002"]
    # Later, in another file, the face matches both equally: when in doubt, a new label.
    assert people.label("y.mp4", [(0, 10, a)]) == ["P0003"]
    assert people.label("y.mp4", [(20, 30, b), (40, 50, b + 0.01)]) == ["P0004", "P0004"]


def _cut(source, target, first, last):
    """Frames first..last-1 of `source`, re-encoded as their own file (a camera's next
    file, or another camera)."""
    import av

    with av.open(str(source)) as src, av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        for k, frame in enumerate(src.decode(video=0)):
            if first <= k < last:
                for packet in stream.encode(frame.reformat(format="yuv420p")):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@needs_shared
def test_one_person_split_across_two_files_shares_one_label(demo_watchlist, tmp_path):
    heads = SHARED / "footage"
    _cut(heads / "talking_head_aoc.mp4", tmp_path / "a1.mp4", 0, 100)
    _cut(heads / "talking_head_hill.mp4", tmp_path / "b.mp4", 0, 100)
    _cut(heads / "talking_head_aoc.mp4", tmp_path / "c2.mp4", 100, 200)
    result = run_cli("scan", "-q", "-w", demo_watchlist, "--unmatched", "--format", "jsonl",
                     tmp_path / "a1.mp4", tmp_path / "b.mp4", tmp_path / "c2.mp4")  # fmt: skip
    rows = jsonl(result.stdout)
    people = {r["source"].rsplit("/", 1)[-1]: r["person"] for r in rows}
    assert len(rows) == 3 and people["a1.mp4"] == people["c2.mp4"] != people["b.mp4"]


# -- evidence clips -----------------------------------------------------------------------
def test_evidence_clips_one_playable_clip_per_appearance(demo_watchlist, tagged, tmp_path):
    import av

    from frs_cli.results import clips

    out = tmp_path / "hits.jsonl"
    run_cli("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--out", out, tagged, DEMO)
    rows = jsonl(out.read_text())
    # A row whose footage has gone: one error line, the other clips are still written.
    gone = dict(rows[0], source=str(tmp_path / "moved.mp4"))
    out.write_text(out.read_text() + json.dumps(gone) + "\n")
    folder = tmp_path / "clips"
    result = run_cli("report", out, "--clips", folder, "-w", demo_watchlist)
    assert result.exit_code == 3, result.stderr
    assert f"error: {tmp_path / 'moved.mp4'}: no such file" in result.stderr
    made = sorted(p.name for p in folder.iterdir())
    assert made == sorted(clips.clip_name(r) for r in rows) and len(made) == 4
    assert made[0].startswith("demo-") and "_00h00m01.000s_Grace_Hopper_t1" in made[0]
    for row in rows:
        path = folder / clips.clip_name(row)
        assert path.stat().st_mode & 0o777 == 0o600
        with av.open(str(path)) as clip:
            frames = list(clip.decode(video=0))
        # From PAD_S before to PAD_S after, within the file (25 fps; 2 s and 8 s files).
        length = 2.0 if row["source"] == str(tagged) else 8.0
        want = min(length, row["end_s"] + clips.PAD_S + 0.04) - max(0, row["start_s"] - clips.PAD_S)
        assert abs(len(frames) / 25 - want) <= 0.05, (row, len(frames))
    help_text = " ".join(run_cli("report", "--help").stdout.split())
    assert "2 s before to 2 s after" in help_text and clips.PAD_S == 2.0


def test_report_needs_something_to_make(demo_watchlist, tmp_path):
    out = tmp_path / "hits.jsonl"
    run_cli("scan", "-q", "-w", demo_watchlist, "--format", "jsonl", "--out", out, DEMO)
    result = run_cli("report", out, "-w", demo_watchlist)
    assert result.exit_code == 2 and "--html PAGE, --clips DIR, or both" in result.stderr


@needs_shared
def test_regions_on_the_hamilton_clip(shared_watchlist):
    clip = SHARED / "footage" / "short_hamilton_clip.mp4"
    args = ("scan", "-q", "-w", shared_watchlist, "--format", "jsonl", "--workers", "2")
    whole = run_cli(*args, clip).stdout
    assert run_cli(*args, "--roi", "0,0,640,360", clip).stdout == whole
    # Lin-Manuel Miranda's close-up (x ~200-310) is left of x 320; his small early
    # appearance (x ~516) is right of it.
    left = [
        (r["identity"], r["start_s"])
        for r in jsonl(run_cli(*args, "--roi", "0,0,320,360", clip).stdout)
    ]
    right = [
        (r["identity"], r["start_s"])
        for r in jsonl(run_cli(*args, "--roi", "320,0,320,360", clip).stdout)
    ]
    everything = [(r["identity"], r["start_s"]) for r in jsonl(whole)]
    assert left == [("lin-manuel-miranda", 3.58)] and left[0] in everything
    assert ("lin-manuel-miranda", 3.58) not in right
