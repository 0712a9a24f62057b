"""DuckDB over CloudTrail `.json.gz` files in the real S3 layout on a local disk (DOMAIN.md §3.6).

No AWS permissions: it reads files under a directory (the bundled demo logs, or a trail bucket
synced with `aws s3 sync s3://<bucket>/AWSLogs/ <dir>/AWSLogs/`).

The view `cloudtrail_logs` mirrors the Athena table: an explicit schema (inferred types would turn
eventTime into TIMESTAMPTZ and requestParameters into a STRUCT, changing the SQL's meaning), lower-case
column names, the delivery date from the path as "timestamp" (the partition column), and macros for
the Trino functions the templates use. Parameters are bound as prepared-statement values.

A file DuckDB cannot read (bad gzip, malformed JSON, an object over the size limit) is reported by
name and left out; the query runs over the rest.
"""

import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from integrations.errors import PermanentIntegrationError
from integrations.queries.base import Cell, QueryRequest, QueryResult, QueryState, QueryStatus, Row

if TYPE_CHECKING:
    # Imported where a query runs (~34 MB of RSS, ~70 MB once connected): processes that never run one
    # (the web server, a worker busy with ingestion) do not carry it.
    import duckdb

VIEW = "cloudtrail_logs"
FETCH_ROWS = 1000
# Reference: CloudTrail UG "Finding your CloudTrail log files" (organisation trails add o-xxxx/).
# Digest files live under CloudTrail-Digest/ and never match.
KEY_PATTERN = re.compile(
    r"^AWSLogs/(?:o-[a-z0-9]{10,32}/)?\d{12}/CloudTrail/[a-z]{2}(?:-[a-z]+)+-\d+/\d{4}/\d{2}/\d{2}/"
    r"\d{12}_CloudTrail_[a-z0-9-]+_\d{8}T\d{4}Z_[A-Za-z0-9]{16}\.json\.gz$"
)

# (JSON key, DuckDB type): CloudTrail UG "record contents"; every scalar VARCHAR, as in the Athena table.
_IDENTITY = (
    'STRUCT("type" VARCHAR, principalId VARCHAR, arn VARCHAR, accountId VARCHAR, invokedBy VARCHAR, '
    "accessKeyId VARCHAR, userName VARCHAR, onBehalfOf STRUCT(userId VARCHAR, identityStoreArn VARCHAR), "
    "sessionContext STRUCT(attributes STRUCT(mfaAuthenticated VARCHAR, creationDate VARCHAR), "
    'sessionIssuer STRUCT("type" VARCHAR, principalId VARCHAR, arn VARCHAR, accountId VARCHAR, userName VARCHAR), '
    "ec2RoleDelivery VARCHAR, webIdFederationData JSON, sourceIdentity VARCHAR))"
)
FIELDS: tuple[tuple[str, str], ...] = (
    ("eventVersion", "VARCHAR"),
    ("userIdentity", _IDENTITY),
    ("eventTime", "VARCHAR"),
    ("eventSource", "VARCHAR"),
    ("eventName", "VARCHAR"),
    ("awsRegion", "VARCHAR"),
    ("sourceIPAddress", "VARCHAR"),
    ("userAgent", "VARCHAR"),
    ("errorCode", "VARCHAR"),
    ("errorMessage", "VARCHAR"),
    ("requestParameters", "JSON"),
    ("responseElements", "JSON"),
    ("additionalEventData", "JSON"),
    ("requestID", "VARCHAR"),
    ("eventID", "VARCHAR"),
    ("readOnly", "VARCHAR"),
    ("resources", 'STRUCT(ARN VARCHAR, accountId VARCHAR, "type" VARCHAR)[]'),
    ("eventType", "VARCHAR"),
    ("apiVersion", "VARCHAR"),
    ("managementEvent", "VARCHAR"),
    ("recipientAccountId", "VARCHAR"),
    ("serviceEventDetails", "JSON"),
    ("sharedEventID", "VARCHAR"),
    ("vpcEndpointId", "VARCHAR"),
    ("vpcEndpointAccountId", "VARCHAR"),
    ("eventCategory", "VARCHAR"),
    ("sessionCredentialFromConsole", "VARCHAR"),
    ("tlsDetails", "STRUCT(tlsVersion VARCHAR, cipherSuite VARCHAR, clientProvidedHostHeader VARCHAR)"),
)
RECORDS_TYPE = "STRUCT(" + ", ".join(f"{name} {kind}" for name, kind in FIELDS) + ")[]"

# Trino functions the shared SQL may use, spelled in DuckDB (DOMAIN.md §3.6 table).
MACROS = (
    "CREATE OR REPLACE TEMP MACRO json_extract_scalar(j, p) AS json_extract_string(j, p)",
    "CREATE OR REPLACE TEMP MACRO regexp_like(s, p) AS regexp_matches(s, p)",
    "CREATE OR REPLACE TEMP MACRO from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ)",
    "CREATE OR REPLACE TEMP MACRO from_unixtime(x) AS to_timestamp(x)",
    "CREATE OR REPLACE TEMP MACRO approx_distinct(x) AS approx_count_distinct(x)",
)


