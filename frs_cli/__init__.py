"""frs: search recorded footage for the people on a watchlist.

The Python API (docs/api.md), imported on first use so that `import frs_cli` stays
cheap (the command's entry point sets thread counts before numpy loads):

    import frs_cli as frs
    frs.Watchlist.create("case.db").enroll(["people/"])
    rows = [a.to_dict() for a in frs.scan("cam1.mp4", watchlist="case.db")]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Appearance",
    "EnrolReport",
    "FrsError",
    "Progress",
    "Scan",
    "Watchlist",
    "evaluate",
    "read_results",
    "scan",
]

_WHERE = {
    "Appearance": "frs_cli.records",
    "EnrolReport": "frs_cli.watchlist",
    "FrsError": "frs_cli.errors",
    "Progress": "frs_cli.api",
    "Scan": "frs_cli.api",
    "Watchlist": "frs_cli.api",
    "evaluate": "frs_cli.api",
    "read_results": "frs_cli.api",
    "scan": "frs_cli.api",
}

if TYPE_CHECKING:
    from frs_cli.api import Progress, Scan, Watchlist, evaluate, read_results, scan
    from frs_cli.errors import FrsError
    from frs_cli.records import Appearance
    from frs_cli.watchlist import EnrolReport


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'frs_cli' has no attribute {name!r}")
