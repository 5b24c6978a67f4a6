"""Nothing destroyed, round two (issue 31): the review page, evidence clips, clocks and
settings, tried as a careless analyst and as an attacker would. One test per row of the
issue's table, each of which failed on the code before the fix; the rules behind them are
in docs/design.md ("What frs writes and how")."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import sqlite3
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import SAMPLE, jsonl, run_cli

from frs_cli.records import Appearance, Box
from frs_cli.results import report
from frs_cli.scanner import persons
from frs_cli.video import wallclock
from frs_cli.video.synthetic import Shot, write_clip
from frs_cli.watchlist import audit

CLIP = SAMPLE / "demo.mp4"  # 8 s, 640x360: Grace Hopper twice, Eileen Collins once
HOPPER = SAMPLE / "Grace_Hopper.jpg"
COLLINS = SAMPLE / "Eileen_Collins.png"


def digest(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture(scope="module")
def short(tmp_path_factory) -> Path:
    """1 s, 25 fps: Grace Hopper from frame 3 to 22."""
    path = tmp_path_factory.mktemp("short") / "short.mp4"
    write_clip(path, [Shot(HOPPER, 3, 22, x=0.1, y=0.1, height=0.8)], 25, fps=25)
    return path


def row(source: str, **changes) -> dict:
    base = {
        "source": source, "identity": "Grace_Hopper", "start_s": 1.0, "end_s": 2.0,
        "best_s": 1.5, "distance": 0.3, "margin": 0.2, "track_id": 1,
    }  # fmt: skip
    return {**base, **changes}


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- 1. the page written over what it shows ---------------------------------------------
def test_the_page_is_never_written_over_footage_or_an_enrolment_photo(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in (HOPPER, COLLINS):
        shutil.copy(p, photos / p.name)
    wl = tmp_path / "w.db"
    assert run_cli("enroll", "-q", "-w", wl, *sorted(photos.iterdir())).exit_code == 0
    clip = tmp_path / "ev.mp4"
    shutil.copy(CLIP, clip)
    results = write_rows(tmp_path / "r.jsonl", [row(str(clip))])
    kept = {p: digest(p) for p in (clip, *photos.iterdir())}
    # The footage of a row; Grace Hopper's photo (on the page); Eileen Collins's photo
    # (enrolled, not on the page: still never written over).
    for target in (clip, photos / HOPPER.name, photos / COLLINS.name):
        result = run_cli("report", results, "-w", wl, "--html", target)
        assert result.exit_code == 2, result.stderr
        assert "frs never writes over a file it reads" in result.stderr
    assert {p: digest(p) for p in kept} == kept


# -- 2. clips of the footage the scan read, analysed as it was ----------------------------
def test_clips_are_of_the_file_the_scan_read_not_a_name_in_this_folder(
    wl, short, tmp_path, monkeypatch
):
    scanned, other = tmp_path / "case", tmp_path / "elsewhere"
    scanned.mkdir(), other.mkdir()
    shutil.copy(short, scanned / "cam.mp4")
    shutil.copy(CLIP, other / "cam.mp4")  # another film by the same name
    monkeypatch.chdir(scanned)
    scan = run_cli("scan", "-q", "-w", wl, "--format", "jsonl", "--out", "hits.jsonl", "cam.mp4")
    assert scan.exit_code == 0 and len(jsonl(Path("hits.jsonl").read_text())) == 1
    monkeypatch.chdir(other)
    result = run_cli("report", scanned / "hits.jsonl", "-w", wl, "--clips", "clips")
    assert result.exit_code == 0, result.stderr
    [made] = Path("clips").iterdir()
    import av

    with av.open(str(made)) as c:
        assert c.streams.video[0].frames in (25, 24)  # the 1 s clip, not the 8 s one
    # The file the scan read, changed since: not the footage; one error line.
    shutil.copy(CLIP, scanned / "cam.mp4")
    result = run_cli("report", scanned / "hits.jsonl", "-w", wl, "--clips", "clips2")
    assert result.exit_code == 1
    assert "is not the file the scan read (its content differs)" in result.stderr


def test_a_clip_finds_a_small_face_with_the_scans_min_face(wl, tmp_path):
    clip = tmp_path / "small.mp4"  # a 22-pixel face: found at --min-face 20, not at 40
    write_clip(clip, [Shot(HOPPER, 0, 49, x=0.4, y=0.3, height=0.18)], 50, fps=25)
    out = tmp_path / "hits.jsonl"
    scan = run_cli("scan", "-q", "-w", wl, "--min-face", "20", "--format", "jsonl", "--out",
                   out, "--tolerance", "0.6", clip)  # fmt: skip
    assert scan.exit_code == 0 and len(jsonl(out.read_text())) == 1
    result = run_cli("report", out, "-w", wl, "--clips", tmp_path / "clips")
    assert result.exit_code == 0, result.stderr
    assert "without the box" not in result.stderr
    import av

    [made] = (tmp_path / "clips").iterdir()
    with av.open(str(made)) as c:
        frame = next(f for k, f in enumerate(c.decode(video=0)) if k == 25).to_ndarray(
            format="rgb24"
        )
    red = (frame[..., 0] > 180) & (frame[..., 1] < 90) & (frame[..., 2] < 90)
    assert red.sum() > 60  # the box drawn around the face (none before: not found again)


# -- 3. a date out of range in a file's tags --------------------------------------------
def test_a_creation_time_out_of_range_is_a_warning_for_that_file(wl, short, tmp_path, monkeypatch):
    from frs_cli.video import decode

    files = [tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"]
    for path in files:
        shutil.copy(short, path)
    # What the container of b.mp4 says (MP4 keeps 32 bits of seconds, so the tag is faked
    # as the probe reads it; Matroska and others carry it as text).
    real = decode._creation_time
    monkeypatch.setattr(
        decode,
        "_creation_time",
        lambda c, s: "9999-12-31T23:59:59Z" if c.name.endswith("b.mp4") else real(c, s),
    )
    result = run_cli("scan", "-w", wl, "--format", "jsonl", *files)
    assert result.exit_code == 0, result.stderr
    assert [Path(r["source"]).name for r in jsonl(result.stdout)] == ["a.mp4", "b.mp4", "c.mp4"]
    assert "creation_time '9999-12-31T23:59:59Z' is not a usable date and time" in result.stderr
    assert audit.read(wl)[-1]["counts"]["files_scanned"] == 3
    said = run_cli("scan", "-w", wl, "--start-time", "9999-12-31T23:59:59Z", short)
    assert said.exit_code == 2 and "is not between 1970 and 2199" in said.stderr


# -- 4. the machine's zone, with its daylight-saving rules; times added in UTC -----------
def test_times_of_day_follow_the_zone_and_its_daylight_saving(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/London")
    summer = wallclock.resolve(
        "cam_20240715_120000.mp4", None, wallclock.ClockOptions(name_pattern="%Y%m%d_%H%M%S")
    )[0]
    assert wallclock.iso(summer.start) == "2024-07-15T12:00:00.000+01:00"
    winter = wallclock.resolve("x.mp4", "2024-01-15T12:00:00Z", wallclock.ClockOptions())[0]
    assert wallclock.iso(winter.start) == "2024-01-15T12:00:00.000+00:00"
    london = wallclock.parse_zone("Europe/London")
    start = wallclock.parse_time("2024-10-27T01:59:58", london)  # BST, a second before 02:00
    clock = wallclock.resolve("x.mp4", None, wallclock.ClockOptions(start_time=start, tz=london))[0]
    seen = Appearance("x.mp4", 1, 0, 3, 1, "A", 0.3, 0.1, 3, Box(0, 0, 9, 9),
                      clock_start=clock.start)  # fmt: skip
    begin, end = seen.wall(seen.start_s), seen.wall(seen.end_s)
    assert (wallclock.iso(begin), wallclock.iso(end)) == (
        "2024-10-27T01:59:58.000+01:00",
        "2024-10-27T01:00:01.000+00:00",  # the clocks went back: 3 s later, not an hour
    )
    row_times = [dt.datetime.fromisoformat(wallclock.iso(t)) for t in (begin, end)]
    assert row_times[1] - row_times[0] == dt.timedelta(seconds=3)


# -- 5. person labels cannot be resumed ----------------------------------------------------
def test_resume_with_unmatched_is_refused(wl, tmp_path):
    out = tmp_path / "o.csv"
    result = run_cli("scan", "-w", wl, "--unmatched", "--resume", "--out", out, CLIP)
    assert result.exit_code == 2 and "--resume cannot continue --unmatched" in result.stderr


# -- 6. the settings file is an input -----------------------------------------------------
@pytest.mark.parametrize("option", ["--out", "--summary"])
def test_the_settings_file_is_never_written_over(wl, tmp_path, option):
    config = tmp_path / "cams.toml"
    config.write_text('[[camera]]\nfiles = "*"\nmin_face = 30\n')
    before = config.read_text()
    result = run_cli("scan", "-w", wl, "--settings", config, option, config, CLIP)
    assert result.exit_code == 2 and "is --settings" in result.stderr
    assert config.read_text() == before


# -- 7. names are never markup --------------------------------------------------------------
def test_a_name_with_markup_reaches_the_terminal_as_it_is():
    from rich.console import Console

    from frs_cli.cli.evaluate import _console, _print_groups
    from frs_cli.scanner.progress import ScanProgress

    screen = io.StringIO()
    progress = ScanProgress(False, console=Console(file=screen, force_terminal=True, width=200))
    progress.enabled = True
    with progress:
        info = SimpleNamespace(path="x[/]y.mp4", duration_s=1.0)
        progress.file_started(info, [])
        progress.progress.refresh()
    assert "x[/]y.mp4" in screen.getvalue()
    row = {"mated_searches": 1, "non_mated_searches": 1, "rank1_identification_rate": 1.0,
           "fnir": 0.0, "fpir": 0.0}  # fmt: skip
    groups = {"per_group": {"[/]": row, "[bold]x": row},
              "spread": {"fnir": 0.0, "fpir": 0.0, "rank1_identification_rate": 0.0}}  # fmt: skip
    console = _console()
    console.file = screen = io.StringIO()
    _print_groups(console, groups, 0.6)
    assert "[/]" in screen.getvalue() and "[bold]x" in screen.getvalue()


# -- 8. what a results file points at ---------------------------------------------------
def bomb_png(path: Path) -> Path:
    """68 bytes of PNG that say 30000x30000 pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"")
                     + chunk(b"IEND", b""))  # fmt: skip
    return path


