"""The Python API: docs/api.md's examples run as written; the API imports neither Click
nor rich; no module below the command line imports it (no import circles); the API and
the command give the same rows."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, SAMPLE, SHARED, jsonl, needs_shared, run_cli
from test_evaluate import tiny_dataset

import frs_cli as frs

API_DOC = ROOT / "docs" / "api.md"


def test_the_examples_in_docs_api_md_run(tmp_path, monkeypatch):
    for name in ("Grace_Hopper.jpg", "Eileen_Collins.png", "demo.mp4"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    (tmp_path / "people").mkdir()
    tiny_dataset(tmp_path / "people")
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", API_DOC.read_text(), re.S)
    assert len(blocks) >= 6
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(API_DOC), "exec"), namespace)  # noqa: S102
    assert namespace["rows"] == frs.read_results(tmp_path / "hits.csv")


def test_importing_the_api_loads_neither_click_nor_rich():
    code = (
        "import sys, frs_cli as frs\n"
        "frs.scan, frs.Watchlist, frs.read_results, frs.evaluate, frs.Appearance\n"
        "bad = {'click', 'rich'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_scan_streams_file_by_file_and_reports_failures(demo_watchlist, tmp_path):
    missing = tmp_path / "missing.mp4"
    scan = frs.scan([SAMPLE / "demo.mp4", missing], watchlist=demo_watchlist, workers=1)
    iterator = iter(scan)
    first = next(iterator)
    assert first.identity == "Grace_Hopper" and scan.summary is None  # still running
    rest = list(iterator)
    assert len(rest) == 2 and scan.summary is not None
    assert scan.failures == [(str(missing), "no such file or folder")]
    with pytest.raises(frs.FrsError):
        list(scan)


@needs_shared
@pytest.mark.slow
def test_the_api_and_the_command_give_identical_rows_on_shared_footage(shared_watchlist):
    footage = [
        SHARED / "footage" / "short_hamilton_clip.mp4",
        SHARED / "footage" / "street_1080p.mp4",
    ]
    result = run_cli("scan", "-q", "-w", shared_watchlist, "--format", "jsonl", "--workers", "2",
                     "--unmatched", *footage)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    api = [a.to_dict() for a in frs.scan(footage, shared_watchlist, workers=2, unmatched=True)]
    assert api == jsonl(result.stdout) and len(api) >= 5
    assert os.path.exists(f"{shared_watchlist}.audit.jsonl")


def test_a_scan_after_the_callers_own_frame_conversions_does_not_hang(demo_watchlist):
    """PyAV 18.1.1 keeps one swscale converter per thread, with slice threads unless told
    otherwise: a worker forked after the caller converted a frame inherits it without those
    threads, and its first conversion of another size waited forever. The workers set it
    aside (decode.forget_inherited_converter); run apart, so a hang fails, not blocks."""
    code = (
        "import av, frs_cli as frs\n"
        "av.VideoFrame(1920, 1080, 'yuv420p').to_ndarray(format='rgb24', threads=0)\n"
        f"rows = list(frs.scan({str(SAMPLE / 'demo.mp4')!r}, watchlist={str(demo_watchlist)!r},"
        " workers=2))\n"
        "print(sorted({r.identity for r in rows}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['Eileen_Collins', 'Grace_Hopper']"
