"""DuckDB for real over the bundled CloudTrail logs: every template's exact result, and bad input.

The logs are made by scripts/make_demo_cloudtrail.py (its docstring tells the story); the expected
rows below were checked against that story by hand, not copied from a run.
"""

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from integrations.errors import PermanentIntegrationError
from integrations.queries.base import QueryRequest, QueryState
from integrations.queries.embedded import DuckDbConfig, DuckDbEngine, log_files
from playbooks.query_templates import QueryParamError
from tests.integrations.query_helpers import BUNDLED, duckdb_rows, run_to_end, spec

NODE = "AROAQXAMPLENODEROLE01:i-0a1b2c3d4e5f60718"
NODE_ARN = "arn:aws:sts::210987654321:assumed-role/payments-prod-node-role/i-0a1b2c3d4e5f60718"
SVC = "arn:aws:iam::210987654321:user/svc-backup"
ATTACKER = "198.51.100.23"


def test_the_bundled_logs_are_what_the_generator_writes(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "make_demo_cloudtrail.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True, capture_output=True)  # noqa: S603
    generated = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    bundled = {p.relative_to(BUNDLED): p.read_bytes() for p in BUNDLED.rglob("*") if p.is_file()}
    assert generated == bundled


def test_only_cloudtrail_files_in_the_s3_layout_are_read() -> None:
    keys = [f.key for f in log_files(str(BUNDLED))]
    assert len(keys) == 29  # 28 with records, one {"Records": []}; the digest file is not among them
    assert not any("CloudTrail-Digest" in key for key in keys)
    assert {key.split("/")[3] for key in keys} == {"eu-west-1", "us-east-1"}


def test_principal_call_summary() -> None:
    columns, rows = duckdb_rows("principal_call_summary", principal_id=NODE)
    assert columns == ("eventname", "total", "eventsource", "awsregion", "errormessage")
    denied = f"User: {NODE_ARN} is not authorized to perform: secretsmanager:GetSecretValue"
    assert rows == [
        ("DescribeInstances", "8", "ec2.amazonaws.com", "eu-west-1", None),
        ("GetAuthorizationToken", "3", "ecr.amazonaws.com", "eu-west-1", None),
        ("GetObject", "3", "s3.amazonaws.com", "eu-west-1", None),
        ("AttachUserPolicy", "1", "iam.amazonaws.com", "eu-west-1", None),
        ("CreateAccessKey", "1", "iam.amazonaws.com", "eu-west-1", None),
        ("CreateUser", "1", "iam.amazonaws.com", "eu-west-1", None),
        ("GetCallerIdentity", "1", "sts.amazonaws.com", "eu-west-1", None),
        ("GetSecretValue", "1", "secretsmanager.amazonaws.com", "eu-west-1", denied),
        ("ListBuckets", "1", "s3.amazonaws.com", "eu-west-1", None),
        ("ListUsers", "1", "iam.amazonaws.com", "eu-west-1", None),
    ]


def test_principal_call_summary_respects_the_time_window() -> None:
    _, rows = duckdb_rows("principal_call_summary", principal_id=NODE, since="2026-11-20T09:00:00Z")
    # The morning's routine DescribeInstances is before the window; the 23:58 token call is inside it,
    # although CloudTrail delivered it in the next day's folder.
    assert [(r[0], r[1]) for r in rows][:3] == [("GetObject", "2"), ("AttachUserPolicy", "1"), ("CreateAccessKey", "1")]
    assert ("DescribeInstances", "1") in [(r[0], r[1]) for r in rows]  # 13:14 only
    assert ("GetAuthorizationToken", "1") in [(r[0], r[1]) for r in rows]


def test_user_activity_after_leaves_out_describe_and_list() -> None:
    columns, rows = duckdb_rows("user_activity_after", username="svc", since="2026-11-20T00:00:00Z")
    assert columns == ("eventname", "username", "sourceipaddress", "eventtime", "requestparameters")
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("GetCallerIdentity", "svc-backup", ATTACKER, "2026-11-20T10:05:00Z"),
        ("RunInstances", "svc-backup", ATTACKER, "2026-11-20T10:07:45Z"),
        ("CreateTags", "svc-backup", ATTACKER, "2026-11-20T10:08:10Z"),
        ("CreateRole", "svc-backup", ATTACKER, "2026-11-20T10:10:00Z"),
        ("AttachRolePolicy", "svc-backup", ATTACKER, "2026-11-20T10:11:00Z"),
        ("DeleteTrail", "svc-backup", ATTACKER, "2026-11-20T10:12:30Z"),
        ("GetSessionToken", "svc-backup", ATTACKER, "2026-11-20T10:20:00Z"),
        ("UpdateSecurityGroupRuleDescriptionsIngress", "svc-backup", "203.0.113.77", "2026-11-20T11:03:40Z"),
    ]
    assert json.loads(rows[1][4])["iamInstanceProfile"] == {
        "arn": "arn:aws:iam::210987654321:instance-profile/backup-admin"
    }