def test_a_page_embeds_only_the_scans_own_crops(wl, tmp_path):
    crops = tmp_path / "crops"
    out = tmp_path / "hits.jsonl"
    scan = run_cli("scan", "-q", "-w", wl, "--crops", crops, "--format", "jsonl", "--out", out,
                   CLIP)  # fmt: skip
    assert scan.exit_code == 0
    rows = jsonl(out.read_text())
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    elsewhere = tmp_path / "private.jpg"  # any picture on the machine
    shutil.copy(HOPPER, elsewhere)
    planted = [rows[0] | {"crop": str(fifo)}, rows[1] | {"crop": str(bomb_png(tmp_path / "b.png"))},
               rows[2] | {"crop": str(elsewhere)}]  # fmt: skip
    write_rows(out, planted)
    page = tmp_path / "p.html"
    result = run_cli("report", out, "-w", wl, "--html", page)
    assert result.exit_code == 0, result.stderr
    assert "3 crop(s) not shown: not in the --crops folder" in result.stderr
    items = json.loads(page.read_text().split('id="data">')[1].split("</script>")[0])["items"]
    assert [i["crop"] for i in items] == [None, None, None]
    assert all(i["frame"].startswith("data:image/jpeg") for i in items)  # the scan's own
    assert report.data_uri(tmp_path / "b.png") is None and report.data_uri(fifo) is None


