"""query.run configured for Athena and for EKS audit logs, through the real task and the real service.

Athena and EKS/Logs run on moto over loopback; where moto cannot produce the behaviour (throttling in
the middle of a run), the service gets a real botocore client with a Stubber on it.
"""

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from incidents.models import Evidence, TimelineEvent
from integrations.queries import athena
from playbooks import actions
from playbooks.models import ActionRun
from playbooks.tasks import action_run_task
from tests.integrations.query_helpers import inject, manual_progression

pytestmark = pytest.mark.django_db
Status = ActionRun.Status
WINDOW = {"since": "2026-11-18T00:00:00Z", "until": "2026-11-28T00:00:00Z"}
ATTACKER = "198.51.100.23"
COLUMNS = [{"Name": n, "Type": "varchar"} for n in ("eventtime", "eventsource", "eventname", "awsregion")]


@pytest.fixture(autouse=True)
def athena_settings(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.WATCHPOST_QUERY_ENGINE = "athena"
    settings.WATCHPOST_ATHENA_REGION = "us-east-1"
    settings.WATCHPOST_ATHENA_OUTPUT_LOCATION = "s3://athena-results-123456789012/watchpost/"
    settings.WATCHPOST_ATHENA_PRICE_PER_TB_USD = 5.0


def _request(incident, actor, **params: str) -> ActionRun:  # type: ignore[no-untyped-def]
    return actions.action_run_request(incident_id=incident.pk, action="query.run", actor=actor, params=params)


def _run(run: ActionRun) -> ActionRun:
    action_run_task.apply(args=[run.pk])
    run.refresh_from_db()
    return run


def test_athena_run_keeps_the_result_and_the_execution_in_the_provenance(moto: str, incident, responder) -> None:
    # given: Athena will return two rows (moto hands the queued result to the next query)
    inject(
        moto,
        [
            ["eventtime", "eventsource", "eventname", "awsregion"],
            ["2026-11-20T09:44:02Z", "iam.amazonaws.com", "CreateUser", "eu-west-1"],
            ["2026-11-20T09:41:05Z", "s3.amazonaws.com", "ListBuckets", None],
        ],
        COLUMNS,
    )
    manual_progression(moto, 2)
    # when
    run = _run(_request(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW))
    # then
    assert run.status == Status.SUCCEEDED, run.error
    assert run.result["rows"] == 2 and run.result["flagged"] == 1
    evidence = Evidence.objects.get(pk=run.result["evidence_id"])
    # the evidence form is Athena's own result CSV: every value quoted, NULL an empty unquoted field, LF
    assert Path(evidence.file.path).read_bytes() == (
        b'"eventtime","eventsource","eventname","awsregion"\n'
        b'"2026-11-20T09:44:02Z","iam.amazonaws.com","CreateUser","eu-west-1"\n'
        b'"2026-11-20T09:41:05Z","s3.amazonaws.com","ListBuckets",\n'
    )
    p = evidence.provenance
    assert p["engine"] == "athena" and p["workgroup"] == "primary" and p["database"] == "default"
    assert p["table"] == "cloudtrail_logs_pp" and "FROM cloudtrail_logs_pp" in p["sql"]
    assert p["details"]["output_location"].startswith("s3://athena-results-123456789012/watchpost/")
    execution = boto3.client("athena").get_query_execution(QueryExecutionId=p["execution_id"])["QueryExecution"]
    assert execution["ExecutionParameters"][-1] == f"'{ATTACKER}'"
    assert run.progress["engine"] == "athena" and run.progress["state"] == "SUCCEEDED"


def test_cancel_stops_the_athena_query_and_the_run_ends_cancelled(moto: str, incident, responder, settings) -> None:
    # given: the setup DDL, which stays queued for many polls, and a responder who asked to cancel
    manual_progression(moto, 50)
    settings_location = "s3://org-trail/AWSLogs/123456789012/CloudTrail/us-east-1"
    settings.WATCHPOST_CLOUDTRAIL_S3_LOCATION = settings_location
    run = _request(incident, responder, template="create_cloudtrail_table")
    ActionRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    # when
    run = _run(run)
    assert run.status == Status.CANCELLED and run.result["cancelled"] is True
    execution = boto3.client("athena").get_query_execution(QueryExecutionId=run.result["execution_id"])
    assert execution["QueryExecution"]["Status"]["State"] == "CANCELLED"
    assert execution["QueryExecution"]["Query"].startswith("CREATE EXTERNAL TABLE IF NOT EXISTS cloudtrail_logs_pp")
    assert f"LOCATION '{settings_location}'" in execution["QueryExecution"]["Query"]
    assert not Evidence.objects.exists()


def test_the_setup_ddl_needs_a_trail_location(moto: str, incident, responder, settings) -> None:
    settings.WATCHPOST_CLOUDTRAIL_S3_LOCATION = ""
    run = _run(_request(incident, responder, template="create_cloudtrail_table"))
    assert run.status == Status.FAILED and "WATCHPOST_CLOUDTRAIL_S3_LOCATION" in run.error


def test_a_retried_run_resumes_its_execution_instead_of_starting_another(moto: str, incident, responder) -> None:
    # given: an earlier attempt started the query and recorded it before a transient error
    inject(moto, [["eventtime", "eventsource", "eventname", "awsregion"]], COLUMNS)
    client = boto3.client("athena")
    started = client.start_query_execution(QueryString="SELECT 1", WorkGroup="primary")["QueryExecutionId"]
    run = _request(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW)
    ActionRun.objects.filter(pk=run.pk).update(progress={"engine": "athena", "execution_id": started})
    # when
    run = _run(run)
    # then
    assert run.status == Status.SUCCEEDED and run.result["execution_id"] == started
    assert len(client.list_query_executions()["QueryExecutionIds"]) == 1


def _stubbed_client(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Stubber, list[str]]:
    client = boto3.client("athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    tokens: list[str] = []
    client.meta.events.register(
        "provide-client-params.athena.StartQueryExecution",
        lambda params, **kwargs: tokens.append(params["ClientRequestToken"]),
    )
    monkeypatch.setattr(athena, "athena_client", lambda region: client)
    return client, Stubber(client), tokens


def _succeeded(execution_id: str) -> dict[str, Any]:
    return {
        "QueryExecution": {
            "QueryExecutionId": execution_id,
            "StatementType": "DML",
            "Status": {"State": "SUCCEEDED"},
            "Statistics": {"DataScannedInBytes": 2 * 10**12},
        }
    }


def _empty_page() -> dict[str, Any]:
    return {
        "ResultSet": {
            "Rows": [{"Data": [{"VarCharValue": c["Name"]} for c in COLUMNS]}],
            "ResultSetMetadata": {"ColumnInfo": [{"Name": c["Name"], "Type": "varchar"} for c in COLUMNS]},
        }
    }


def test_throttled_start_is_retried_with_the_same_token(monkeypatch, incident, responder) -> None:
    _, stub, tokens = _stubbed_client(monkeypatch)
    stub.add_client_error("start_query_execution", "ThrottlingException", "Rate exceeded", 400)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"}, {**_any_start()})
    stub.add_response("get_query_execution", _succeeded("q-1"), {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_results", _empty_page(), {"QueryExecutionId": "q-1", "MaxResults": 1000})
    with stub:
        run = _run(_request(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW))
    stub.assert_no_pending_responses()
    assert run.status == Status.SUCCEEDED and run.attempts == 2
    assert len(tokens) == 2 and tokens[0] == tokens[1] and 32 <= len(tokens[0]) <= 128
    # 2 TB scanned at $5 per TB
    assert run.progress["bytes_scanned"] == 2 * 10**12 and run.progress["cost_usd"] == 10.0


def test_throttled_poll_resumes_without_a_second_query(monkeypatch, incident, responder) -> None:
    _, stub, tokens = _stubbed_client(monkeypatch)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-2"}, {**_any_start()})
    stub.add_client_error("get_query_execution", "ThrottlingException", "Rate exceeded", 400)
    stub.add_response("get_query_execution", _succeeded("q-2"), {"QueryExecutionId": "q-2"})
    stub.add_response("get_query_results", _empty_page(), {"QueryExecutionId": "q-2", "MaxResults": 1000})
    with stub:
        run = _run(_request(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW))
    stub.assert_no_pending_responses()
    assert run.status == Status.SUCCEEDED and len(tokens) == 1 and run.result["execution_id"] == "q-2"


def test_a_failed_athena_query_fails_the_run_with_athenas_reason(monkeypatch, incident, responder, events) -> None:
    _, stub, _ = _stubbed_client(monkeypatch)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-3"}, {**_any_start()})
    failed = {
        "QueryExecution": {
            "QueryExecutionId": "q-3",
            "Status": {
                "State": "FAILED",
                "StateChangeReason": "TABLE_NOT_FOUND: Table 'awsdatacatalog.default.cloudtrail_logs_pp' missing",
                "AthenaError": {"ErrorCategory": 2, "ErrorType": 1301, "Retryable": False},
            },
        }
    }
    stub.add_response("get_query_execution", failed, {"QueryExecutionId": "q-3"})
    with stub:
        run = _run(_request(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW))
    assert run.status == Status.FAILED
    assert "The query failed (athena q-3): TABLE_NOT_FOUND" in run.error and "[user error 1301]" in run.error
    assert "failed: The query failed (athena q-3)" in events(incident, TimelineEvent.Kind.ACTION)[-1].summary


def test_expired_credentials_fail_the_run_at_once(monkeypatch, incident, responder) -> None:
    _, stub, tokens = _stubbed_client(monkeypatch)
    stub.add_client_error("start_query_execution", "ExpiredTokenException", "The security token included expired", 400)
    with stub:
        run = _run(_request(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW))
    assert run.status == Status.FAILED and run.attempts == 1 and "ExpiredTokenException" in run.error


def _any_start() -> dict[str, Any]:
    return {
        "QueryString": ANY,
        "ClientRequestToken": ANY,
        "QueryExecutionContext": {"Database": "default", "Catalog": "AwsDataCatalog"},
        "WorkGroup": "primary",
        "ResultConfiguration": {"OutputLocation": "s3://athena-results-123456789012/watchpost/"},
        "ExecutionParameters": [
            "'2026/11/18'",
            "'2026/11/29'",
            f"'{WINDOW['since']}'",
            f"'{WINDOW['until']}'",
            f"'{ATTACKER}'",
        ],
    }


# --- EKS audit logs ---------------------------------------------------------------------------------


def _cluster(audit: bool) -> None:
    eks = boto3.client("eks", region_name="eu-west-1")
    eks.create_cluster(
        name="payments-prod",
        roleArn="arn:aws:iam::123456789012:role/eks-cluster",
        resourcesVpcConfig={"subnetIds": ["subnet-1"]},
    )
    if audit:
        eks.update_cluster_config(
            name="payments-prod", logging={"clusterLogging": [{"types": ["audit"], "enabled": True}]}
        )


def test_no_audit_log_group_shows_the_gap_instead_of_an_empty_result(moto: str, incident, responder, events) -> None:
    _cluster(audit=False)
    incident.region = "eu-west-1"
    incident.save(update_fields=["region"])
    run = _run(_request(incident, responder, template="k8s_anonymous_requests", cluster="payments-prod", **WINDOW))
    assert run.status == Status.SUCCEEDED, run.error
    assert run.result["rows"] is None and not Evidence.objects.exists()
    assert "audit logging is off for payments-prod" in run.result["coverage_gap"]
    assert run.result["summary"].startswith("Not run: Control-plane audit logging is off")
    gap = events(incident, TimelineEvent.Kind.ACTION)
    assert any(e.summary.startswith("Coverage gap: ") for e in gap)


def test_audit_logs_are_queried_and_kept_with_the_gap_before_logging_began(
    moto: str, incident, responder, events
) -> None:
    # given: audit logging on, its log group created now (after the window starts), one audit event
    _cluster(audit=True)
    logs = boto3.client("logs", region_name="eu-west-1")
    group = "/aws/eks/payments-prod/cluster"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="kube-apiserver-audit-0a1b2c")
    incident.region = "eu-west-1"
    incident.save(update_fields=["region"])
    message = '{"kind":"Event","verb":"get","user":{"username":"system:anonymous"},"requestURI":"/api"}'
    import time

    logs.put_log_events(
        logGroupName=group,
        logStreamName="kube-apiserver-audit-0a1b2c",
        logEvents=[{"timestamp": int(time.time() * 1000) - 60_000, "message": message}],
    )
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # when
    run = _run(
        _request(
            incident,
            responder,
            template="k8s_rbac_binding_changes",
            cluster="payments-prod",
            since=WINDOW["since"],
            until=now,
        )
    )
    # then: evidence with the Logs Insights provenance, and the gap on the timeline
    assert run.status == Status.SUCCEEDED, run.error
    evidence = Evidence.objects.get(pk=run.result["evidence_id"])
    assert evidence.provenance["engine"] == "logs_insights"
    assert evidence.provenance["details"]["log_groups"] == group
    assert "objectRef.apiGroup" in evidence.provenance["sql"]
    assert run.result["coverage_gap"].startswith("No Kubernetes audit history is available before ")
    assert (
        "No Kubernetes audit history is available before" in events(incident, TimelineEvent.Kind.EVIDENCE)[-1].summary
    )


def test_a_query_past_the_time_limit_is_stopped_and_the_run_fails(moto: str, incident, responder, settings) -> None:
    manual_progression(moto, 50)
    settings.WATCHPOST_QUERY_TIMEOUT_SECONDS = 0
    run = _run(_request(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW))
    assert run.status == Status.FAILED and "ran longer than 0 s and was stopped" in run.error
    execution_id = run.progress["execution_id"]
    state = boto3.client("athena").get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]
    assert state["State"] == "CANCELLED"


def test_evidence_read_from_the_result_csv_is_byte_identical(moto: str, incident, responder, settings) -> None:
    # given: the same Athena result, read once through GetQueryResults and once from the result CSV
    boto3.client("s3").create_bucket(Bucket="athena-results-123456789012")
    rows = [
        ["eventtime", "eventsource", "eventname", "awsregion"],
        ["2026-11-20T09:44:02Z", "iam.amazonaws.com", "CreateUser", None],
        ["2026-11-20T10:12:30Z", "cloudtrail.amazonaws.com", "DeleteTrail", "eu-west-1"],
    ]
    hashes = []
    for from_s3 in (False, True):
        settings.WATCHPOST_ATHENA_RESULTS_FROM_S3 = from_s3
        inject(moto, rows, COLUMNS)
        run = _run(_request(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW))
        assert run.status == Status.SUCCEEDED, run.error
        assert run.result["rows"] == 2 and run.result["flagged"] == 2
        hashes.append(run.result["sha256"])
        source = Evidence.objects.get(pk=run.result["evidence_id"]).provenance["result_source"]
        assert (
            source.startswith("s3://athena-results-123456789012/watchpost/") if from_s3 else source == "GetQueryResults"
        )
    # then
    assert hashes[0] == hashes[1]


def test_the_command_line_runs_the_same_template_on_athena(moto: str, tmp_path: Path) -> None:
    import hashlib
    import io

    from django.core.management import call_command

    inject(
        moto, [[c["Name"] for c in COLUMNS], ["2026-11-20T09:44:02Z", "iam.amazonaws.com", "CreateUser", None]], COLUMNS
    )
    out, target = io.StringIO(), tmp_path / "athena.csv"
    call_command(
        "run_query",
        "--engine",
        "athena",
        "--template",
        "source_ip_activity",
        "--param",
        f"source_ip={ATTACKER}",
        "--csv",
        str(target),
        stdout=out,
    )
    data = target.read_bytes()
    assert data == (
        b'"eventtime","eventsource","eventname","awsregion"\n"2026-11-20T09:44:02Z","iam.amazonaws.com","CreateUser",\n'
    )
    assert out.getvalue().strip() == f"source_ip_activity: 1 rows, sha256 {hashlib.sha256(data).hexdigest()}"
    (execution,) = boto3.client("athena").list_query_executions()["QueryExecutionIds"]
    sent = boto3.client("athena").get_query_execution(QueryExecutionId=execution)["QueryExecution"]
    assert sent["ExecutionParameters"][-1] == f"'{ATTACKER}'" and ATTACKER not in sent["Query"]
