"""What a scan says when it ends: its summary (`--summary FILE.json`, the API's
`Scan.summary`) and its record in the watchlist's audit trail."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from frs_cli import files
from frs_cli.accuracy import calibration
from frs_cli.faces import bands
from frs_cli.scanner.scanning import ScanConfig, ScanStats

PRECISION_NOTE = (
    "How many of these alerts are the right person cannot be known from the footage alone: "
    "it depends on how many of the people filmed are really on the watchlist, and falls as the "
    "watchlist grows. Every alert needs a person to check it; `frs evaluate` measures the error "
    "rates for a threshold."
)


def summary(stats: ScanStats, cfg: ScanConfig, model_id: str) -> dict[str, Any]:
    """The end-of-scan summary (`--summary FILE.json`, `frs_cli.scanner(...).summary`)."""
    faces = stats.faces
    faces_by_band = {band: counts[0] for band, counts in stats.by_band.items()}
    expected = calibration.expected_rates(cfg.rule, faces_by_band)
    return {
        "files_scanned": stats.files_ok,
        "files_failed": stats.files_failed,
        "footage_s": round(float(stats.footage_s), 3),
        "wall_s": round(stats.wall_s, 3),
        "frames_analysed": stats.frames_analysed,
        "face_detections": faces,
        "tracks": stats.tracks,
        "alerts": stats.alerts,
        # A "face" here is one person followed through time (a track), not one frame.
        "alerts_per_1000_faces": round(1000 * stats.alerts / stats.tracks, 2)
        if stats.tracks
        else 0.0,
        "note": PRECISION_NOTE,
        "watchlist_identities": stats.watchlist_identities,
        "watchlist_faces": stats.watchlist_faces,
        "rule": cfg.rule.to_dict(),
        "rule_text": cfg.rule.describe(),
        "expected_false_alerts": calibration.expected_false_alerts(
            cfg.rule, stats.looks, faces_by_band
        ),
        # The rule's rates over the faces this scan saw: each size band's (faces_by_band),
        # weighted by its faces (docs/accuracy.md, "Faces by size"; issue 36).
        "expected_fnir": expected[0],
        "expected_fpir": expected[1],
        "encodings_per_face": {str(k): n for k, n in sorted(stats.looks.items())},
        # Views of faces the family could not align (their landmarks lie at one point):
        # left out of matching; a face with no other view is not matched at all.
        "views_not_aligned": stats.unaligned,
        # Faces followed (tracks) and their detections by size (the height of the track's
        # largest encoded view, px), with the rule there: faces too small to identify are
        # counted and never alerted on.
        "faces_by_band": by_band(stats, cfg),
        "faces_too_small": sum(
            counts[0]
            for band, counts in stats.by_band.items()
            if cfg.rule.bands and bands.role(cfg.rule.family, band) == "too small"
        ),
        "encoder": model_id,
        "detector": cfg.analysis.model,
        "min_face_px": cfg.analysis.min_face,
        "sample_fps": cfg.analysis.sample_fps,
        "detect_fps": cfg.analysis.detect_fps,
        "quick_fps": cfg.analysis.quick_fps,
        "workers": cfg.workers,
        "interrupted": stats.interrupted,
        "output_error": stats.output_error,
        # Per input: status, and for videos the probed and the analysed duration (equal
        # unless the reason says why not) and how times were derived where the file has none.
        "inputs": stats.inputs,
        "stage_seconds": {k: round(v, 3) for k, v in sorted(stats.stage_seconds.items())},
    }


def by_band(stats: ScanStats, cfg: ScanConfig) -> dict[str, dict[str, Any]]:
    """Per size band the scan saw: its faces, their detections, and the rule there."""
    out: dict[str, dict[str, Any]] = {}
    rates = {b.band: b for b in cfg.rule.bands}
    for band in bands.keys(cfg.rule.family):
        if band not in stats.by_band:
            continue
        faces, detections = stats.by_band[band]
        rate = rates.get(band)
        out[band] = {"faces": faces, "detections": detections}
        if rate is not None:
            out[band] |= {
                "identifiable": rate.threshold is not None,
                "threshold": rate.threshold,
                "fnir": rate.fnir,
                "fpir": rate.fpir,
            }
    return out


def audit_scan(
    cfg: ScanConfig,
    stats: ScanStats,
    data: dict[str, Any],
    fingerprint: dict[str, Any],
    output: str,
    fmt: str,
    out: Path | None = None,
    crops: Path | None = None,
) -> None:
    """Append the scan's record to the watchlist's audit trail. With `out` (a file), its
    fingerprint as written, by which `frs report` finds this record again (a name says
    nothing once another scan writes the same name elsewhere); with `crops`, the folder
    the review pictures went to (the only pictures a review page embeds)."""
    from frs_cli.watchlist import audit

    keys = ("files_scanned", "files_failed", "footage_s", "face_detections", "tracks", "alerts")
    written: dict[str, Any] = {}
    if out is not None and files.regular(out) is None:
        written["output_fingerprint"] = audit.fast_fingerprint(out)
        output = os.path.abspath(output)
    if crops is not None:
        written["crops"] = os.path.abspath(crops)
    analysis = cfg.analysis
    audit.append(
        cfg.watchlist,
        audit.record(
            "scan",
            watchlist=fingerprint,
            inputs=[{**audit.fast_fingerprint(i["path"]), **i} for i in stats.inputs],
            output=output,
            **written,
            analysis={
                "model": analysis.model,
                "encoder": analysis.encoder,
                "min_face": analysis.min_face,
                "sample_fps": analysis.sample_fps,
                "detect_fps": analysis.detect_fps,
                "quick_fps": analysis.quick_fps,
                "exhaustive": analysis.exhaustive,
                "rois": [list(r) for r in analysis.rois],
            },  # fmt: skip
            format=fmt,
            threshold=cfg.rule.threshold,
            rule=cfg.rule.to_dict(),
            unmatched_rows=cfg.unmatched,
            counts={k: data[k] for k in keys},
            interrupted=stats.interrupted,
            output_error=stats.output_error,
        ),
    )