# -- 9. a pattern that reads a part twice -----------------------------------------------
def test_a_name_pattern_with_a_code_twice_is_a_usage_error(wl, tmp_path):
    result = run_cli("scan", "-w", wl, "--clock-from-name", "%Y%m%d_%Y", CLIP)
    assert result.exit_code == 2 and "gives %Y more than once" in result.stderr


# -- 10. a stream whose frame size changes -----------------------------------------------
def two_parts(path: Path, sizes: tuple[tuple[int, int], tuple[int, int]]) -> Path:
    """Two MPEG-TS recordings joined (2 s each), Grace Hopper and Eileen Collins in both."""
    shots = [Shot(HOPPER, 5, 45, x=0.1, y=0.1, height=0.8),
             Shot(COLLINS, 10, 45, x=0.6, y=0.2, height=0.6)]  # fmt: skip
    data = b""
    for k, (w, h) in enumerate(sizes):
        part = path.with_suffix(f".{k}.ts")
        write_clip(part, shots, 50, fps=25, width=w, height=h, pts_offset=52 * k, gop=25)
        data += part.read_bytes()
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("sizes", [((320, 180), (640, 360)), ((640, 360), (320, 180))])
def test_each_frame_size_of_a_stream_is_analysed(wl, tmp_path, sizes):
    joined = two_parts(tmp_path / "joined.ts", sizes)
    result = run_cli("scan", "-w", wl, "--workers", "1", "--format", "jsonl", joined)
    assert result.exit_code == 0, result.stderr
    found = sorted((r["identity"], round(r["start_s"])) for r in jsonl(result.stdout))
    # Eileen Collins's face is 25 px in the small part: too small at the default --min-face.
    small_first = sizes[0][0] < sizes[1][0]
    want = [("Eileen_Collins", 2 if small_first else 0), ("Grace_Hopper", 0), ("Grace_Hopper", 2)]
    assert found == want


