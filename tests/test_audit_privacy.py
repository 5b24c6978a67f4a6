"""The audit trail, and that no encoding of an unmatched face reaches disk."""

import json
import shutil

import numpy as np
from conftest import SAMPLE, run_cli

from frs_cli.records import AnalysisConfig
from frs_cli.scanner.analyse import analyse_segment
from frs_cli.scanner.scanning import plan_segments
from frs_cli.video import decode

DEMO = SAMPLE / "demo.mp4"


def test_one_audit_line_per_command_with_inputs_and_counts(tmp_path):
    wl = tmp_path / "wl.db"
    run_cli("enroll", "-q", "-w", wl, SAMPLE / "Grace_Hopper.jpg")
    run_cli("scan", "-q", "-w", wl, "--out", tmp_path / "o.csv", DEMO, tmp_path / "missing.mp4")
    log = tmp_path / "wl.db.audit.jsonl"
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    enrol, scan = (json.loads(line) for line in log.read_text().splitlines())
    assert enrol["command"] == "enroll" and enrol["counts"]["enrolled"] == 1
    assert enrol["inputs"][0]["sha256"] and enrol["inputs"][0]["identity"] == "Grace_Hopper"
    assert scan["command"] == "scan" and scan["threshold"] == scan["rule"]["threshold"]
    assert scan["rule"]["target_fpir"] == 0.01 and scan["rule"]["fpir"] <= 0.01
    assert {"user", "host", "frs_version", "argv", "time"} <= set(scan)
    assert scan["watchlist"]["faces"] == 1 and scan["watchlist"]["generation"] == 1
    by_path = {i["path"]: i for i in scan["inputs"]}
    ok, missing = by_path[str(DEMO)], by_path[str(tmp_path / "missing.mp4")]
    assert ok["status"] == "ok" and ok["size"] == DEMO.stat().st_size
    assert ok["fingerprint"].startswith("fast-sha256:")
    assert missing["status"] == "failed" and missing["reason"] == "no such file or folder"
    assert scan["counts"]["alerts"] == 2 and scan["output"] == str(tmp_path / "o.csv")
    table = run_cli("audit", "-w", wl)
    assert table.exit_code == 0 and "enroll" in table.stdout and "scan" in table.stdout


def test_unmatched_encodings_never_reach_disk(tmp_path, monkeypatch):
    """Enrol only Grace Hopper; Eileen Collins is then an unknown face. Scan with every
    output option, then search every file written for her encodings' bytes."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    wl = tmp_path / "wl.db"
    run_cli("enroll", "-q", "-w", wl, SAMPLE / "Grace_Hopper.jpg")
    clip = tmp_path / "clip.mp4"
    shutil.copy(DEMO, clip)
    for fmt in ("csv", "jsonl", "json"):
        result = run_cli(
            "scan", "-q", "-w", wl, "--unmatched", "--detections", "--format", fmt,
            "--out", tmp_path / f"rows.{fmt}", "--summary", tmp_path / "summary.json", clip,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
    # The encodings frs computed for unknown faces, obtained directly from the worker stage.
    info = decode.probe(str(clip))
    tracks = [
        t for s in plan_segments(info, 1, AnalysisConfig()) for t in analyse_segment(s).tracks
    ]
    hopper = np.frombuffer(
        __import__("sqlite3").connect(wl).execute("SELECT vector FROM faces").fetchone()[0],
        np.float32,
    )
    unknown = [
        e.vector for t in tracks for e in t.encodings if np.linalg.norm(e.vector - hopper) > 0.6
    ]
    assert unknown, "the clip must contain faces that match nobody"
    needles = []
    for vec in unknown:
        needles += [vec.astype(np.float32).tobytes()[:64], vec.astype(np.float64).tobytes()[:64]]
        needles += [f"{vec[0]:.6f}".encode(), repr(float(vec[0])).encode()]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p != clip]
    assert any(p.name == "rows.jsonl" for p in written) and any(
        p.name.endswith(".audit.jsonl") for p in written
    )
    for path in written:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{path} holds an unmatched face's encoding"
