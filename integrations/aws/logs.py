"""CloudWatch Logs Insights over EKS control-plane audit logs, and the coverage check before it.

IAM permissions: logs:StartQuery, logs:GetQueryResults, logs:StopQuery and logs:DescribeLogGroups on
`arn:aws:logs:<region>:<account>:log-group:/aws/eks/*/cluster:*`; eks:DescribeCluster on the cluster.

Kubernetes API calls are not in CloudTrail (DOMAIN.md §3.7): they are only in the audit log, which
EKS sends to `/aws/eks/<cluster>/cluster` when control-plane logging type `audit` is on. It is off by
default, so the first question is whether there is any history at all, and from when.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.aws.session import aws_client, aws_errors
from integrations.queries.base import QueryRequest, QueryResult, QueryState, QueryStatus, Row

# Reference: CloudWatch Logs API GetQueryResults "status".
_STATES = {
    "Scheduled": QueryState.QUEUED,
    "Running": QueryState.RUNNING,
    "Complete": QueryState.SUCCEEDED,
    "Failed": QueryState.FAILED,
    "Timeout": QueryState.FAILED,
    "Unknown": QueryState.FAILED,
    "Cancelled": QueryState.CANCELLED,
}


def audit_log_group(cluster: str) -> str:
    return f"/aws/eks/{cluster}/cluster"


class LogsInsightsEngine:
    name = "logs_insights"

    def __init__(self, *, region: str | None, client: Any = None) -> None:
        self.client = client if client is not None else aws_client("logs", region)
        self._responses: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, tuple[str, ...]] = {}

    def start(self, request: QueryRequest, *, token: str) -> str:
        # Logs Insights has no bound parameters: the templates' text holds no user input, and the time
        # window travels as startTime/endTime. StartQuery has no idempotency token.
        del token
        with aws_errors("Logs StartQuery"):
            response = self.client.start_query(
                logGroupNames=list(request.log_groups),
                startTime=int(request.window_start or 0),
                endTime=int(request.window_end or datetime.now(UTC).timestamp()),
                queryString=request.sql,
            )
        query_id = str(response["queryId"])
        self._groups[query_id] = request.log_groups
        return query_id

    def status(self, execution_id: str) -> QueryStatus:
        with aws_errors("Logs GetQueryResults"):
            response = self.client.get_query_results(queryId=execution_id)
        state = _STATES.get(str(response.get("status")), QueryState.RUNNING)
        if state is QueryState.SUCCEEDED:
            self._responses[execution_id] = response
        stats = response.get("statistics", {})
        reason = "" if state is not QueryState.FAILED else f"Logs Insights query ended as {response.get('status')}."
        return QueryStatus(
            state=state,
            reason=reason,
            bytes_scanned=int(stats.get("bytesScanned") or 0),
            details={
                "log_groups": ", ".join(self._groups.get(execution_id, ())),
                "records_matched": str(int(stats.get("recordsMatched") or 0)),
                "records_scanned": str(int(stats.get("recordsScanned") or 0)),
            },
        )

    def result(self, execution_id: str) -> QueryResult:
        response = self._responses.get(execution_id) or self.client.get_query_results(queryId=execution_id)
        rows = response.get("results", [])
        columns: list[str] = []
        for row in rows:
            for cell in row:
                name = str(cell.get("field", ""))
                # @ptr is an opaque pointer to the log record, not data.
                if name and name != "@ptr" and name not in columns:
                    columns.append(name)
        return QueryResult(columns=tuple(columns), rows=_rows(rows, tuple(columns)))

    def stop(self, execution_id: str) -> None:
        with aws_errors("Logs StopQuery"):
            self.client.stop_query(queryId=execution_id)

    def close(self) -> None:
        self._responses.clear()


def _rows(rows: list[list[dict[str, str]]], columns: tuple[str, ...]) -> Iterator[Row]:
    for row in rows:
        values = {cell.get("field"): cell.get("value") for cell in row}
        yield tuple(values.get(name) for name in columns)


@dataclass(frozen=True)
class AuditCoverage:
    cluster: str
    audit_enabled: bool
    log_group_exists: bool
    history_from: datetime | None
    retention_days: int | None

    @property
    def gap(self) -> str:
        """What the case must say instead of an empty result; empty when history covers the window."""
        if not self.log_group_exists:
            state = "is on" if self.audit_enabled else "is off"
            return (
                f"Control-plane audit logging {state} for {self.cluster}, but there is no log group "
                f"{audit_log_group(self.cluster)}: no Kubernetes audit history is available."
            )
        since = f"{self.history_from:%Y-%m-%d %H:%M} UTC" if self.history_from else "the log group's creation"
        text = f"No Kubernetes audit history is available before {since} for {self.cluster}"
        if not self.audit_enabled:
            text += "; audit logging is off now, so nothing after it was turned off is recorded either"
        return text + "."

    def missing_before(self, moment: datetime) -> bool:
        return not self.log_group_exists or self.history_from is None or self.history_from > moment


def audit_coverage(*, cluster: str, region: str | None, eks: Any = None, logs: Any = None) -> AuditCoverage:
    """DescribeCluster's logging configuration and the audit log group's age and retention."""
    eks = eks if eks is not None else aws_client("eks", region)
    logs = logs if logs is not None else aws_client("logs", region)
    with aws_errors(f"EKS DescribeCluster {cluster}"):
        described = eks.describe_cluster(name=cluster)["cluster"]
    enabled = any(
        "audit" in entry.get("types", []) and entry.get("enabled")
        for entry in described.get("logging", {}).get("clusterLogging", [])
    )
    name = audit_log_group(cluster)
    with aws_errors("Logs DescribeLogGroups"):
        groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
    group = next((g for g in groups if g.get("logGroupName") == name), None)
    if group is None:
        return AuditCoverage(cluster, enabled, False, None, None)
    created = datetime.fromtimestamp(int(group.get("creationTime", 0)) / 1000, tz=UTC)
    retention = group.get("retentionInDays")
    history_from = created
    if retention:
        history_from = max(created, datetime.now(UTC) - timedelta(days=int(retention)))
    return AuditCoverage(cluster, enabled, True, history_from, int(retention) if retention else None)
