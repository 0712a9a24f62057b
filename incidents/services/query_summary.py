"""Counts taken while a query result streams into evidence: flags, top values, a preview.

Memory stays bounded whatever the row count: each counter keeps at most MAX_DISTINCT values, and the
preview only the first rows.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from integrations.queries.base import Row
from playbooks.query_templates import is_sensitive

TOP = 5
MAX_DISTINCT = 10_000  # per counter
PREVIEW_CELL = 300  # characters of a cell kept in the preview


_EVENT_COLUMNS = ("eventname", "requestURI", "verb")
_PRINCIPAL_COLUMNS = ("arn", "principalid", "username", "user.username")
_IP_COLUMNS = ("sourceipaddress", "sourceIPs.0")
_ERROR_COLUMNS = ("errorcode", "errormessage", "responseStatus.code")


def _index(columns: tuple[str, ...], names: tuple[str, ...]) -> int | None:
    lowered = [c.lower() for c in columns]
    return next((lowered.index(n.lower()) for n in names if n.lower() in lowered), None)


@dataclass
class ResultSummary:
    """Counts taken row by row as the CSV is written: memory does not grow with the row count."""

    columns: tuple[str, ...]
    preview_size: int
    sensitive: tuple[str, ...]
    rows: int = 0
    flagged: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, Counter[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._event = _index(self.columns, _EVENT_COLUMNS)
        self._weight = _index(self.columns, ("total",))
        self._slots = {
            "events": self._event,
            "principals": _index(self.columns, _PRINCIPAL_COLUMNS),
            "source_ips": _index(self.columns, _IP_COLUMNS),
            "errors": _index(self.columns, _ERROR_COLUMNS),
        }
        self._status = _index(self.columns, ("responseStatus.code",))
        self.counters = {name: Counter() for name in self._slots}

    def observe(self, row: Row) -> None:
        self.rows += 1
        weight = _int(row[self._weight]) if self._weight is not None else 1
        flagged = self._event is not None and is_sensitive(row[self._event], self.sensitive)
        if flagged:
            self.flagged += weight
        for name, index in self._slots.items():
            value = row[index] if index is not None else None
            if name == "errors" and index == self._status and not (value or "").startswith(("4", "5")):
                continue  # an HTTP status column: only 4xx/5xx are errors
            counter = self.counters[name]
            if value and (value in counter or len(counter) < MAX_DISTINCT):
                counter[value] += weight
        if len(self.preview) < self.preview_size:
            # Cut long cells (request parameters can be kilobytes): the run row stays small, the CSV is whole.
            cells = [c if c is None or len(c) <= PREVIEW_CELL else c[: PREVIEW_CELL - 1] + "…" for c in row]
            self.preview.append({"cells": cells, "flagged": flagged})

    def top(self) -> dict[str, list[tuple[str, int]]]:
        return {name: counter.most_common(TOP) for name, counter in self.counters.items() if counter}

    def text(self) -> str:
        parts = []
        for name, label in (("events", "top events"), ("principals", "principals"), ("source_ips", "source IPs")):
            items = self.counters[name].most_common(3)
            if items:
                parts.append(f"{label}: " + ", ".join(f"{value} ×{count}" for value, count in items))
        errors = sum(self.counters["errors"].values())
        if errors:
            parts.append(f"{errors} with errors")
        return "; ".join(parts)


def _int(value: str | None) -> int:
    try:
        return int(value or 1)
    except ValueError:
        return 1
