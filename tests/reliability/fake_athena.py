"""An Amazon Athena endpoint on loopback, for tests that need real boto3 over HTTP (DOMAIN.md §4.2 option 2).

moto cannot throttle, and it does not de-duplicate StartQueryExecution by ClientRequestToken, so it
cannot tell whether a retry started a second (billed) query. This serves the four calls the Athena
engine makes, in the JSON 1.1 shapes of botocore's service model (`X-Amz-Target: AmazonAthena.<Op>`):

- StartQueryExecution, idempotent by ClientRequestToken as Athena documents it: a token seen before
  returns the execution it started, so `executions` holds the queries Athena would actually have run;
- GetQueryExecution, which moves an execution QUEUED → RUNNING → SUCCEEDED over its first four polls;
- GetQueryResults, a fixed result served in pages of MaxResults with NextToken, the header row first
  on the first page only (as Athena does for a SELECT);
- StopQueryExecution.

Every request is logged with botocore's `amz-sdk-request: attempt=N; max=M` header. A `fault` callable
can answer any request with ThrottlingException, as Athena does when a caller goes too fast: the
request is refused before Athena acts on it, so a throttled StartQueryExecution starts nothing.
Point boto3 at it with AWS_ENDPOINT_URL_ATHENA.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.reliability.fake_aws import LoopbackAws, sdk_attempt

Cell = str | None
OUTPUT = "s3://athena-results-123456789012/watchpost/"
# The state each poll of an execution answers: QUEUED, RUNNING twice, then SUCCEEDED from the fourth on.
PROGRESSION = ("QUEUED", "RUNNING", "RUNNING")


@dataclass
class Served:
    operation: str
    body: dict[str, Any]
    status: int
    # botocore's `amz-sdk-request: attempt=N; max=M` header: which attempt of one call this was.
    attempt: int = 0
    max_attempts: int = 0


@dataclass
class Execution:
    execution_id: str
    token: str
    query: str
    polls: int = 0
    state: str = "QUEUED"


class FakeAthena(LoopbackAws):
    content_type = "application/x-amz-json-1.1"

    def __init__(
        self,
        columns: list[str],
        rows: list[list[Cell]],
        *,
        fault: Callable[[int, str], bool] | None = None,
    ) -> None:
        super().__init__()
        self.columns = columns
        self.rows = rows
        self.fault = fault or (lambda number, operation: False)
        self.log: list[Served] = []
        # Keyed by ClientRequestToken: the executions Athena actually started, in order.
        self.executions: dict[str, Execution] = {}

    def calls(self, operation: str, *, status: int | None = None) -> list[Served]:
        with self.lock:
            return [e for e in self.log if e.operation == operation and (status is None or e.status == status)]

    def _by_id(self, execution_id: str) -> Execution | None:
        return next((e for e in self.executions.values() if e.execution_id == execution_id), None)

    def _answer(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        # One request at a time (boto3 calls are sequential here); the lock keeps the counters exact anyway.
        with self.lock:
            number = len(self.log)
            if self.fault(number, operation):
                return 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
            if operation == "StartQueryExecution":
                token = str(body.get("ClientRequestToken") or "")
                if not token:  # botocore fills in a token when the caller leaves it out; we never do
                    return 400, {"__type": "InvalidRequestException", "message": "no ClientRequestToken"}
                execution = self.executions.get(token)
                if execution is None:
                    execution = Execution(f"q-{len(self.executions) + 1:04d}", token, str(body.get("QueryString")))
                    self.executions[token] = execution
                return 200, {"QueryExecutionId": execution.execution_id}
            found = self._by_id(str(body.get("QueryExecutionId", "")))
            if found is None:
                return 400, {"__type": "InvalidRequestException", "message": "QueryExecution not found"}
            if operation == "GetQueryExecution":
                return 200, {"QueryExecution": self._poll(found)}
            if operation == "StopQueryExecution":
                if found.state in ("QUEUED", "RUNNING"):
                    found.state = "CANCELLED"
                return 200, {}
            if operation == "GetQueryResults":
                if found.state != "SUCCEEDED":
                    message = f"Query has not yet finished. Current state: {found.state}"
                    return 400, {"__type": "InvalidRequestException", "message": message}
                return 200, self._page(found, body)
            return 400, {"__type": "UnknownOperationException", "message": operation}

    def _poll(self, execution: Execution) -> dict[str, Any]:
        if execution.state not in ("CANCELLED",):
            execution.state = PROGRESSION[execution.polls] if execution.polls < len(PROGRESSION) else "SUCCEEDED"
        execution.polls += 1
        return {
            "QueryExecutionId": execution.execution_id,
            "Query": execution.query,
            "StatementType": "DML",
            "ResultConfiguration": {"OutputLocation": f"{OUTPUT}{execution.execution_id}.csv"},
            "QueryExecutionContext": {"Database": "default", "Catalog": "AwsDataCatalog"},
            "WorkGroup": "primary",
            "Status": {"State": execution.state},
            "Statistics": {"DataScannedInBytes": 123_456_789, "EngineExecutionTimeInMillis": 4_200},
        }

    def _page(self, execution: Execution, body: dict[str, Any]) -> dict[str, Any]:
        # Row 0 of the result set is the header (a SELECT's first page starts with it); data rows follow.
        table: list[list[Cell]] = [list(self.columns), *self.rows]
        start = int(body.get("NextToken") or 0)
        size = int(body.get("MaxResults") or 1000)
        page = table[start : start + size]
        reply: dict[str, Any] = {
            "ResultSet": {
                # A NULL cell is a Datum without VarCharValue.
                "Rows": [{"Data": [{} if c is None else {"VarCharValue": c} for c in row]} for row in page],
                "ResultSetMetadata": {"ColumnInfo": [{"Name": c, "Type": "varchar"} for c in self.columns]},
            },
            "UpdateCount": 0,
        }
        if start + size < len(table):
            reply["NextToken"] = str(start + size)
        return reply

    def respond(self, path: str, headers: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        operation = headers.get("X-Amz-Target", "").removeprefix("AmazonAthena.")
        status, reply = self._answer(operation, body)
        served = Served(operation, body, status, *sdk_attempt(headers.get("amz-sdk-request", "")))
        with self.lock:
            self.log.append(served)
        return status, reply, {}
