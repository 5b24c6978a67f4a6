"""`frs watchlist ...`: inspect and manage a watchlist and its cohort."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from frs_cli.cli.base import (
    FORMATS,
    Finite,
    _say,
    _watchlist_path,
    _workers,
    cli,
    watchlist_option,
    workers_option,
)
from frs_cli.errors import (
    EXIT_FAILURE,
    EXIT_PARTIAL,
    FrsError,
)
from frs_cli.files import printable


# -- watchlist --------------------------------------------------------------
@cli.group()
def watchlist() -> None:
    """Inspect and manage a watchlist: info, list, remove, rename, verify, rebuild."""


def _open_to_encode(path: Path) -> Any:
    """For a change that encodes photos: this machine must have the exact weights of the
    family that made the watchlist."""
    from frs_cli.watchlist import Watchlist

    return Watchlist.open_installed(path)


def _open_to_erase(path: Path) -> Any:
    """For a change that only deletes or renames: no model is needed (erasing a person
    never depends on weights that may not be installed, or may not be licensed here),
    and a face with a damaged vector can still be removed. Every change checks the
    file's integrity before writing (Store._writing)."""
    from frs_cli.watchlist import Watchlist

    return Watchlist.open(path, check=False)


@watchlist.command("info")
@watchlist_option
@click.option(
    "--fpir",
    type=Finite(0.0001, 0.5),
    default=0.01,
    show_default=True,
    help="Show the alert rule frs scan would use for this false-alert rate.",
)
def watchlist_info(watchlist: Path | None, fpir: float) -> None:
    """Identities, faces, encoder, schema, index state, file sizes, and the alert rule
    `frs scan --fpir` would use, with its estimated error rates and how they were found."""
    from frs_cli.accuracy import calibration
    from frs_cli.faces import families
    from frs_cli.watchlist import EXACT_LIMIT, Watchlist

    path = _watchlist_path(watchlist)
    with Watchlist.open(path) as wl:
        meta = wl.meta()
        faces = wl.face_count()
        family = families.of(meta["model_id"])
        lines = [
            f"watchlist: {printable(str(path))}",
            f"identities: {wl.identity_count()}",
            f"faces: {faces}",
            f"cohort: {wl.cohort_count()} faces of people not on the watchlist",
            f"encoder: {meta['model_id']} (family {family.name}, {family.dim}-d; "
            f"scans find faces with {family.detector} by default)",
            f"licence: {family.licence}",
            f"schema version: {meta['schema_version']}; generation {meta['generation']}; "
            f"created {meta['created_at']}",
            f"search: {'exact' if faces < EXACT_LIMIT else 'HNSW index'} "
            f"(exact below {EXACT_LIMIT:,} faces); index {wl.index_state()}"
            + (f", ef {wl.ef}" if faces >= EXACT_LIMIT else ""),
        ]
        if faces:
            rule = wl.rule(fpir)
            lines += [f"at --fpir {fpir:g}, {calibration.summary_lines(rule, {})[0]}"]
            lines += calibration.summary_lines(rule, {})[1:2]
            tolerance = family.fixed_tolerance
            fixed = calibration.fixed(tolerance, wl.calibration())
            if fixed.fpir is not None:
                what = "face_recognition's fixed" if family.name == "dlib" else "a fixed"
                lines.append(
                    f"for comparison, {what} {tolerance:g}: estimated FPIR "
                    f"{fixed.fpir:.4f}, FNIR {fixed.fnir:.2f}"
                )
        for p in (path, wl.index_path, wl.index_meta_path, wl.calibration_path):
            if p.exists():
                lines.append(f"file: {printable(str(p))} ({p.stat().st_size:,} bytes)")
    for line in lines:
        click.echo(line)


@watchlist.command("list")
@watchlist_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True)
def watchlist_list(watchlist: Path | None, fmt: str) -> None:
    """Identities with their face counts."""
    from frs_cli.results import writers
    from frs_cli.watchlist import Watchlist

    with Watchlist.open(_watchlist_path(watchlist)) as wl:
        out = writers.WRITERS[fmt](sys.stdout, ("identity", "faces"))
        for ident in wl.identities():
            out.write({"identity": ident.name, "faces": ident.faces})
        out.close()


