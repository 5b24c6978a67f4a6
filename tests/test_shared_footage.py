"""Real footage from ../shared/data (skipped when absent).

The expected stretches for the Hamilton clip come from an every-frame scan
(benchmarks/reference.py: HOG upsample 1 on every frame, every face encoded):
Lin-Manuel Miranda matched at 0.844-1.311 s, 3.580-4.681 s and 4.848-7.851 s,
and no other identity anywhere. frs must cover each stretch to within half a
second at each end, and name nobody else.
"""

import io

import pytest
from conftest import SHARED, jsonl, needs_shared, run_cli

pytestmark = [needs_shared, pytest.mark.slow]
HAMILTON = SHARED / "footage" / "short_hamilton_clip.mp4"
STREET = SHARED / "footage" / "street_1080p.mp4"
REFERENCE_STRETCHES = [(0.844, 1.311), (3.580, 4.681), (4.848, 7.851)]


def test_hamilton_finds_lin_manuel_miranda_where_the_every_frame_scan_does(shared_watchlist):
    result = run_cli("scan", "-q", "-w", shared_watchlist, "--format", "jsonl", HAMILTON)
    assert result.exit_code == 0, result.stderr
    rows = jsonl(result.stdout)
    assert {r["identity"] for r in rows} == {"lin-manuel-miranda"}
    for start, end in REFERENCE_STRETCHES:
        covering = [r for r in rows if r["start_s"] <= start + 0.5 and r["end_s"] >= end - 0.5]
        assert covering, f"no appearance covers {start}-{end}: {rows}"
    # Nothing reported far outside what the reference saw.
    for r in rows:
        assert any(
            r["start_s"] >= s - 0.5 and r["end_s"] <= e + 0.5
            for s, e in [(0.844, 1.311), (3.58, 7.851)]
        )


def test_hamilton_csv_opens_with_pandas(shared_watchlist):
    pandas = pytest.importorskip("pandas")
    result = run_cli("scan", "-q", "-w", shared_watchlist, HAMILTON)
    frame = pandas.read_csv(io.StringIO(result.stdout))
    assert list(frame["identity"].unique()) == ["lin-manuel-miranda"]
    assert frame["start_s"].dtype.kind == "f" and frame["track_id"].dtype.kind == "i"


def test_street_clip_matches_nobody(shared_watchlist):
    result = run_cli("scan", "-q", "-w", shared_watchlist, "--format", "jsonl", STREET)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    unmatched = run_cli(
        "scan", "-q", "-w", shared_watchlist, "--format", "jsonl", "--unmatched", STREET
    )
    rows = jsonl(unmatched.stdout)
    assert len(rows) >= 5 and all(r["identity"] is None for r in rows)
