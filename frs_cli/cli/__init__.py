"""The command line, the only package that imports click: options parsed into frozen
configs, the work run, domain errors turned into one-line messages and exit codes."""

from __future__ import annotations

import sys

from frs_cli.cli import doctor, enroll, evaluate, report, scan, watchlist  # noqa: F401 - registers
from frs_cli.cli.base import cli

__all__ = ["cli", "main"]


def main() -> None:
    try:
        cli(prog_name="frs")
    except KeyboardInterrupt:  # before or after Click's own handling (e.g. at start-up)
        print("frs: interrupted", file=sys.stderr)
        sys.exit(130)