# -- 11. one failing clip: the page is still made ----------------------------------------
def test_one_failing_clip_leaves_the_rest_and_the_page(wl, short, tmp_path):
    out = tmp_path / "hits.jsonl"
    run_cli("scan", "-q", "-w", wl, "--format", "jsonl", "--out", out, short)
    [good] = jsonl(out.read_text())
    out.write_text(
        out.read_text() + json.dumps(good | {"source": str(tmp_path / "gone.mp4")}) + "\n"
    )
    page = tmp_path / "p.html"
    result = run_cli("report", out, "-w", wl, "--clips", tmp_path / "clips", "--html", page)
    assert result.exit_code == 3
    assert f"error: {tmp_path / 'gone.mp4'}: no such file" in result.stderr
    assert "wrote 1 clip(s)" in result.stderr and page.exists()


# -- 12. two scans, one name, two folders -------------------------------------------------
def test_the_page_states_the_rule_of_the_scan_that_wrote_the_file(wl, short, tmp_path, monkeypatch):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, rule in ((first, ("--tolerance", "0.55")), (second, ("--fpir", "0.01"))):
        folder.mkdir()
        monkeypatch.chdir(folder)
        scan = run_cli("scan", "-q", "-w", wl, *rule, "--out", "hits.csv", short)
        assert scan.exit_code == 0
    page = tmp_path / "p.html"
    assert run_cli("report", first / "hits.csv", "-w", wl, "--html", page).exit_code == 0
    assert "this scan alerted at distance &lt;= 0.55" in page.read_text()


# -- 13. usage errors, not internal errors ------------------------------------------------
@pytest.mark.parametrize(
    "args, said",
    [(("--timezone", "+24:00"), "an offset runs from -23:59 to +23:59"),
     (("--timezone", "Europe"), "'Europe' is not a time zone"),
     (("--timezone", ""), "'' is not a time zone"),
     (("--start-time", ""), "--start-time '' is not a date and time"),
     (("--clock", "dmeo.mp4=2024-03-01T10:00:00Z"), "dmeo.mp4 is none of the footage files")],
)  # fmt: skip
def test_bad_clock_options_are_usage_errors(wl, args, said):
    result = run_cli("scan", "-w", wl, *args, CLIP)
    assert result.exit_code == 2 and said in result.stderr, result.stderr


@pytest.mark.parametrize(
    "text, said",
    [("timezone = 5", "timezone = \"NAME\""),
     ('clock_from_name = ["%Y%m%d"]', 'clock_from_name = "PATTERN"'),
     ("roi = [[true, true, 8, 8]]", "roi = [[X, Y, W, H], ...] in whole pixels"),
     ("min_face = true", "min_face is a whole number"),
     ("start_time = 9999-12-31T00:00:00Z", "is not between 1970 and 2199")],
)  # fmt: skip
def test_bad_settings_values_are_usage_errors(wl, tmp_path, text, said):
    config = tmp_path / "cams.toml"
    config.write_text(f'[[camera]]\nfiles = "*"\n{text}\n')
    result = run_cli("scan", "-w", wl, "--settings", config, CLIP)
    assert result.exit_code == 2 and said in result.stderr, result.stderr