def test_iam_user_query_uses_and_and_matches_assumed_roles_by_session_issuer() -> None:
    # The seed's OR version would have returned DescribeInstances and ListBuckets too (DOMAIN.md §3.5).
    columns, rows = duckdb_rows(
        "iam_user_activity_after", username="payments-prod-node-role", since="2026-11-20T09:00:00Z"
    )
    assert columns == ("eventname", "username", "identitytype", "sourceipaddress", "eventtime", "requestparameters")
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        ("GetCallerIdentity", "AssumedRole", ATTACKER, "2026-11-20T09:40:12Z"),
        ("GetObject", "AssumedRole", ATTACKER, "2026-11-20T09:42:30Z"),
        ("GetObject", "AssumedRole", ATTACKER, "2026-11-20T09:42:58Z"),
        ("CreateUser", "AssumedRole", ATTACKER, "2026-11-20T09:44:02Z"),
        ("AttachUserPolicy", "AssumedRole", ATTACKER, "2026-11-20T09:44:40Z"),
        ("CreateAccessKey", "AssumedRole", ATTACKER, "2026-11-20T09:45:15Z"),
        ("GetSecretValue", "AssumedRole", ATTACKER, "2026-11-20T09:46:01Z"),
        ("GetAuthorizationToken", "AssumedRole", "10.20.31.14", "2026-11-20T23:58:00Z"),
    ]
    assert {r[1] for r in rows} == {"payments-prod-node-role"}
    _, alice = duckdb_rows("iam_user_activity_after", username="alice", since="2026-11-21T00:00:00Z")
    assert [r[0] for r in alice] == ["UpdateAccessKey", "DetachUserPolicy", "TerminateInstances", "UpdateClusterConfig"]


def test_sensitive_actions_after() -> None:
    columns, rows = duckdb_rows(
        "sensitive_actions_after", principal_id="AIDAQXAMPLESVCBACKUP1", since="2026-11-20T09:00:00Z"
    )
    assert columns == (
        "eventtime",
        "eventsource",
        "eventname",
        "awsregion",
        "sourceipaddress",
        "arn",
        "errorcode",
        "instanceprofile",
        "requestparameters",
    )
    assert [(r[0], r[2], r[3], r[6], r[7]) for r in rows] == [
        ("2026-11-20T10:07:10Z", "DescribeImages", "us-east-1", None, None),
        (
            "2026-11-20T10:07:45Z",
            "RunInstances",
            "us-east-1",
            None,
            "arn:aws:iam::210987654321:instance-profile/backup-admin",
        ),
        ("2026-11-20T10:08:10Z", "CreateTags", "us-east-1", None, None),
        ("2026-11-20T10:10:00Z", "CreateRole", "eu-west-1", None, None),
        ("2026-11-20T10:11:00Z", "AttachRolePolicy", "eu-west-1", None, None),
        ("2026-11-20T10:12:30Z", "DeleteTrail", "eu-west-1", "AccessDenied", None),
        ("2026-11-20T10:20:00Z", "GetSessionToken", "eu-west-1", None, None),
        ("2026-11-20T11:03:40Z", "UpdateSecurityGroupRuleDescriptionsIngress", "us-east-1", None, None),
    ]
    assert {r[5] for r in rows} == {SVC}


