"""The watchlist and what is kept beside it: the SQLite store, its hnswlib index, search,
calibration, enrolment and the audit trail (`Watchlist` is the facade the rest uses)."""

from frs_cli.watchlist.calibrating import CALIBRATION_VERSION
from frs_cli.watchlist.facade import Watchlist
from frs_cli.watchlist.faces import UNLIKE_DISTANCE, EnrolReport, Identity, Unlike
from frs_cli.watchlist.index import HNSW_EF, HNSW_EF_CONSTRUCTION, HNSW_M, NEIGHBOURS
from frs_cli.watchlist.search import COHORT_NAME
from frs_cli.watchlist.store import (
    CHECK_ON_OPEN_BYTES,
    DIM,
    SCHEMA,
    SCHEMA_VERSION,
    damaged,
    default_path,
    dumps_box,
    watchlist_files,
    writer_lock,
)

EXACT_LIMIT = Watchlist.exact_limit

__all__ = [
    "CALIBRATION_VERSION", "CHECK_ON_OPEN_BYTES", "COHORT_NAME", "DIM", "EXACT_LIMIT",
    "HNSW_EF", "HNSW_EF_CONSTRUCTION", "HNSW_M", "NEIGHBOURS", "SCHEMA", "SCHEMA_VERSION",
    "UNLIKE_DISTANCE", "EnrolReport", "Identity", "Unlike", "Watchlist", "damaged",
    "default_path", "dumps_box", "watchlist_files", "writer_lock",
]  # fmt: skip