@watchlist.command("remove")
@watchlist_option
@click.argument("name")
def watchlist_remove(watchlist: Path | None, name: str) -> None:
    """Remove identity NAME and all its faces (the index is updated on next use)."""
    from frs_cli.watchlist import audit

    path = _watchlist_path(watchlist)
    with _open_to_erase(path) as wl:
        n = wl.remove(name)
        audit.append(
            path, audit.record("remove", watchlist=wl.fingerprint(), identity=name, faces=n)
        )
    click.echo(f"removed {printable(name)} ({n} faces) from {printable(str(path))}", err=True)


@watchlist.command("rename")
@watchlist_option
@click.argument("old")
@click.argument("new")
def watchlist_rename(watchlist: Path | None, old: str, new: str) -> None:
    """Rename identity OLD to NEW, merging into NEW if it exists."""
    from frs_cli.watchlist import audit

    path = _watchlist_path(watchlist)
    with _open_to_erase(path) as wl:
        merged = wl.rename(old, new)
        audit.append(path, audit.record("rename", watchlist=wl.fingerprint(), old=old, new=new))
    click.echo(
        f"{'merged' if merged else 'renamed'} {printable(old)} into {printable(new)}", err=True
    )


@watchlist.command("verify")
@watchlist_option
def watchlist_verify(watchlist: Path | None) -> None:
    """Check the store and index: vectors present and finite, index consistent, checksums."""
    from frs_cli.watchlist import Watchlist

    path = _watchlist_path(watchlist)
    with Watchlist.open(path, check=False) as wl:
        problems = wl.verify()
        faces = wl.face_count() if not problems else 0
        unlike = [] if problems else wl.unlike_photos()
    for u in unlike:
        click.echo(
            f"warning: {printable(u.photo)} ({printable(u.identity)}) looks unlike its identity's other "
            f"{u.others} photo(s): median distance {u.distance:.2f}",
            err=True,
        )
    for problem in problems:
        click.echo(f"problem: {printable(problem)}", err=True)
    if problems:
        raise FrsError(f"{path}: {len(problems)} problem(s) found")
    click.echo(f"{printable(str(path))}: ok ({faces} faces)", err=True)


@watchlist.group("cohort")
def cohort() -> None:
    """Faces of people NOT on the watchlist, used only to judge how clearly a face matches.

    A face alerts only if its identity is clearly nearer than any other identity and
    than any cohort face (the margin), so a cohort of ordinary faces (a public face set,
    or the analyst's own) cuts false alerts. Cohort faces are never matched, counted or
    written to any output; they are biometric data of unlisted people (docs/privacy.md).
    """


@cohort.command("add")
@watchlist_option
@workers_option
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and the final count.")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def cohort_add(
    watchlist: Path | None, workers: int | None, quiet: bool, paths: tuple[str, ...]
) -> None:
    """Add the largest face of each photo in PATHS (files or folders) to the cohort."""
    from frs_cli.watchlist import enroll as enrol_mod

    path = _watchlist_path(watchlist)
    with _open_to_encode(path) as wl:
        stats = enrol_mod.enrol_into(
            wl, paths, None, _workers(workers, None), say=_say(quiet), cohort=True,
            warn=_say(False),
        )  # fmt: skip
        total = wl.cohort_count()
    click.echo(
        f"{stats.enrolled} added to the cohort, {stats.duplicates} already there, "
        f"{stats.no_face} without a face, {stats.unreadable} unreadable; {printable(str(path))} has a cohort "
        f"of {total} faces",
        err=True,
    )
    if stats.failed:
        sys.exit(EXIT_PARTIAL if stats.enrolled or stats.duplicates else EXIT_FAILURE)


@cohort.command("clear")
@watchlist_option
def cohort_clear(watchlist: Path | None) -> None:
    """Remove every cohort face."""
    from frs_cli.watchlist import audit

    path = _watchlist_path(watchlist)
    with _open_to_erase(path) as wl:
        n = wl.clear_cohort()
        audit.append(path, audit.record("cohort-clear", watchlist=wl.fingerprint(), faces=n))
    click.echo(f"removed the cohort ({n} faces) from {printable(str(path))}", err=True)


@watchlist.command("rebuild")
@watchlist_option
def watchlist_rebuild(watchlist: Path | None) -> None:
    """Recreate the HNSW index from the store (drops removed faces for good)."""
    from frs_cli.watchlist import Watchlist

    path = _watchlist_path(watchlist)
    with Watchlist.open(path) as wl:
        wl.rebuild()
        click.echo(f"rebuilt {printable(str(wl.index_path))} ({wl.face_count()} faces)", err=True)
