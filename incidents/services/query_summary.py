"""The analysis pass over a stored query result: flags, top values, a preview.

One function for every engine and path (`summarize_csv`): it reads the evidence CSV once it is
stored (the csvstream form), with DuckDB, so a result copied byte for byte from Athena's S3 object
is never parsed in Python. Every value from outside (the file path, the sensitive-action patterns,
limits) is a bound parameter; the SQL text holds only column names we generate (c0, c1, …).

Memory stays bounded whatever the row count: DuckDB runs with a small memory limit on one thread,
and the top values are counted only for candidates: the most frequent values of each column in the
first SAMPLE_ROWS rows, at most CANDIDATES each. Counts, flags and error totals are exact over every
row; a top list misses only a value that first appears after the sample and still outnumbers the
candidates.
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from integrations.queries.csvstream import DUCKDB_CSV_OPTIONS
from integrations.storable import storable

TOP = 5
PREVIEW_CELL = 300  # characters of a cell kept in the preview
SAMPLE_ROWS = 50_000
CANDIDATES = 1_000  # per column
# Measured on 1M rows × 12 columns (benchmarks/queries.py): one thread is as fast as two here and
# holds less memory; 64 MB is enough for the candidate counts and a 4 MiB read buffer.
MEMORY_LIMIT = "64MB"
THREADS = 1
MAX_LINE = 2 * 1024 * 1024  # DuckDB's default: the longest row the reader takes

_EVENT_COLUMNS = ("eventname", "requestURI", "verb")
_PRINCIPAL_COLUMNS = ("arn", "principalid", "username", "user.username")
_IP_COLUMNS = ("sourceipaddress", "sourceIPs.0")
_ERROR_COLUMNS = ("errorcode", "errormessage", "responseStatus.code")
SLOTS = ("events", "principals", "source_ips", "errors")


def _index(columns: tuple[str, ...], names: tuple[str, ...]) -> int | None:
    lowered = [c.lower() for c in columns]
    return next((lowered.index(n.lower()) for n in names if n.lower() in lowered), None)


def _sensitive_pattern(patterns: tuple[str, ...]) -> str:
    """The sensitive-action globs (letters and `*`, at least one) as one RE2 pattern, matched against a whole name."""
    return "(?s)(?:" + "|".join(".*".join(map(re.escape, p.split("*"))) for p in patterns) + ")"


@dataclass
class ResultSummary:
    """What the run, the timeline and the preview show about a result."""

    columns: tuple[str, ...]
    rows: int = 0
    flagged: int = 0  # weighted by a `total` column when there is one
    errors: int = 0  # rows (weighted) with an error value
    preview: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, Counter[str]] = field(default_factory=dict)

    def top(self) -> dict[str, list[tuple[str, int]]]:
        return {name: counter.most_common(TOP) for name, counter in self.counters.items() if counter}

    def text(self) -> str:
        parts = []
        for name, label in (("events", "top events"), ("principals", "principals"), ("source_ips", "source IPs")):
            items = self.counters.get(name, Counter()).most_common(3)
            if items:
                parts.append(f"{label}: " + ", ".join(f"{value} ×{count}" for value, count in items))
        if self.errors:
            parts.append(f"{self.errors} with errors")
        return "; ".join(parts)


@dataclass(frozen=True)
class _Plan:
    """Which columns play which part, as SQL expressions over c0, c1, … (our own names, no input)."""

    width: int
    slots: dict[str, str]  # slot → expression of its value (NULL when the result has no such column)
    weight: str
    event: str

    @classmethod
    def of(cls, columns: tuple[str, ...]) -> "_Plan":
        def col(names: tuple[str, ...]) -> str:
            index = _index(columns, names)
            return "NULL::VARCHAR" if index is None else f"c{index}"

        errors = col(_ERROR_COLUMNS)
        if errors != "NULL::VARCHAR" and _index(columns, _ERROR_COLUMNS) == _index(columns, ("responseStatus.code",)):
            errors = f"CASE WHEN left({errors}, 1) IN ('4', '5') THEN {errors} END"  # HTTP status: 4xx/5xx only
        weight_index = _index(columns, ("total",))
        # An empty or non-numeric total counts the row once.
        weight = "1" if weight_index is None else f"COALESCE(TRY_CAST(c{weight_index} AS BIGINT), 1)"
        slots = {
            "events": col(_EVENT_COLUMNS),
            "principals": col(_PRINCIPAL_COLUMNS),
            "source_ips": col(_IP_COLUMNS),
            "errors": errors,
        }
        return cls(width=len(columns), slots=slots, weight=weight, event=slots["events"])


def _flag(plan: _Plan, sensitive: tuple[str, ...]) -> str:
    if not sensitive or plan.event == "NULL::VARCHAR":
        return "false"
    return f"COALESCE({plan.event} <> '' AND regexp_full_match({plan.event}, $pattern), false)"


def _source() -> str:
    # The read buffer is 16 × max_line_size unless set: 32 MiB of the 64 MB limit.
    return (
        f"read_csv($path, columns = $columns, {DUCKDB_CSV_OPTIONS}, "
        f"max_line_size = {MAX_LINE}, buffer_size = {2 * MAX_LINE})"
    )


def summarize_csv(
    path: str, columns: tuple[str, ...], *, preview_size: int, sensitive: tuple[str, ...]
) -> ResultSummary:
    """Analyse the stored result at `path` (the csvstream form, header first) without holding it in memory."""
    summary = ResultSummary(columns)
    if not columns:
        return summary
    import duckdb  # here, not at the top: only the analysis pass pays for loading it

    plan = _Plan.of(columns)
    params: dict[str, Any] = {"path": path, "columns": {f"c{i}": "VARCHAR" for i in range(plan.width)}}
    flagging = params | ({"pattern": _sensitive_pattern(sensitive)} if "$pattern" in _flag(plan, sensitive) else {})
    connection = duckdb.connect(":memory:", config={"memory_limit": MEMORY_LIMIT, "threads": THREADS})
    try:
        summary.preview = _preview(connection, plan, flagging, sensitive, preview_size)
        _candidates(connection, plan, params)
        _count(connection, plan, flagging, sensitive, summary)
    except duckdb.Error as exc:
        from integrations.errors import PermanentIntegrationError

        raise PermanentIntegrationError(f"The stored result could not be read back as CSV: {exc}") from exc
    finally:
        connection.close()
    return summary


# The SQL below is built from our own column names (c0, c1, …), slot names and constants only, so
# ruff's S608 (string-built SQL) does not apply; every value from outside is a bound $parameter.


def _preview(
    connection: Any, plan: _Plan, params: dict[str, Any], sensitive: tuple[str, ...], size: int
) -> list[dict[str, Any]]:
    cells = ", ".join(f"c{i}" for i in range(plan.width))
    sql = f"SELECT {cells}, {_flag(plan, sensitive)} FROM {_source()} LIMIT $size"  # noqa: S608
    preview = []
    for *row, flagged in connection.execute(sql, params | {"size": size}).fetchall():
        # Cut long cells (request parameters can be kilobytes): the run row stays small, the CSV is whole.
        cut = [c if c is None or len(c) <= PREVIEW_CELL else c[: PREVIEW_CELL - 1] + "…" for c in row]
        # The run's jsonb cannot hold a NUL from the data (CloudTrail copies request text): U+FFFD in
        # the preview and the top values; the evidence CSV keeps the cell as it came.
        cut = storable(cut)
        preview.append({"cells": cut, "flagged": bool(flagged)})
    return preview


def _values(plan: _Plan) -> str:
    return ", ".join(f"{expression} AS {slot}" for slot, expression in plan.slots.items())


def _grouped(source: str, measures: str, *, total: bool) -> str:
    """One GROUP BY with a grouping set per slot (and the whole result when `total`): one read of `source`."""
    sets = ", ".join(f"({slot})" for slot in SLOTS) + (", ()" if total else "")
    every = ", ".join(SLOTS)
    return (
        f"SELECT grouping_id({every}) AS slot, coalesce({every}) AS v, {measures}, min(rn) AS first "  # noqa: S608
        f"FROM ({source}) GROUP BY GROUPING SETS ({sets})"
    )


def _candidates(connection: Any, plan: _Plan, params: dict[str, Any]) -> None:
    """Table `candidate(slot, v)`: each column's most frequent values in the first SAMPLE_ROWS rows."""
    sample = f"SELECT row_number() OVER () AS rn, {plan.weight} AS w, {_values(plan)} FROM {_source()} LIMIT $sample"  # noqa: S608
    sql = (
        f"CREATE TEMP TABLE candidate AS SELECT slot, v FROM ({_grouped(sample, 'sum(w) AS n', total=False)}) "  # noqa: S608
        "WHERE v <> '' QUALIFY row_number() OVER (PARTITION BY slot ORDER BY n DESC, first) <= $candidates"
    )
    connection.execute(sql, params | {"sample": SAMPLE_ROWS, "candidates": CANDIDATES})


