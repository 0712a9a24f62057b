"""Amazon Athena over the CloudTrail table (DOMAIN.md §3.2–3.4).

IAM permissions: athena:StartQueryExecution, athena:GetQueryExecution, athena:GetQueryResults,
athena:StopQueryExecution on the workgroup; glue:GetDatabase, glue:GetTable, glue:GetPartitions on the
CloudTrail database and table (glue:CreateTable for the setup DDL); s3:GetObject on the trail bucket's
AWSLogs/ prefix; s3:GetObject and s3:PutObject on the results location (PERF-REL-SEC.md C5); the
app itself needs s3:GetObject there only with `results_from_s3`.

Parameters travel as ExecutionParameters, each a SQL literal as text ("'AIDA…'"), never in the
query string (Athena UG "Use parameterized queries").
"""

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from integrations.aws.session import aws_client, aws_errors
from integrations.errors import PermanentIntegrationError
from integrations.queries.base import QueryRequest, QueryResult, QueryState, QueryStatus, Row
from integrations.queries.csvstream import parse_lines

PAGE_SIZE = 1000  # GetQueryResults' maximum
MAX_QUERY_BYTES = 262_144


@dataclass(frozen=True)
class AthenaConfig:
    workgroup: str = "primary"
    database: str = "default"
    catalog: str = "AwsDataCatalog"
    output_location: str = ""  # empty: the workgroup's own result location
    expected_bucket_owner: str = ""
    region: str | None = None
    # Take a SELECT's result as the CSV Athena writes to the result location (one streamed GetObject,
    # copied byte for byte as the evidence) instead of GetQueryResults pages of 1,000 (Athena UG
    # "Working with query results"): for large results. Needs s3:GetObject there.
    results_from_s3: bool = False