def test_sensitive_actions_of_a_whole_role_match_every_session_through_the_issuer() -> None:
    _, rows = duckdb_rows("sensitive_actions_after", principal_id="AROAQXAMPLENODEROLE01", since="2026-11-18T00:00:00Z")
    assert [r[2] for r in rows] == [
        "GetAuthorizationToken",
        "GetAuthorizationToken",
        "CreateUser",
        "AttachUserPolicy",
        "CreateAccessKey",
        "GetAuthorizationToken",
    ]


def test_source_ip_activity() -> None:
    columns, rows = duckdb_rows("source_ip_activity", source_ip=ATTACKER)
    assert columns == (
        "eventtime",
        "eventsource",
        "eventname",
        "awsregion",
        "identitytype",
        "arn",
        "principalid",
        "errorcode",
        "useragent",
    )
    assert [(r[0], r[2], r[4], r[7]) for r in rows] == [
        ("2026-11-20T09:40:12Z", "GetCallerIdentity", "AssumedRole", None),
        ("2026-11-20T09:41:05Z", "ListBuckets", "AssumedRole", None),
        ("2026-11-20T09:42:30Z", "GetObject", "AssumedRole", None),
        ("2026-11-20T09:42:58Z", "GetObject", "AssumedRole", None),
        ("2026-11-20T09:43:10Z", "ListUsers", "AssumedRole", None),
        ("2026-11-20T09:44:02Z", "CreateUser", "AssumedRole", None),
        ("2026-11-20T09:44:40Z", "AttachUserPolicy", "AssumedRole", None),
        ("2026-11-20T09:45:15Z", "CreateAccessKey", "AssumedRole", None),
        ("2026-11-20T09:46:01Z", "GetSecretValue", "AssumedRole", "AccessDenied"),
        ("2026-11-20T10:05:00Z", "GetCallerIdentity", "IAMUser", None),
        ("2026-11-20T10:06:30Z", "DescribeInstances", "IAMUser", None),
        ("2026-11-20T10:07:10Z", "DescribeImages", "IAMUser", None),
        ("2026-11-20T10:07:45Z", "RunInstances", "IAMUser", None),
        ("2026-11-20T10:08:10Z", "CreateTags", "IAMUser", None),
        ("2026-11-20T10:10:00Z", "CreateRole", "IAMUser", None),
        ("2026-11-20T10:11:00Z", "AttachRolePolicy", "IAMUser", None),
        ("2026-11-20T10:12:30Z", "DeleteTrail", "IAMUser", "AccessDenied"),
        ("2026-11-20T10:20:00Z", "GetSessionToken", "IAMUser", None),
    ]
    assert {r[6] for r in rows} == {NODE, "AIDAQXAMPLESVCBACKUP1"}


def test_other_callers_are_in_the_logs_too() -> None:
    # Root sign-in (us-east-1) and an AWS service calling from its own name, as CloudTrail records them.
    _, root = duckdb_rows("principal_call_summary", principal_id="210987654321")
    assert root == [("ConsoleLogin", "1", "signin.amazonaws.com", "us-east-1", None)]
    _, eks = duckdb_rows("source_ip_activity", source_ip="10.20.31.14", since="2026-11-18T00:00:00Z")
    assert len(eks) == 12 and {r[4] for r in eks} == {"AssumedRole"}


def test_setup_query_reports_what_the_view_covers() -> None:
    columns, rows = duckdb_rows("create_cloudtrail_table")
    assert columns == ("records", "files", "first_delivery", "last_delivery")
    assert rows == [("48", "28", "2026/11/18", "2026/11/21")]


@pytest.mark.parametrize(
    "username",
    ["x' OR '1'='1", "svc'; DROP TABLE cloudtrail_logs; --", "%", "_", "\\"],
)
def test_injection_strings_are_values_not_sql(username: str) -> None:
    # Bound as values: no row has these characters in its user name, so nothing matches, and the
    # LIKE wildcards the user typed are escaped rather than matching everyone.
    _, rows = duckdb_rows("user_activity_after", username=username, since="2026-11-18T00:00:00Z")
    assert rows == []
    _, rows = duckdb_rows("iam_user_activity_after", username=username, since="2026-11-18T00:00:00Z")
    assert rows == []