def test_a_bad_row_is_one_error_line_and_the_page_goes_on(wl, tmp_path):
    results = write_rows(tmp_path / "r.jsonl", [
        row("a.mp4", end_s=None), row("b.mp4", start_s=1e300), row("c.mp4", end_s=0.5),
        row("d.mp4"),
    ])  # fmt: skip
    page = tmp_path / "p.html"
    result = run_cli("report", results, "-w", wl, "--html", page)
    assert result.exit_code == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and "internal error" not in result.stderr
    assert "has end_s None, not a time in the file" in errors[0]
    assert "has start_s 1e+300, not a time in the file" in errors[1]
    assert "ends before it starts" in errors[2]
    assert "d.mp4" in page.read_text() and "a.mp4" not in page.read_text()


# -- 14. an input that matches nothing is said --------------------------------------------
def test_a_camera_that_matches_no_file_is_said(tmp_path):
    config = tmp_path / "cams.toml"
    config.write_text('[[camera]]\nfiles = "cam9_*"\nmin_face = 30\n')
    # Said before any work: here the watchlist does not exist, and the scan stops there.
    result = run_cli("scan", "-w", tmp_path / "none.db", "--settings", config, CLIP)
    assert "warning: --settings camera 1 (files = 'cam9_*') matches none of the footage" in (
        result.stderr
    )


# -- 15. places that cannot be written --------------------------------------------------
@pytest.fixture
def read_only_folder(tmp_path):
    """An empty folder on a read-only bind mount (root and a kernel that allow it)."""
    real, mount = tmp_path / "real", tmp_path / "ro"
    real.mkdir(), mount.mkdir()
    (real / "sub").mkdir()
    if os.system(f"mount --bind {real} {mount} 2>/dev/null") != 0:
        pytest.skip("cannot bind-mount here (needs root)")
    try:
        if os.system(f"mount -o remount,ro,bind {mount} 2>/dev/null") != 0:
            pytest.skip("cannot remount read-only here")
        yield mount
    finally:
        os.system(f"umount -l {mount}")


def test_unwritable_places_are_one_line(wl, short, read_only_folder, tmp_path):
    out = tmp_path / "hits.jsonl"
    assert run_cli("scan", "-q", "-w", wl, "--format", "jsonl", "--out", out, short).exit_code == 0
    for args in (("--out", read_only_folder / "x.csv"), ("--crops", read_only_folder / "sub")):
        result = run_cli("scan", "-q", "-w", wl, *args, short)
        assert result.exit_code == 1 and "Read-only file system" in result.stderr, result.stderr
        assert "internal error" not in result.stderr
    result = run_cli("report", out, "-w", wl, "--clips", read_only_folder / "sub")
    assert result.exit_code == 1 and "cannot write into --clips" in result.stderr


# -- 16. terminal escape sequences ------------------------------------------------------
def test_names_reach_the_terminal_escaped(tmp_path, capsys):
    from frs_cli.cli.scan import _print_summary
    from frs_cli.scanner import scanning

    stats = scanning.ScanStats(inputs=[{"path": "a\x1b]0;owned\x07.mp4", "times": "derived"}])
    _print_summary(stats, scanning.ScanConfig(inputs=(), watchlist=tmp_path / "w.db"))
    err = capsys.readouterr().err
    assert "a\\x1b]0;owned\\x07.mp4" in err and "\x1b" not in err
    wl = tmp_path / "w.db"
    name = "Grace\x1b[2J_Hopper"
    assert run_cli("enroll", "-q", "-w", wl, "--name", name, HOPPER, COLLINS).exit_code == 0
    result = run_cli("watchlist", "verify", "-w", wl)
    assert "Grace\\x1b[2J_Hopper" in result.stderr and "\x1b" not in result.stderr


# -- 17. smaller ones ---------------------------------------------------------------------
def test_enroll_starts_no_more_workers_than_cores(tmp_path, monkeypatch):
    import frs_cli.watchlist.enroll
    from frs_cli.cli import base

    asked = []

    def record(wl, paths, name, workers, *args, **kwargs):
        asked.append(workers)
        return frs_cli.watchlist.enroll.EnrolStats()

    monkeypatch.setattr(base, "_default_workers", lambda: 2)
    monkeypatch.setattr(frs_cli.watchlist.enroll, "enrol_into", record)
    run_cli("enroll", "-q", "-w", tmp_path / "w.db", "--workers", "4", HOPPER)
    assert asked == [2]