def sql_literal(value: str) -> str:
    """A string as the quoted SQL literal Athena's ExecutionParameters expect: quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def athena_client(region: str | None) -> Any:
    return aws_client("athena", region)


class AthenaEngine:
    name = "athena"

    def __init__(self, config: AthenaConfig, *, client: Any = None, s3: Any = None) -> None:
        self.config = config
        self.client = client if client is not None else athena_client(config.region)
        self._s3 = s3
        self._statement_types: dict[str, str] = {}
        self._locations: dict[str, str] = {}

    def _request(self, request: QueryRequest, token: str) -> dict[str, Any]:
        if len(request.sql.encode()) > MAX_QUERY_BYTES:
            raise PermanentIntegrationError("Athena: the query text is longer than 262,144 bytes.")
        if not 32 <= len(token) <= 128:
            raise PermanentIntegrationError("Athena: ClientRequestToken must be 32–128 characters.")
        params: dict[str, Any] = {
            "QueryString": request.sql,
            "ClientRequestToken": token,
            "QueryExecutionContext": {"Database": self.config.database, "Catalog": self.config.catalog},
            "WorkGroup": self.config.workgroup,
        }
        result_config: dict[str, str] = {}
        if self.config.output_location:
            result_config["OutputLocation"] = self.config.output_location
        if self.config.expected_bucket_owner:
            result_config["ExpectedBucketOwner"] = self.config.expected_bucket_owner
        if result_config:
            params["ResultConfiguration"] = result_config
        if request.parameters:
            params["ExecutionParameters"] = [sql_literal(value) for value in request.parameters]
        return params

    def start(self, request: QueryRequest, *, token: str) -> str:
        # The token makes a retried call (ours or botocore's) return the first execution, not a second one.
        with aws_errors("Athena StartQueryExecution"):
            response = self.client.start_query_execution(**self._request(request, token))
        return str(response["QueryExecutionId"])

    def status(self, execution_id: str) -> QueryStatus:
        with aws_errors("Athena GetQueryExecution"):
            execution = self.client.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
        self._statement_types[execution_id] = execution.get("StatementType", "DML")
        self._locations[execution_id] = str(execution.get("ResultConfiguration", {}).get("OutputLocation", ""))
        status = execution.get("Status", {})
        stats = execution.get("Statistics", {})
        return QueryStatus(
            state=QueryState(status.get("State", "QUEUED")),
            reason=_reason(status),
            bytes_scanned=int(stats.get("DataScannedInBytes") or 0),
            engine_ms=int(stats.get("EngineExecutionTimeInMillis") or 0),
            details={
                "workgroup": str(execution.get("WorkGroup") or self.config.workgroup),
                "database": str(execution.get("QueryExecutionContext", {}).get("Database") or self.config.database),
                "output_location": str(execution.get("ResultConfiguration", {}).get("OutputLocation", "")),
                "statement_type": self._statement_types[execution_id],
            },
        )

    def result(self, execution_id: str) -> QueryResult:
        # Only a SELECT's first page starts with the header row; later pages never repeat it.
        select = self._statement_types.get(execution_id, "DML") == "DML"
        location = self._locations.get(execution_id, "")
        from_s3 = self.config.results_from_s3 and select and location.startswith("s3://")
        # The column names come from the result metadata either way (one row is enough for it).
        first = self._page(execution_id, None, max_results=1 if from_s3 else PAGE_SIZE)
        columns = tuple(
            str(info.get("Name", f"_col{i}"))
            for i, info in enumerate(first.get("ResultSet", {}).get("ResultSetMetadata", {}).get("ColumnInfo", []))
        )
        if from_s3:
            # The object is already in the evidence form (csvstream): copied as it is, never parsed.
            return QueryResult(
                columns=columns,
                rows=self._s3_rows(location),
                source=location,
                open_csv=lambda: _Body(self._s3_body(location), location),
            )
        return QueryResult(columns=columns, rows=self._rows(execution_id, first, select), source="GetQueryResults")

    def _s3_body(self, location: str) -> Any:
        bucket, _, key = location.removeprefix("s3://").partition("/")
        params = {"Bucket": bucket, "Key": key}
        if self.config.expected_bucket_owner:
            params["ExpectedBucketOwner"] = self.config.expected_bucket_owner
        s3 = self._s3 if self._s3 is not None else aws_client("s3", self.config.region)
        with aws_errors(f"S3 GetObject {location}"):
            return s3.get_object(**params)["Body"]

    def _s3_rows(self, location: str) -> Iterator[Row]:
        """The object read back as rows (the command line, tests): NULL stays None, "" stays ""."""
        body = _Body(self._s3_body(location), location)
        try:
            lines = (line.decode("utf-8") for line in body.iter_lines(keepends=True))
            rows = parse_lines(lines)
            next(rows, None)  # the CSV's own header row
            yield from rows
        except ValueError as exc:
            raise PermanentIntegrationError(f"Athena result {location}: {exc}") from exc
        finally:
            body.close()

    def _page(self, execution_id: str, token: str | None, max_results: int = PAGE_SIZE) -> dict[str, Any]:
        params: dict[str, Any] = {"QueryExecutionId": execution_id, "MaxResults": max_results}
        if token:
            params["NextToken"] = token
        with aws_errors("Athena GetQueryResults"):
            return dict(self.client.get_query_results(**params))

    def _rows(self, execution_id: str, page: dict[str, Any], skip_header: bool) -> Iterator[Row]:
        rows = page.get("ResultSet", {}).get("Rows", [])
        if skip_header:
            rows = rows[1:]
        while True:
            for row in rows:
                # A NULL cell is a Datum without VarCharValue (DOMAIN.md §3.3).
                yield tuple(datum.get("VarCharValue") for datum in row.get("Data", []))
            token = page.get("NextToken")
            if not token:
                return
            page = self._page(execution_id, token)
            rows = page.get("ResultSet", {}).get("Rows", [])

    def stop(self, execution_id: str) -> None:
        with aws_errors("Athena StopQueryExecution"):
            self.client.stop_query_execution(QueryExecutionId=execution_id)

    def close(self) -> None:
        self._statement_types.clear()
        self._locations.clear()


class _Body(io.RawIOBase):
    """botocore's StreamingBody with its read errors (a connection dropped mid-object) as ours."""

    def __init__(self, body: Any, location: str) -> None:
        super().__init__()
        self._body = body
        self._what = f"S3 GetObject {location}"

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        with aws_errors(self._what):
            return bytes(self._body.read(None if size is None or size < 0 else size))

    def iter_lines(self, keepends: bool = False) -> Iterator[bytes]:
        with aws_errors(self._what):
            yield from self._body.iter_lines(keepends=keepends)

    def close(self) -> None:
        self._body.close()
        super().close()


def _reason(status: dict[str, Any]) -> str:
    error = status.get("AthenaError") or {}
    parts = [str(status.get("StateChangeReason") or "")]
    message = str(error.get("ErrorMessage") or "")
    if message and message not in parts[0]:
        parts.append(message)
    if error:
        category = {1: "system", 2: "user", 3: "other"}.get(int(error.get("ErrorCategory") or 0), "")
        retry = " (retryable)" if error.get("Retryable") else ""
        parts.append(f"[{category} error {error.get('ErrorType', '')}{retry}]".replace(" ]", "]"))
    return " ".join(part for part in parts if part).strip()
