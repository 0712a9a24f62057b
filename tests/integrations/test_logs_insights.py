"""CloudWatch Logs Insights over EKS audit logs, and the coverage check, through botocore's Stubber.

moto ignores Insights `filter`/`stats` and has no StopQuery (DOMAIN.md §4.1), so the payloads here are
shaped like the real service's: rows of {field, value}, with the @ptr field every row carries.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from integrations.aws.logs import LogsInsightsEngine, audit_coverage
from integrations.errors import PermanentIntegrationError, TransientIntegrationError
from integrations.queries.base import QueryRequest, QueryState

GROUP = "/aws/eks/payments-prod/cluster"
REQUEST = QueryRequest(
    sql="fields @timestamp, user.username | limit 10000",
    window_start=1763600000,
    window_end=1763700000,
    log_groups=(GROUP,),
)


def _client(service: str) -> Any:
    return boto3.client(service, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")


def _row(**fields: str) -> list[dict[str, str]]:
    return [{"field": k.replace("__", "."), "value": v} for k, v in fields.items()] + [
        {"field": "@ptr", "value": "CmAKJwojMjEwOTg3NjU0MzIxOi9hd3MvZWtzL3BheW1lbnRzLXByb2QvY2x1c3RlchAHEjUaGAIGX"}
    ]


ANONYMOUS = [
    _row(
        **{
            "@timestamp": "2026-11-20 11:47:03.000",
            "user__username": "system:anonymous",
            "verb": "get",
            "requestURI": "/api/v1/namespaces/kube-system/secrets",
            "sourceIPs__0": "198.51.100.23",
            "responseStatus__code": "200",
        }
    ),
    _row(
        **{
            "@timestamp": "2026-11-20 09:02:41.000",
            "user__username": "system:anonymous",
            "verb": "list",
            "requestURI": "/apis",
            "sourceIPs__0": "198.51.100.23",
        }
    ),
]


def test_start_poll_and_read_rows() -> None:
    client = _client("logs")
    engine = LogsInsightsEngine(region="eu-west-1", client=client)
    stub = Stubber(client)
    stub.add_response(
        "start_query",
        {"queryId": "q-logs-1"},
        {"logGroupNames": [GROUP], "startTime": 1763600000, "endTime": 1763700000, "queryString": REQUEST.sql},
    )
    stub.add_response("get_query_results", {"status": "Running", "results": []}, {"queryId": "q-logs-1"})
    stub.add_response(
        "get_query_results",
        {
            "status": "Complete",
            "results": ANONYMOUS,
            "statistics": {"recordsMatched": 2.0, "recordsScanned": 5120.0, "bytesScanned": 1048576.0},
        },
        {"queryId": "q-logs-1"},
    )
    with stub:
        query_id = engine.start(REQUEST, token="unused-by-logs-insights-000000000")
        assert engine.status(query_id).state is QueryState.RUNNING
        status = engine.status(query_id)
        result = engine.result(query_id)
        rows = list(result.rows)
    stub.assert_no_pending_responses()
    assert status.state is QueryState.SUCCEEDED and status.bytes_scanned == 1048576
    assert status.details["records_scanned"] == "5120" and status.details["log_groups"] == GROUP
    assert result.columns == (
        "@timestamp",
        "user.username",
        "verb",
        "requestURI",
        "sourceIPs.0",
        "responseStatus.code",
    )
    # A field absent from a row (no responseStatus) is a NULL, not a shifted column; @ptr is dropped.
    assert rows[1] == ("2026-11-20 09:02:41.000", "system:anonymous", "list", "/apis", "198.51.100.23", None)


@pytest.mark.parametrize(
    ("status", "state"),
    [("Failed", QueryState.FAILED), ("Timeout", QueryState.FAILED), ("Cancelled", QueryState.CANCELLED)],
)
def test_end_states(status: str, state: QueryState) -> None:
    client = _client("logs")
    stub = Stubber(client)
    stub.add_response("get_query_results", {"status": status, "results": []}, {"queryId": "q"})
    with stub:
        result = LogsInsightsEngine(region="eu-west-1", client=client).status("q")
    assert result.state is state
    assert (status in result.reason) == (state is QueryState.FAILED)


def test_stop_and_errors() -> None:
    client = _client("logs")
    stub = Stubber(client)
    stub.add_response("stop_query", {"success": True}, {"queryId": "q"})
    stub.add_client_error("start_query", "LimitExceededException", "Too many concurrent queries", 400)
    stub.add_client_error("start_query", "ResourceNotFoundException", "Log group does not exist", 400)
    engine = LogsInsightsEngine(region="eu-west-1", client=client)
    with stub:
        engine.stop("q")
        with pytest.raises(TransientIntegrationError, match="LimitExceededException"):
            engine.start(REQUEST, token="")
        with pytest.raises(PermanentIntegrationError, match="Log group does not exist"):
            engine.start(REQUEST, token="")


def _cluster(audit: bool) -> dict[str, Any]:
    return {
        "cluster": {
            "name": "payments-prod",
            "arn": "arn:aws:eks:eu-west-1:210987654321:cluster/payments-prod",
            "logging": {
                "clusterLogging": [
                    {"types": ["api", "authenticator"], "enabled": True},
                    {"types": ["audit", "controllerManager", "scheduler"], "enabled": audit},
                ]
            },
        }
    }


def _coverage(audit: bool, groups: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    eks, logs = _client("eks"), _client("logs")
    eks_stub, logs_stub = Stubber(eks), Stubber(logs)
    eks_stub.add_response("describe_cluster", _cluster(audit), {"name": "payments-prod"})
    logs_stub.add_response("describe_log_groups", {"logGroups": groups}, {"logGroupNamePrefix": GROUP})
    with eks_stub, logs_stub:
        return audit_coverage(cluster="payments-prod", region="eu-west-1", eks=eks, logs=logs)


def test_coverage_with_audit_logging_on_says_from_when() -> None:
    created = datetime(2026, 11, 21, 8, 25, tzinfo=UTC)
    coverage = _coverage(True, [{"logGroupName": GROUP, "creationTime": int(created.timestamp() * 1000)}])
    assert coverage.audit_enabled and coverage.log_group_exists and coverage.history_from == created
    assert coverage.gap == "No Kubernetes audit history is available before 2026-11-21 08:25 UTC for payments-prod."
    assert coverage.missing_before(datetime(2026, 11, 20, tzinfo=UTC))
    assert not coverage.missing_before(datetime(2026, 11, 22, tzinfo=UTC))


def test_coverage_counts_retention() -> None:
    created = datetime.now(UTC) - timedelta(days=400)
    coverage = _coverage(
        True, [{"logGroupName": GROUP, "creationTime": int(created.timestamp() * 1000), "retentionInDays": 30}]
    )
    assert coverage.retention_days == 30
    assert coverage.history_from is not None
    assert abs(coverage.history_from - (datetime.now(UTC) - timedelta(days=30))) < timedelta(minutes=1)


def test_coverage_with_audit_logging_off_and_no_group_says_there_is_no_history() -> None:
    coverage = _coverage(False, [{"logGroupName": GROUP + "-other", "creationTime": 0}])
    assert not coverage.audit_enabled and not coverage.log_group_exists
    assert "audit logging is off for payments-prod" in coverage.gap
    assert "no Kubernetes audit history is available" in coverage.gap