@dataclass(frozen=True)
class DuckDbConfig:
    logs_dir: str
    max_object_bytes: int = 256 * 1024 * 1024  # one CloudTrail file is one JSON object (§3.6 "big files")
    memory_limit: str = "512MB"
    threads: int = 2


@dataclass(frozen=True)
class LogFile:
    path: str  # absolute
    key: str  # relative to the logs directory: the S3 key from AWSLogs/ on
    size: int
    # gzip's ISIZE trailer: the uncompressed size modulo 4 GiB (RFC 1952 §2.3.1). One CloudTrail file
    # is one JSON object, so this is the object size DuckDB must hold.
    uncompressed: int


def _gzip_size(path: Path, size: int) -> int:
    if size < 18:
        return 0
    with path.open("rb") as handle:
        handle.seek(-4, os.SEEK_END)
        return int.from_bytes(handle.read(4), "little")


def log_files(logs_dir: str) -> list[LogFile]:
    """The CloudTrail files under `logs_dir`, in key order; other files (digests, notes) are ignored."""
    root = Path(logs_dir)
    if not root.is_dir():
        raise PermanentIntegrationError(f"DuckDB: the CloudTrail directory {logs_dir} does not exist.")
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            key = path.relative_to(root).as_posix()
            if KEY_PATTERN.match(key):
                size = path.stat().st_size
                found.append(LogFile(str(path.resolve()), key, size, _gzip_size(path, size)))
    return sorted(found, key=lambda f: f.key)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def object_size_limit(files: list[LogFile]) -> int:
    """The smallest `maximum_object_size` that holds the largest file, at least DuckDB's default 16 MiB.

    DuckDB allocates read buffers of this size per thread, so the configured maximum is not used as is.
    """
    largest = max((f.uncompressed for f in files), default=0)
    return max(16 * 1024 * 1024, (largest // (1024 * 1024) + 2) * 1024 * 1024)


def view_sql(files: list[LogFile]) -> str:
    """The view over exactly these files. Paths come from our own directory walk, never from a user."""
    paths = "[" + ", ".join(_quote(f.path) for f in files) + "]"
    columns = ", ".join(f"r.{name} AS {name.lower()}" for name, _ in FIELDS)
    # No user input: our own file paths (quoted), constants and an integer.
    sql = (
        f"CREATE OR REPLACE TEMP VIEW {VIEW} AS SELECT {columns}, "  # noqa: S608
        r"""regexp_extract(filename, '/CloudTrail/[^/]+/(\d{4}/\d{2}/\d{2})/', 1) AS "timestamp", """
        "filename AS source_file "
        f"FROM (SELECT unnest(Records) AS r, filename FROM read_json({paths}, "
        f"columns = {{'Records': {_quote(RECORDS_TYPE)}}}, format = 'auto', filename = true, "
        f"maximum_object_size = {object_size_limit(files)}))"
    )
    return sql


def _cell(value: object) -> Cell:
    """Text the way Athena returns it: booleans lower-case, timestamps ISO, NULL as None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | float | int):
        return str(value)
    return str(value)


@dataclass
class _Execution:
    request: QueryRequest
    files: list[LogFile]
    connection: "duckdb.DuckDBPyConnection"
    started: float = field(default_factory=time.monotonic)
    state: QueryState = QueryState.QUEUED
    reason: str = ""
    skipped: list[str] = field(default_factory=list)
    stopping: bool = False
    finished: float | None = None
    thread: threading.Thread | None = None


class DuckDbEngine:
    name = "duckdb"

    def __init__(self, config: DuckDbConfig) -> None:
        self.config = config
        self._executions: dict[str, _Execution] = {}

    def _connect(self) -> "duckdb.DuckDBPyConnection":
        import duckdb

        # In memory: the files are the only data; nothing persists between runs.
        connection = duckdb.connect(
            ":memory:",
            config={"memory_limit": self.config.memory_limit, "threads": self.config.threads},
        )
        for macro in MACROS:
            connection.execute(macro)
        return connection

    def start(self, request: QueryRequest, *, token: str) -> str:
        files = log_files(self.config.logs_dir)
        if not files:
            raise PermanentIntegrationError(
                f"DuckDB: no CloudTrail files (AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz) "
                f"under {self.config.logs_dir}."
            )
        execution_id = uuid.uuid4().hex
        execution = _Execution(request=request, files=files, connection=self._connect())
        for big in [f for f in files if f.uncompressed > self.config.max_object_bytes]:
            files.remove(big)
            execution.skipped.append(
                f"{big.key}: {big.uncompressed} bytes uncompressed, over the limit of "
                f"{self.config.max_object_bytes} (WATCHPOST_DUCKDB_MAX_OBJECT_BYTES)"
            )
        execution.thread = threading.Thread(target=self._run, args=(execution,), daemon=True, name=f"duckdb-{token}")
        self._executions[execution_id] = execution
        execution.state = QueryState.RUNNING
        execution.thread.start()
        return execution_id

    def _run(self, execution: _Execution) -> None:
        import duckdb

        files = list(execution.files)
        while not execution.stopping:
            try:
                if not files:
                    raise PermanentIntegrationError("every CloudTrail file was unreadable")
                execution.connection.execute(view_sql(files))
                if execution.stopping:
                    raise duckdb.InterruptException("stopped before the query started")
                execution.connection.execute(execution.request.sql, list(execution.request.parameters))
                execution.state = QueryState.SUCCEEDED
                break
            except duckdb.InterruptException:
                execution.state, execution.reason = QueryState.CANCELLED, "Cancelled."
                break
            except (duckdb.Error, PermanentIntegrationError) as exc:
                bad = next((f for f in files if f.path in str(exc)), None)
                if bad is None:
                    execution.state, execution.reason = QueryState.FAILED, _first_line(str(exc))
                    break
                # Leave the unreadable file out and run again over the rest.
                files.remove(bad)
                execution.skipped.append(f"{bad.key}: {_first_line(str(exc)).replace(bad.path, bad.key)}")
        else:
            execution.state, execution.reason = QueryState.CANCELLED, "Cancelled."
        execution.finished = time.monotonic()

    def _get(self, execution_id: str) -> _Execution:
        try:
            return self._executions[execution_id]
        except KeyError:
            raise PermanentIntegrationError(f"DuckDB: no execution {execution_id} in this process.") from None

    def status(self, execution_id: str) -> QueryStatus:
        import duckdb

        execution = self._get(execution_id)
        end = execution.finished or time.monotonic()
        read = {f.key for f in execution.files} - {s.split(":", 1)[0] for s in execution.skipped}
        percent = None
        if execution.state is QueryState.RUNNING:
            measured = execution.connection.query_progress()  # -1 while no statement is executing
            percent = round(float(measured), 1) if measured >= 0 else None
        return QueryStatus(
            state=execution.state,
            reason=execution.reason,
            # DuckDB does not count bytes read; the size of the files the view covers is the upper bound.
            bytes_scanned=sum(f.size for f in execution.files if f.key in read),
            engine_ms=int((end - execution.started) * 1000),
            percent=percent,
            details={
                "database": "duckdb (in memory)",
                "table": VIEW,
                "logs_dir": self.config.logs_dir,
                "files": str(len(read)),
                # Delivery dates (yyyy/MM/dd) of the oldest and newest file read: the history there is.
                "first_delivery": min((_delivery(k) for k in read), default=""),
                "last_delivery": max((_delivery(k) for k in read), default=""),
                "duckdb_version": duckdb.__version__,
            },
        )

    def warnings(self, execution_id: str) -> tuple[str, ...]:
        return tuple(f"Skipped unreadable file {text}" for text in self._get(execution_id).skipped)

    def result(self, execution_id: str) -> QueryResult:
        execution = self._get(execution_id)
        if execution.state is not QueryState.SUCCEEDED:
            raise PermanentIntegrationError(f"DuckDB: the query has not succeeded ({execution.state}).")
        description = execution.connection.description or []
        columns = tuple(str(column[0]) for column in description)
        return QueryResult(columns=columns, rows=self._rows(execution), warnings=self.warnings(execution_id))

    def _rows(self, execution: _Execution) -> Iterator[Row]:
        while batch := execution.connection.fetchmany(FETCH_ROWS):
            for row in batch:
                yield tuple(_cell(value) for value in row)

    def stop(self, execution_id: str) -> None:
        self._interrupt(self._get(execution_id))

    @staticmethod
    def _interrupt(execution: _Execution) -> None:
        # interrupt() only reaches a statement that is executing; one that starts a moment later would
        # miss it, so keep interrupting until the thread has ended.
        execution.stopping = True
        deadline = time.monotonic() + 30
        while execution.thread is not None and execution.thread.is_alive() and time.monotonic() < deadline:
            execution.connection.interrupt()
            execution.thread.join(timeout=0.05)

    def wait(self, execution_id: str, timeout: float | None = None) -> QueryStatus:
        """Block until the query ends (the command line and tests do not need to poll)."""
        thread = self._get(execution_id).thread
        if thread is not None:
            thread.join(timeout)
        return self.status(execution_id)

    def close(self) -> None:
        for execution in self._executions.values():
            self._interrupt(execution)
            execution.connection.close()
        self._executions.clear()


def _delivery(key: str) -> str:
    return "/".join(key.split("/")[-4:-1])


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "DuckDB error"