def test_a_vector_of_no_encodings_length_fails_verify_and_the_scan(wl):
    with sqlite3.connect(wl) as conn:
        conn.execute("UPDATE faces SET vector = ? WHERE id = 1",
                     (np.full(128, 1e30, np.float32).tobytes(),))  # fmt: skip
    result = run_cli("watchlist", "verify", "-w", wl)
    assert (
        result.exit_code == 1
        and "Grace_Hopper have a vector that is not 128 finite numbers of length" in result.stderr
    )
    scan = run_cli("scan", "-q", "-w", wl, CLIP)
    assert scan.exit_code == 1 and "have no valid encoding" in scan.stderr


def test_one_file_named_two_ways_gets_two_clips(wl, short, tmp_path, monkeypatch):
    monkeypatch.chdir(short.parent)
    out = tmp_path / "hits.jsonl"
    run_cli("scan", "-q", "-w", wl, "--format", "jsonl", "--out", out, "short.mp4", "./short.mp4")
    assert len(jsonl(out.read_text())) == 2
    result = run_cli("report", out, "-w", wl, "--clips", tmp_path / "clips")
    assert result.exit_code == 0 and "wrote 2 clip(s)" in result.stderr
    assert len(list((tmp_path / "clips").iterdir())) == 2


def test_crops_inside_the_footage_folder_are_refused(wl, short, tmp_path):
    result = run_cli("scan", "-w", wl, "--crops", short.parent / "crops", short.parent)
    assert result.exit_code == 2 and "is inside" in result.stderr
    assert not (short.parent / "crops").exists()


def test_an_empty_file_made_a_watchlist_becomes_owner_only(tmp_path):
    path = tmp_path / "w.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    assert run_cli("enroll", "-q", "-w", path, HOPPER).exit_code == 0
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_full_disk_does_not_count_the_file_it_could_not_write(wl, tmp_path):
    summary = tmp_path / "s.json"
    result = run_cli("scan", "-w", wl, "--out", "/dev/full", "--summary", summary, CLIP)
    assert result.exit_code == 1
    data = json.loads(summary.read_text())
    assert (data["files_scanned"], data["footage_s"], data["alerts"], data["tracks"]) == (
        0,
        0,
        0,
        0,
    )
    [entry] = data["inputs"]
    assert entry["status"] == "failed" and entry["reason"] == "its rows were not written"


@pytest.mark.parametrize("what", ["settings", "results"])
def test_a_fifo_is_refused_not_waited_for(wl, tmp_path, what):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    if what == "settings":
        result = run_cli("scan", "-w", wl, "--settings", fifo, CLIP)
    else:
        result = run_cli("report", fifo, "-w", wl, "--html", tmp_path / "p.html")
    assert result.exit_code == 2 and "is a FIFO (named pipe)" in result.stderr


def test_person_labels_skip_only_people_who_cannot_matter():
    """The bound on each person's distance (persons.People) changes no label: the same
    labels as comparing each track with every view of everyone, on clustered vectors."""

    class Everyone(persons.People):
        def _nearest(self, source, start, end, views):
            if not self.people:
                return None
            spread = [float(persons.distances(views, p.views).min(axis=1).mean())
                      for p in self.people]  # fmt: skip
            order = np.argsort(spread, kind="stable")
            best, second = spread[order[0]], spread[order[1]] if len(order) > 1 else np.inf
            if (
                best <= persons.SAME_PERSON
                and second - best >= persons.MARGIN
                and not (persons._overlaps(self.people[int(order[0])], source, start, end))
            ):
                return int(order[0])
            return None

    rng = np.random.default_rng(7)
    centres = rng.normal(size=(150, 128))
    centres *= 1.4 / np.linalg.norm(centres, axis=1, keepdims=True)
    tracks = []
    for k in range(600):
        who = rng.integers(150)
        views = centres[who] + rng.normal(scale=0.35 / np.sqrt(128), size=(rng.integers(1, 4), 128))
        tracks.append((f"f{k // 50}", k, k, views))
    quick, full = persons.People(), Everyone()
    labels = [[p.label(s, [(a, b, v)])[0] for s, a, b, v in tracks] for p in (quick, full)]
    assert labels[0] == labels[1] and 100 < len(set(labels[0])) < 600
