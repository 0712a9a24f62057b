"""The shape every query engine shares: start, poll, read rows in pages, stop."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

Cell = str | None
Row = tuple[Cell, ...]


class QueryState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def done(self) -> bool:
        return self in (QueryState.SUCCEEDED, QueryState.FAILED, QueryState.CANCELLED)


@dataclass(frozen=True)
class QueryRequest:
    """What to run. `sql` holds `?` placeholders; `parameters` are their values, in order, as text.

    `window_start`/`window_end` (epoch seconds) are the time range for engines that take one outside
    the query text (Logs Insights); `log_groups` names what Logs Insights reads.
    """

    sql: str
    parameters: tuple[str, ...] = ()
    window_start: int | None = None
    window_end: int | None = None
    log_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class QueryStatus:
    state: QueryState
    reason: str = ""
    bytes_scanned: int = 0
    engine_ms: int = 0
    # Share of the work done, 0–100, when the engine can tell (DuckDB can; Athena and Logs cannot).
    percent: float | None = None
    # Where the query ran, for provenance (workgroup, database, output location …).
    details: dict[str, str] = field(default_factory=dict)


class ByteSource(Protocol):
    """What evidence storage reads from: a stream of bytes, read in chunks, then closed."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class QueryResult:
    """Column names, and the rows as text (NULL as None), read lazily in pages."""

    columns: tuple[str, ...]
    rows: Iterator[Row]
    warnings: tuple[str, ...] = ()
    # Where the rows were read from, for provenance: an API ("GetQueryResults") or an object URI.
    source: str = ""
    # The result already in the evidence CSV form (csvstream), when the engine has it as an object:
    # opened on demand and copied byte for byte instead of rendering `rows`. Only one of the two is read.
    open_csv: Callable[[], ByteSource] | None = None


class QueryEngine(Protocol):
    name: str

    def start(self, request: QueryRequest, *, token: str) -> str:
        """Start the query; the same `token` never starts a second query. Returns the execution id."""
        ...

    def status(self, execution_id: str) -> QueryStatus: ...

    def result(self, execution_id: str) -> QueryResult:
        """Only after SUCCEEDED."""
        ...

    def stop(self, execution_id: str) -> None: ...

    def close(self) -> None: ...
