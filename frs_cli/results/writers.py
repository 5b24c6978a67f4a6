"""Output writers (csv, jsonl, json), looked up by name. They write the rows that
`frs_cli.records` defines (the output schema, defined once, beside the records).

Writers stream: each row is written when it is complete, and `flush()` is
called after each input file, so an interrupted scan leaves a valid file up to
the last complete row.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from frs_cli.errors import UsageError
from frs_cli.records import (  # noqa: F401 - the schema lives with the records; named here too
    APPEARANCE_COLUMNS,
    DETECTION_COLUMNS,
    REVIEW_COLUMNS,
    Row,
    appearance_row,
    detection_rows,
    review_row,
)

# A cell starting with one of these runs as a formula in spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Neutralise user-supplied strings (file names, identities) that a spreadsheet would run."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class Writer:
    def __init__(self, stream: IO[str], columns: tuple[str, ...]):
        self.stream = stream
        self.columns = columns
        self.rows = 0

    def write(self, row: Row) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        self.flush()


class CsvWriter(Writer):
    def __init__(self, stream: IO[str], columns: tuple[str, ...], header: bool = True):
        super().__init__(stream, columns)
        self._csv = csv.writer(stream, lineterminator="\n")
        if header:
            self._csv.writerow(columns)

    def write(self, row: Row) -> None:
        cells = []
        for col in self.columns:
            value = row[col]
            if value is None:
                value = ""
            elif isinstance(value, float):
                value = f"{value:.3f}" if col.endswith("_s") else repr(value)
            cells.append(safe_cell(value))
        self._csv.writerow(cells)
        self.rows += 1


class JsonLinesWriter(Writer):
    def write(self, row: Row) -> None:
        self.stream.write(json.dumps({c: row[c] for c in self.columns}, ensure_ascii=False) + "\n")
        self.rows += 1


class JsonWriter(Writer):
    """One JSON array, written row by row; valid only once closed."""

    def __init__(self, stream: IO[str], columns: tuple[str, ...]):
        super().__init__(stream, columns)
        self.stream.write("[")

    def write(self, row: Row) -> None:
        sep = ",\n" if self.rows else "\n"
        self.stream.write(sep + json.dumps({c: row[c] for c in self.columns}, ensure_ascii=False))
        self.rows += 1

    def close(self) -> None:
        self.stream.write("\n]\n" if self.rows else "]\n")
        super().close()


WRITERS: dict[str, Callable[[IO[str], tuple[str, ...]], Writer]] = {
    "csv": CsvWriter,
    "jsonl": JsonLinesWriter,
    "json": JsonWriter,
}


def read_rows(
    path: Path, people: bool = False, problems: list[str] | None = None
) -> list[dict[str, Any]]:
    """The matched rows of a CSV, JSON lines or JSON file written by `frs scan`, typed as
    the JSON writers write them (numbers as numbers, missing values as None, CSV formula
    guards undone). Files of earlier versions, with fewer columns, are read too. With
    `people`, unmatched rows that carry a person label (`--unmatched`) are kept too. A row
    that is not one frs writes stops the reading, or with `problems` is left out and
    described there."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            rows = json.loads(text)
        elif stripped.startswith("{"):
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            raw = list(csv.DictReader(io.StringIO(text)))
            for k, r in enumerate(raw):
                if None in r or None in r.values():
                    raise UsageError(
                        f"{path}: row {k + 1} has fewer or more cells than the header: cut "
                        "short or not written by frs scan; nothing was read"
                    )
            rows = [_typed(r) for r in raw]
    except ValueError as err:
        raise UsageError(f"{path}: not the CSV or JSON that frs scan writes ({err})") from None
    if not isinstance(rows, list) or (rows and not isinstance(rows[0], dict)):
        raise UsageError(f"{path}: not the rows that frs scan writes")
    if rows and not {"identity", "start_s"} <= set(rows[0]):
        raise UsageError(f"{path}: rows lack identity/start_s: not frs scan appearances")
    kept = []
    for k, row in enumerate(rows):
        problem = _row_problem(row)
        if problem is None:
            kept.append(row)
        elif problems is not None:  # the caller goes on without it, and says so
            problems.append(f"row {k + 1} {problem}: left out")
        else:
            raise UsageError(
                f"{path}: row {k + 1} {problem}: cut short or not written by frs scan; "
                "nothing was read"
            )
    return [r for r in kept if r.get("identity") or (people and r.get("person"))]


def _row_problem(row: Any) -> str | None:
    """Why a row read back is not one frs scan writes (None: it is)."""
    if not isinstance(row, dict):
        return "is not an object"
    if row.get("source") is None or row.get("start_s") is None:
        return "has no source or start_s"
    for key, value in row.items():
        if value is None:
            continue
        if key in _INTS and (not isinstance(value, int) or isinstance(value, bool)):
            return f"has {key} {value!r}, not a whole number"
        if key in _FLOATS and (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            return f"has {key} {value!r}, not a number"
        if key not in _INTS + _FLOATS and not isinstance(value, str):
            return f"has {key} {value!r}, not text"
    return None


_INTS = ("detections", "track_id", "left", "top", "width", "height", "frame", "face_px")
_FLOATS = ("start_s", "end_s", "best_s", "distance", "margin", "time_s")


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row with the types the JSON writers give (and formula-guarding undone)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value == "":
            out[key] = None
        elif key in _INTS and value.lstrip("-").isdigit():
            out[key] = int(value)
        elif key in _FLOATS and _is_float(value):
            out[key] = float(value)
        elif value.startswith("'") and value[1:2].startswith(_FORMULA_START):
            out[key] = value[1:]
        else:
            out[key] = value
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
