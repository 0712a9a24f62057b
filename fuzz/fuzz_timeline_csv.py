"""Fuzz the timeline CSV exporter (incidents/views/timeline.py): any event text an analyst or a finding
can put in a row is exported without crashing, reads back as the same number of rows and columns, and
no cell a spreadsheet would evaluate starts with = + - @ tab or CR (OWASP CSV injection; ASVS 1.2.10):
each such text comes back with exactly one leading quote, and nothing else changes.
"""

import csv
import io
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import django_setup, fuzz, instrumented  # noqa: E402

django_setup()
exporter = instrumented("incidents.views.timeline")
PREFIXES = exporter.FORMULA_PREFIXES
NUMBER = re.compile(r"-?\d+")
HEADER = ["id", "occurred_at", "recorded_at", "kind", "actor", "summary", "data"]
NASTY = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1)", "\t=1", "\r=1", '"=1"', "a,b", "line\nbreak", "'", ""]


def _text(data: atheris.FuzzedDataProvider) -> str:
    if data.ConsumeIntInRange(0, 3) == 0:
        return data.PickValueInList(NASTY) + data.ConsumeUnicodeNoSurrogates(data.ConsumeIntInRange(0, 16))
    return data.ConsumeUnicodeNoSurrogates(data.ConsumeIntInRange(0, 48))


def _json(data: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = data.ConsumeIntInRange(0, 5 if depth < 2 else 3)
    if kind == 0:
        return _text(data)
    if kind == 1:
        return data.ConsumeInt(4)
    if kind == 2:
        return data.ConsumeBool()
    if kind == 3:
        return None
    if kind == 4:
        return [_json(data, depth + 1) for _ in range(data.ConsumeIntInRange(0, 3))]
    return {_text(data): _json(data, depth + 1) for _ in range(data.ConsumeIntInRange(0, 3))}


def _expected(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value if value.startswith(PREFIXES) else value
    if value is None:
        return ""
    return str(value)


def test_one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for number in range(data.ConsumeIntInRange(0, 5)):
        rows.append(
            {
                "id": number,
                "occurred_at": moment + timedelta(seconds=data.ConsumeIntInRange(0, 10**6)),
                "recorded_at": moment,
                "kind": _text(data),
                "actor__username": _text(data) if data.ConsumeBool() else None,
                "summary": _text(data),
                "data": {_text(data): _json(data)} if data.ConsumeBool() else _json(data),
            }
        )
    text = "".join(exporter._csv_lines(iter(rows)))
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == HEADER and len(parsed) == len(rows) + 1, (rows, text)
    for row, cells in zip(rows, parsed[1:], strict=True):
        assert len(cells) == len(HEADER), cells
        for cell in cells:
            # A bare JSON number in `data` ("-3") is a number to a spreadsheet, not a formula.
            assert not cell.startswith(PREFIXES) or NUMBER.fullmatch(cell), (cell, cells)
        for field in ("kind", "actor__username", "summary"):
            assert cells[HEADER.index(field.split("__")[0])] == _expected(row[field]), (field, row, cells)
        if isinstance(row["data"], dict | list):
            assert json.loads(cells[-1]) == row["data"]
        else:
            assert cells[-1] == _expected(row["data"])


if __name__ == "__main__":
    fuzz(test_one_input, seeds=[value.encode() for value in NASTY], name="timeline_csv")