def _slot_id(slot: str) -> int:
    # grouping_id(events, principals, source_ips, errors) of the set that groups by `slot` alone:
    # a bit per column, set for each column that is *not* grouped, the first column highest.
    position = SLOTS.index(slot)
    return sum(1 << (len(SLOTS) - 1 - i) for i in range(len(SLOTS)) if i != position)


def _count(
    connection: Any, plan: _Plan, params: dict[str, Any], sensitive: tuple[str, ...], summary: ResultSummary
) -> None:
    """Every row: the totals, and the count of each candidate value; the TOP of each slot come back."""
    # A value that is not a candidate is counted as NULL, so each slot groups at most CANDIDATES values.
    masked = ", ".join(
        f"CASE WHEN {slot} IN (SELECT v FROM candidate WHERE slot = {_slot_id(slot)}) THEN {slot} END AS {slot}"  # noqa: S608
        for slot in SLOTS
    )
    rows = (
        f"SELECT rn, w, f, COALESCE(errors <> '', false) AS failed, {masked} FROM ("  # noqa: S608
        f"SELECT row_number() OVER () AS rn, {plan.weight} AS w, {_flag(plan, sensitive)} AS f, {_values(plan)} "
        f"FROM {_source()})"
    )
    measures = (
        "count(*) AS rows, sum(w) AS n, sum(w) FILTER (WHERE f) AS flagged, sum(w) FILTER (WHERE failed) AS failed"
    )
    sql = (
        f"SELECT slot, v, rows, n, flagged, failed FROM ({_grouped(rows, measures, total=True)}) "  # noqa: S608
        # Values that are not candidates were counted as NULL: filtered out before the ranking.
        "WHERE slot = $all OR v <> '' "
        "QUALIFY slot = $all OR row_number() OVER (PARTITION BY slot ORDER BY n DESC, first) <= $top "
        "ORDER BY slot, n DESC, first"
    )
    everything = (1 << len(SLOTS)) - 1
    ids = {_slot_id(slot): slot for slot in SLOTS}
    summary.counters = {slot: Counter() for slot in SLOTS}
    for slot_id, value, count, weighted, flagged, failed in connection.execute(
        sql, params | {"all": everything, "top": TOP}
    ).fetchall():
        if slot_id == everything:
            summary.rows, summary.flagged, summary.errors = int(count), int(flagged or 0), int(failed or 0)
        elif value:
            # Inserted in rank order, so Counter.most_common keeps it (ties: the value seen first).
            summary.counters[ids[slot_id]][storable(value)] += int(weighted)
