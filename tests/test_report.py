"""Crops and the HTML review page, rendered in a real headless browser (Debian's
chromium; the browser tests skip when it is not installed)."""

import csv
import io
import json
import re
import shutil
import subprocess

import pytest
from conftest import SAMPLE, jsonl, run_cli

from frs_cli.faces.views import safe_name

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")


def test_safe_names():
    assert safe_name("=cmd|' /C calc'!A0") == "cmd_C_calc_A0"
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("Zoë Saldaña") == "Zoe_Saldana"
    assert safe_name("...") == "x"
    assert len(safe_name("a" * 300)) == 60


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, demo_watchlist):
    folder = tmp_path_factory.mktemp("review")
    crops = folder / "crops"
    out = folder / "hits.jsonl"
    result = run_cli(
        "scan", "-q", "-w", demo_watchlist, "--crops", crops, "--format", "jsonl", "--out", out,
        SAMPLE / "demo.mp4",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return folder, out, crops


def test_crops_for_matched_appearances_only(scanned):
    folder, out, crops = scanned
    rows = jsonl(out.read_text())
    assert len(rows) == 3
    for row in rows:
        assert row["margin"] is not None and row["margin"] > 0
        for key in ("crop", "frame_view"):
            path = row[key]
            assert path.startswith(str(crops)) and path.endswith(".jpg")
            with open(path, "rb") as f:
                assert f.read(3) == b"\xff\xd8\xff"  # JPEG
    assert len(list(crops.iterdir())) == 6  # the unmatched face got none


def test_report_is_self_contained(scanned, demo_watchlist, tmp_path):
    folder, out, _ = scanned
    page = tmp_path / "report.html"
    result = run_cli("report", out, "-w", demo_watchlist, "--html", page)
    assert result.exit_code == 0, result.stderr
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text)
    data = json.loads(re.search(r'id="data">(.*?)</script>', text, re.S).group(1))
    assert {i["identity"] for i in data["items"]} == {"Grace_Hopper", "Eileen_Collins"}
    assert all(i["crop"].startswith("data:image/jpeg;base64,") for i in data["items"])
    assert all(len(v) == 1 for v in data["photos"].values())  # the enrolment photos
    assert data["items"][0]["ffplay"].startswith("ffplay -ss ")


def chromium(*args: str) -> str:
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90).stdout


@needs_chromium
def test_report_renders_filters_and_exports_verdicts(scanned, demo_watchlist, tmp_path):
    folder, out, _ = scanned
    page = tmp_path / "report.html"
    run_cli("report", out, "-w", demo_watchlist, "--html", page)
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    shot = tmp_path / "shot.png"
    chromium(profile, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    dom = chromium(profile, "--dump-dom", page.as_uri() + "#identity=Grace_Hopper")
    assert "2 of 3 shown" in dom
    dom = chromium(
        profile, "--dump-dom", page.as_uri() + "#verdict=1:rejected,2:confirmed,3:unsure&export=1"
    )
    exported = re.search(r'<pre id="export"[^>]*>(.*?)</pre>', dom, re.S).group(1)
    rows = list(csv.DictReader(io.StringIO(exported.replace("&amp;", "&"))))
    assert [r["verdict"] for r in rows] == ["rejected", "confirmed", "unsure"]
    assert [r["identity"] for r in rows] == ["Eileen_Collins", "Grace_Hopper", "Grace_Hopper"]
    assert rows[1]["start_tc"] == "00:00:01.000"