def test_a_principal_id_that_is_not_one_is_refused_before_any_query() -> None:
    with pytest.raises(QueryParamError, match="Principal id"):
        spec("principal_call_summary", principal_id="AROA' OR 1=1 --")


def _copy_logs(tmp_path: Path) -> Path:
    target = tmp_path / "logs"
    shutil.copytree(BUNDLED, target)
    return target


def _day_folder(root: Path) -> Path:
    return root / "AWSLogs/210987654321/CloudTrail/eu-west-1/2026/11/20"


def test_a_malformed_file_is_reported_by_name_and_skipped(tmp_path: Path) -> None:
    logs = _copy_logs(tmp_path)
    bad = "210987654321_CloudTrail_eu-west-1_20261120T2355Z_BADBADBADBADBAD1.json.gz"
    (_day_folder(logs) / bad).write_bytes(gzip.compress(b'{"Records": [{"eventName": '))
    notgz = "210987654321_CloudTrail_eu-west-1_20261120T2356Z_NOTGZNOTGZNOTGZ1.json.gz"
    (_day_folder(logs) / notgz).write_bytes(b"not gzip at all")
    engine = DuckDbEngine(DuckDbConfig(logs_dir=str(logs)))
    try:
        state, _, rows, warnings = run_to_end(engine, spec("source_ip_activity", source_ip=ATTACKER))
    finally:
        engine.close()
    assert state is QueryState.SUCCEEDED and len(rows) == 18  # the good files still answer
    assert bad in warnings and "Malformed JSON" in warnings
    assert notgz in warnings and "GZIP" in warnings


def test_a_file_over_the_size_limit_is_skipped_and_named(tmp_path: Path) -> None:
    logs = _copy_logs(tmp_path)
    engine = DuckDbEngine(DuckDbConfig(logs_dir=str(logs), max_object_bytes=3000))
    try:
        state, _, rows, warnings = run_to_end(engine, spec("create_cloudtrail_table"))
    finally:
        engine.close()
    assert state is QueryState.SUCCEEDED
    big = [f for f in log_files(str(logs)) if f.uncompressed > 3000]
    assert big and all(f.key in warnings for f in big)
    assert "over the limit of 3000" in warnings
    assert int(rows[0][0]) < 48


def test_an_empty_directory_is_a_clear_error(tmp_path: Path) -> None:
    engine = DuckDbEngine(DuckDbConfig(logs_dir=str(tmp_path)))
    with pytest.raises(PermanentIntegrationError, match="no CloudTrail files"):
        engine.start(QueryRequest(sql="SELECT 1"), token="t" * 32)


def test_a_running_query_can_be_stopped() -> None:
    engine = DuckDbEngine(DuckDbConfig(logs_dir=str(BUNDLED)))
    try:
        slow = "SELECT count(*) FROM range(200000000) a, range(1000) b WHERE a.range * b.range % 7 = 3"
        execution_id = engine.start(QueryRequest(sql=slow), token="t" * 32)
        running = engine.status(execution_id)
        assert running.state is QueryState.RUNNING
        assert running.percent is None or 0 <= running.percent <= 100
        engine.stop(execution_id)
        status = engine.status(execution_id)
    finally:
        engine.close()
    assert status.state is QueryState.CANCELLED


def test_a_query_error_fails_with_duckdbs_message() -> None:
    engine = DuckDbEngine(DuckDbConfig(logs_dir=str(BUNDLED)))
    try:
        state, _, _, reason = run_to_end(engine, spec("source_ip_activity", source_ip=ATTACKER))
        assert state is QueryState.SUCCEEDED
        execution_id = engine.start(QueryRequest(sql="SELECT nosuchcolumn FROM cloudtrail_logs"), token="t" * 32)
        status = engine.wait(execution_id, timeout=30)
    finally:
        engine.close()
    assert status.state is QueryState.FAILED and "nosuchcolumn" in status.reason
