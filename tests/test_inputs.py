"""What scan does with folders, globs, broken and non-video files."""

import shutil

from conftest import SAMPLE, jsonl, run_cli

DEMO = SAMPLE / "demo.mp4"


def test_folder_with_a_broken_file_exits_3_and_keeps_the_good_rows(demo_watchlist, tmp_path):
    folder = tmp_path / "case 7 — exports"
    (folder / "day2").mkdir(parents=True)
    shutil.copy(DEMO, folder / "a.mp4")
    shutil.copy(DEMO, folder / "day2" / "b.mov")
    (folder / "broken.mp4").write_text("this is not a video\n")
    (folder / "notes.txt").write_text("not footage, silently passed over\n")
    data = DEMO.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    result = run_cli("scan", "-w", demo_watchlist, "--format", "jsonl", folder)
    assert result.exit_code == 3
    rows = jsonl(result.stdout)
    assert sorted({r["source"] for r in rows}) == [
        str(folder / "a.mp4"),
        str(folder / "day2" / "b.mov"),
    ]
    assert len(rows) == 6
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert errors[0].startswith(f"error: {folder / 'broken.mp4'}: not a readable video")
    assert errors[1].startswith(
        f"error: {folder / 'truncated.mp4'}: not a readable video (moov atom"
    )
    assert "notes.txt" not in result.stderr
    assert "scanned 2 file(s)" in result.stderr and "2 failed" in result.stderr


def test_glob_and_missing_paths(demo_watchlist, tmp_path):
    shutil.copy(DEMO, tmp_path / "x1.mp4")
    result = run_cli(
        "scan",
        "-q",
        "-w",
        demo_watchlist,
        "--format",
        "jsonl",
        str(tmp_path / "x*.mp4"),
        tmp_path / "nope.mp4",
    )
    assert result.exit_code == 3
    assert len(jsonl(result.stdout)) == 3
    assert f"error: {tmp_path / 'nope.mp4'}: no such file or folder" in result.stderr


def test_photo_or_empty_file_as_footage_fails_cleanly(demo_watchlist, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    result = run_cli("scan", "-q", "-w", demo_watchlist, SAMPLE / "Grace_Hopper.jpg", empty)
    assert result.exit_code == 1  # nothing could be scanned
    assert "is a still image, not a video; use `frs enroll` for photos" in result.stderr
    assert f"error: {empty}: empty file (0 bytes)" in result.stderr
    assert "Traceback" not in result.stderr
