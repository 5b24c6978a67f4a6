"""`frs evaluate`: 1:N accuracy on a folder-per-identity photo set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from frs_cli import files
from frs_cli.cli.base import (
    Finite,
    cli,
    workers_option,
)
from frs_cli.faces.families import NAMES as FAMILY_NAMES
from frs_cli.files import printable


# -- evaluate ---------------------------------------------------------------
@cli.command()
@click.argument("dataset", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--enrol",
    "enrol",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Photos enrolled per gallery identity (the first ones, by name).",
)
@click.option(
    "--gallery-share",
    type=Finite(0.01, 1.0),
    default=0.5,
    show_default=True,
    help="Share of identities put in the gallery; the rest are non-mated searches.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the gallery split.")
@click.option(
    "--encoder",
    type=click.Choice(FAMILY_NAMES),
    default="dlib",
    show_default=True,
    help="The model family to measure (frs enroll --encoder).",
)
@click.option(
    "--tolerance",
    type=Finite(0, 2),
    default=None,
    help="The operating threshold to report (frs scan's --tolerance) [default: 0.6 for "
    "dlib, 1.15 for arcface].",
)
@click.option("--limit", type=click.IntRange(min=2), help="Use only the first N identities.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every figure, the DET points and the exact split here.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a DET curve (PNG) with the operating point marked.",
)
@click.option(
    "--cohort",
    "cohort_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Photos of people outside DATASET: compare the rules with this cohort too.",
)
@click.option(
    "--groups",
    "groups_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV identity,group: report the metrics per group too.",
)
@click.option(
    "--face-px",
    "face_px",
    metavar="PX[,PX...]",
    help="Also measure every probe shrunk so its face is PX tall (blurred and compressed "
    "as CCTV films it, found and encoded as a scan does), under frs scan's rule for that "
    "size, beside the rates a scan would state: e.g. 24,32,48.",
)
@workers_option
def evaluate(
    dataset: Path,
    enrol: int,
    gallery_share: float,
    seed: int,
    encoder: str,
    tolerance: float | None,
    limit: int | None,
    json_path: Path | None,
    plot_path: Path | None,
    cohort_dir: Path | None,
    groups_path: Path | None,
    face_px: str | None,
    workers: int | None,
) -> None:
    """Measure 1:N accuracy on DATASET (one folder of photos per identity, e.g. LFW).

    Enrols the first photo(s) of a share of the identities, searches every other photo,
    and reports rank-1 rate, FNIR and FPIR across thresholds, FNIR at FPIR 1%, 0.3% and
    0.1% for each rule (threshold; + margin; + cohort; + fusion of two photos), the FPIR
    and FNIR that `frs scan`'s calibration predicts for this gallery beside the measured
    ones, and the precision of alerts against prevalence.
    """
    from frs_cli import api
    from frs_cli.accuracy import evaluation as ev

    files.check_outputs({"--json": json_path, "--plot": plot_path}, [])
    sizes = _sizes(face_px)
    data = api.evaluate(
        dataset, enrol=enrol, gallery_share=gallery_share, seed=seed, tolerance=tolerance,
        limit=limit, cohort=cohort_dir,
        groups=ev.load_groups(groups_path) if groups_path else None, workers=workers,
        encoder=encoder, face_px=sizes,
    )  # fmt: skip
    _print_evaluation(data)
    if json_path is not None:
        files.write_output(json_path, json.dumps(data, indent=2) + "\n")
    if plot_path is not None:
        ev.plot_det(data, plot_path)


FACE_PX = (8, 400)  # what --face-px accepts: a scan finds faces from --min-face 8


def _sizes(text: str | None) -> tuple[int, ...]:
    if not text:
        return ()
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or not all(FACE_PX[0] <= s <= FACE_PX[1] for s in sizes):
        raise click.BadParameter(
            f"{text!r}: give face heights of {FACE_PX[0]}-{FACE_PX[1]} px, e.g. 24,32,48",
            param_hint="--face-px",
        )
    return sizes


def _console() -> Any:
    from rich.console import Console

    # Names (the dataset's, the groups') are data: never read as markup.
    return Console(stderr=True, highlight=False, markup=False)


def _print_evaluation(data: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    op = data["at_tolerance"]
    fta = data["failures_to_acquire"]
    console.print(
        f"{printable(data['dataset'])} ({data['encoder']}): gallery {data['gallery_identities']} identities "
        f"({data['gallery_faces']} faces, {len(data['failures_to_enrol'])} failed to enrol); "
        f"{data['mated_searches']} mated and {data['non_mated_searches']} non-mated searches "
        f"(no face found: {fta['mated']} mated, {fta['non_mated']} non-mated); seed {data['seed']}"
    )
    table = Table(title="Errors at thresholds")
    for col in ("threshold", "FPIR", "FNIR", "note"):
        table.add_column(col)
    table.add_row(
        f"{op['threshold']}", f"{op['fpir']:.4f}", f"{op['fnir']:.4f}",
        f"the tolerance: {op['non_mated_alerts']} false alerts, {op['mated_misses']} misses",
    )  # fmt: skip
    for row in data["rules"]["threshold"]["fnir_at_fpir"]:
        if row:
            table.add_row(
                f"{row['threshold']}", f"{row['fpir']:.4f}", f"{row['fnir']:.4f}",
                f"largest threshold with FPIR <= {row['fpir_target']}",
            )  # fmt: skip
    console.print(table)
    rules = Table(title="FNIR at FPIR, per rule (best parameters on this split)")
    rules.add_column("rule")
    for target in ("1%", "0.3%", "0.1%"):
        rules.add_column(f"FNIR at FPIR {target}")
    for name, rule in data["rules"].items():
        cells = [
            f"{r['fnir']:.4f} (t {r['threshold']}"
            + (f", m {r['margin']})" if "margin" in r else ")")
            if r
            else "-"
            for r in rule["fnir_at_fpir"]
        ]
        rules.add_row(name, *cells)
    console.print(rules)
    scan = data["scan_rule"]
    rule = scan["rule"]
    console.print(
        f"frs scan's rule for this gallery at --fpir 0.01: distance <= {rule['threshold']}"
        + (f" and margin >= {rule['margin']}" if rule["margin"] else "")
        + f"; FPIR predicted {scan['predicted_fpir']:.4f}, measured {scan['measured_fpir']:.4f}; "
        f"FNIR predicted {scan['predicted_fnir']:.4f}, measured {scan['measured_fnir']:.4f} "
        f"({rule['source']})"
    )
    console.print(f"rank-1 identification rate: {data['rank1_identification_rate']:.4f}")
    prec = Table(title=f"Share of alerts that are right, at threshold {op['threshold']}")
    prec.add_column("people on the watchlist among those searched")
    prec.add_column("alerts that are right")
    for row in data["alert_precision_by_prevalence"]:
        prec.add_row(f"1 in {round(1 / row['prevalence']):,}", f"{row['precision']:.1%}")
    console.print(prec)
    if "groups" in data:
        _print_groups(console, data["groups"], data["at_tolerance"]["threshold"])
    if "by_face_px" in data:
        _print_sizes(console, data["by_face_px"])


def _print_sizes(console: Any, by_size: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Probes shrunk to the face heights given, at frs scan's rule per size")
    for col in ("face px", "found (mated, non-mated)", "bands (box px)", "FNIR measured",
                "FNIR a scan states", "FPIR measured", "FPIR a scan states"):  # fmt: skip
        table.add_column(col)
    num = lambda v, d: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    for size, row in by_size.items():
        table.add_row(
            size, f"{row['mated_found']}, {row['non_mated_found']}",
            ", ".join(f"{b}: {n}" for b, n in row["faces_by_band"].items()),
            num(row["fnir"], 3), num(row["expected_fnir"], 3),
            num(row["fpir"], 4), num(row["expected_fpir"], 4),
        )  # fmt: skip
    console.print(table)


def _print_groups(console: Any, groups: dict[str, Any], tolerance: float) -> None:
    from rich.table import Table

    rule = groups.get("scan_rule")
    title = "Per group"
    if rule:
        title += f": at frs scan's rule (distance <= {rule['threshold']}"
        title += f", margin >= {rule['margin']})" if rule["margin"] else ")"
    table = Table(title=f"{title}, and at the tolerance {tolerance}")
    cols = ["group", "mated", "non-mated"]
    if rule:
        cols += ["FNIR at the rule (95%)", "FPIR at the rule (95%)"]
    cols += ["rank-1", f"FNIR at {tolerance}", f"FPIR at {tolerance}"]
    for col in cols:
        table.add_column(col)

    def cell(value: float, bounds: list[float] | None, digits: int) -> str:
        text = f"{value:.{digits}f}"
        return text + (f" ({bounds[0]:.{digits}f}-{bounds[1]:.{digits}f})" if bounds else "")

    for name, row in groups["per_group"].items():
        cells = [printable(name), str(row["mated_searches"]), str(row["non_mated_searches"])]
        if rule:
            at = row["at_scan_rule"]
            cells += [
                cell(at["fnir"], at["fnir_interval"], 3),
                cell(at["fpir"], at["fpir_interval"], 4),
            ]
        cells += [
            f"{row['rank1_identification_rate']:.4f}",
            f"{row['fnir']:.4f}",
            f"{row['fpir']:.4f}",
        ]
        table.add_row(*cells)
    console.print(table)
    if rule:
        ratio = groups["ratio_at_scan_rule"]
        fmt = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
        console.print(
            f"at the rule, the most-missed group is missed {fmt(ratio['fnir'])} as often as the "
            f"least, and the most falsely alerted group alerts {fmt(ratio['fpir'])} as often"
        )
    spread = groups["spread"]
    console.print(
        f"spread between groups at the tolerance: FNIR {spread['fnir']:.4f}, "
        f"FPIR {spread['fpir']:.4f}, rank-1 {spread['rank1_identification_rate']:.4f}"
    )
