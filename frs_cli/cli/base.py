"""The command group, its error edge and the options commands share. Each command group
lives in its own module of this package and calls the library (`frs_cli.api` and the
pipeline's modules): it parses options, runs, and prints."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from frs_cli import __version__
from frs_cli.errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_PIPE_CLOSED,
    FrsError,
    OutputError,
    internal_error,
)
from frs_cli.files import printable

FORMATS = ("csv", "jsonl", "json")
MODELS = ("hog", "cnn", "scrfd")


def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class FrsGroup(click.Group):
    """Turns FrsError into `Error: message` and its exit code, and any other exception
    into one `Error: internal error (...)` line and exit 1: never a traceback unless
    FRS_DEBUG=1 asks for it. Ctrl-C is exit 130; a closed stdout (`frs ... | head -1`)
    ends frs quietly with 141, as a shell reports a writer stopped by SIGPIPE."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit):
            raise
        except (KeyboardInterrupt, click.Abort):
            click.echo("frs: interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except Exception as err:
            if _stdout_closed(err):
                _quiet_stdout()
                raise click.exceptions.Exit(EXIT_PIPE_CLOSED) from None
            if os.environ.get("FRS_DEBUG"):
                raise
            if isinstance(err, FrsError):
                message, code = printable(str(err)), err.exit_code
            else:
                message, code = internal_error(err), EXIT_FAILURE
            # ClickException prints "Error: message" to stderr and exits with exit_code.
            kind = type("FrsClickException", (click.ClickException,), {"exit_code": code})
            raise kind(message) from None


def _stdout_closed(err: BaseException) -> bool:
    return isinstance(err, BrokenPipeError) or (isinstance(err, OutputError) and err.closed)


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class Finite(click.FloatRange):
    """A FloatRange that also refuses nan and inf (which compare false with both bounds)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


@click.group(cls=FrsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="frs")
def cli() -> None:
    """Search recorded footage for the people on a watchlist.

    Enrol photos with `frs enroll`, then `frs scan FOOTAGE...` writes one row per
    appearance of a watchlist identity, with exact times, to stdout or --out.
    """


def watchlist_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "-w",
        "--watchlist",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Watchlist file. Default: $FRS_WATCHLIST, else ~/.local/share/frs/watchlist.db.",
    )(fn)


def workers_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=None,
        help="Worker processes. Default: all cores (never more than the cores for a local pool).",
    )(fn)


def _workers(asked: int | None, scheduler: str | None, verbose: bool = False) -> int:
    """Worker processes: all cores by default, never more than the cores there are for a
    pool here (each more is ~55 MB and no faster); a Dask cluster's are its own."""
    cores = _default_workers()
    if asked is None:
        return cores
    if scheduler is None and asked > cores:
        if verbose:
            click.echo(f"note: --workers {asked}: {cores} used, one per core", err=True)
        return cores
    return asked


def _watchlist_path(value: Path | None) -> Path:
    from frs_cli.watchlist import default_path

    return value if value is not None else default_path()


def _say(quiet: bool) -> Callable[[str], None]:
    def say(line: str) -> None:
        if not quiet:
            click.echo(line, err=True)

    return say
