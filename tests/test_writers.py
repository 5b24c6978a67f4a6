import csv
import dataclasses
import datetime as dt
import io
import json
from fractions import Fraction

from frs_cli.records import Appearance, Box
from frs_cli.results.writers import (
    APPEARANCE_COLUMNS,
    DETECTION_COLUMNS,
    WRITERS,
    appearance_row,
    detection_rows,
)


def appearance(identity: str | None = "Ada_Lovelace", source: str = "cam 1.mp4") -> Appearance:
    return Appearance(
        source=source,
        track_id=3,
        start_s=Fraction(1001, 1000),
        end_s=Fraction(7, 2),
        best_s=Fraction(2),
        identity=identity,
        distance=0.41234 if identity else None,
        margin=0.2,
        second_identity="Charles_Babbage" if identity else None,
        detections=12,
        box=Box(10, 20, 30, 31),
        sightings=(
            (25, Fraction(1), Box(10, 20, 30, 31)),
            (26, Fraction(26, 25), Box(11, 20, 30, 31)),
        ),
        face_px=33,
        face_band="32-48 high",
    )


def write(fmt: str, rows: list[dict], columns=APPEARANCE_COLUMNS) -> str:
    buf = io.StringIO()
    writer = WRITERS[fmt](buf, columns)
    for row in rows:
        writer.write(row)
    writer.close()
    return buf.getvalue()


def test_csv_appearance_row_exact():
    text = write("csv", [appearance_row(appearance())])
    assert text == (
        ",".join(APPEARANCE_COLUMNS) + "\n"
        "cam 1.mp4,Ada_Lovelace,1.001,3.500,00:00:01.001,00:00:03.500,2.000,0.4123,12,3,10,20,30,31,"
        "0.2,Charles_Babbage,,,33,32-48 high\n"
    )
    # With the file's clock known, the time of day at start_s and end_s, to the ms.
    at = dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC)
    row = appearance_row(dataclasses.replace(appearance(), clock_start=at))
    assert (row["start_wall"], row["end_wall"]) == (
        "2024-03-01T10:00:01.001+00:00", "2024-03-01T10:00:03.500+00:00",
    )  # fmt: skip


def test_csv_neutralises_formula_cells_in_user_strings():
    text = write("csv", [appearance_row(appearance(identity="=HYPERLINK(1)", source="-x.mp4"))])
    row = list(csv.DictReader(io.StringIO(text)))[0]
    assert row["identity"] == "'=HYPERLINK(1)"
    assert row["source"] == "'-x.mp4"


def test_jsonl_keys_numbers_and_null_identity():
    text = write("jsonl", [appearance_row(appearance()), appearance_row(appearance(identity=None))])
    first, second = (json.loads(line) for line in text.splitlines())
    assert list(first) == list(APPEARANCE_COLUMNS)
    assert first["start_s"] == 1.001 and first["detections"] == 12
    assert first["margin"] == 0.2 and first["second_identity"] == "Charles_Babbage"
    assert second["identity"] is None and second["distance"] is None


def test_json_array_is_valid_when_empty_and_when_not():
    assert json.loads(write("json", [])) == []
    rows = json.loads(write("json", [appearance_row(appearance())] * 2))
    assert len(rows) == 2 and rows[0]["end_tc"] == "00:00:03.500"


def test_detection_rows_one_per_sighting():
    rows = detection_rows(appearance())
    assert [r["frame"] for r in rows] == [25, 26]
    assert rows[1]["time_s"] == 1.04 and rows[1]["timecode"] == "00:00:01.040"
    text = write("csv", rows, DETECTION_COLUMNS)
    assert text.splitlines()[0] == ",".join(DETECTION_COLUMNS)
    assert (
        text.splitlines()[2] == "cam 1.mp4,26,1.040,00:00:01.040,3,Ada_Lovelace,0.4123,11,20,30,31,"
    )
