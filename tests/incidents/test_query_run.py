"""query.run on the embedded DuckDB engine, through the real task: evidence, provenance, flags, re-run.

The run goes through `playbooks.tasks.action_run_task` (claim → handler → outcome) on PostgreSQL,
and DuckDB reads the bundled CloudTrail logs for real.
"""

import gzip
import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

from incidents.models import CustodyEvent, Evidence, TimelineEvent
from incidents.services.queries import query_prefill
from playbooks import actions
from playbooks.models import ActionRun
from playbooks.tasks import action_run_task
from tests.integrations.query_helpers import BUNDLED

pytestmark = pytest.mark.django_db
Status = ActionRun.Status
ATTACKER = "198.51.100.23"
WINDOW = {"since": "2026-11-18T00:00:00Z", "until": "2026-11-28T00:00:00Z"}
# source_ip_activity for the attacker: 18 calls, of which these 10 are on the seed's sensitive list.
SENSITIVE = [
    "CreateUser",
    "AttachUserPolicy",
    "CreateAccessKey",
    "DescribeImages",
    "RunInstances",
    "CreateTags",
    "CreateRole",
    "AttachRolePolicy",
    "DeleteTrail",
    "GetSessionToken",
]


@pytest.fixture(autouse=True)
def query_settings(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.WATCHPOST_QUERY_ENGINE = "duckdb"
    settings.WATCHPOST_CLOUDTRAIL_DIR = BUNDLED
    settings.WATCHPOST_QUERY_PREVIEW_ROWS = 25


def _run(incident, actor, parent: ActionRun | None = None, **params: str) -> ActionRun:  # type: ignore[no-untyped-def]
    run = actions.action_run_request(
        incident_id=incident.pk,
        action="query.run",
        actor=actor,
        params=params,
        parent_id=parent.pk if parent else None,
    )
    action_run_task.apply(args=[run.pk])
    run.refresh_from_db()
    return run


def test_a_query_result_becomes_hashed_evidence_with_its_provenance(incident, responder, events) -> None:
    # when
    run = _run(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW)
    # then: the run
    assert run.status == Status.SUCCEEDED, run.error
    assert run.result["rows"] == 18 and run.result["flagged"] == len(SENSITIVE)
    assert run.result["summary"].startswith("18 rows, 10 sensitive, SHA-256 ")
    # the evidence: the stored bytes hash to what was recorded, and to what the command line gives
    evidence = Evidence.objects.get(pk=run.result["evidence_id"])
    stored = Path(evidence.file.path).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == evidence.sha256 == run.result["sha256"]
    assert evidence.size == len(stored) and evidence.content_type == "text/csv"
    assert stored.splitlines()[0] == (
        b'"eventtime","eventsource","eventname","awsregion","identitytype","arn","principalid","errorcode","useragent"'
    )
    assert len(stored.splitlines()) == 19
    out = io.StringIO()
    params = [f"source_ip={ATTACKER}", f"since={WINDOW['since']}", f"until={WINDOW['until']}"]
    call_command(
        "run_query", "--template", "source_ip_activity", *sum((["--param", p] for p in params), []), stdout=out
    )
    assert out.getvalue().strip() == f"source_ip_activity: 18 rows, sha256 {evidence.sha256}"
    # provenance on the evidence record
    p = evidence.provenance
    assert p["engine"] == "duckdb" and p["template"] == "source_ip_activity"
    assert p["parameters"] == {"source_ip": ATTACKER, **WINDOW}
    assert p["bound_values"] == ["2026/11/18", "2026/11/29", WINDOW["since"], WINDOW["until"], ATTACKER]
    assert "sourceipaddress = ?" in p["sql"] and ATTACKER not in p["sql"]
    assert p["execution_id"] == run.result["execution_id"] and p["table"] == "cloudtrail_logs"
    assert p["window"] == WINDOW and p["rows"] == 18 and p["sha256"] == evidence.sha256
    assert p["run"] == run.pk and p["run_by"] == "responder" and p["bytes_scanned"] > 0
    assert [e.action for e in evidence.custody.all()] == [CustodyEvent.Action.ACQUIRED]
    # the timeline: the summary with top events, principals and addresses
    summary = events(incident, TimelineEvent.Kind.EVIDENCE)[-1]
    assert summary.summary.startswith(
        "Query source_ip_activity (duckdb): 18 rows, 10 sensitive. top events: GetCallerIdentity ×2"
    )
    assert summary.data["flagged"] == 10 and summary.data["evidence"] == evidence.pk
    assert summary.data["top"]["principals"] == [
        ["arn:aws:sts::210987654321:assumed-role/payments-prod-node-role/i-0a1b2c3d4e5f60718", 9],
        ["arn:aws:iam::210987654321:user/svc-backup", 9],
    ]
    assert summary.data["top"]["errors"] == [["AccessDenied", 2]]
    # the preview marks exactly the sensitive calls
    flagged = [row["cells"][2] for row in run.result["preview"] if row["flagged"]]
    assert flagged == SENSITIVE


def test_principal_summary_counts_sensitive_calls_not_rows(incident, responder) -> None:
    run = _run(
        incident,
        responder,
        template="principal_call_summary",
        principal_id="AROAQXAMPLENODEROLE01:i-0a1b2c3d4e5f60718",
        **WINDOW,
    )
    assert run.status == Status.SUCCEEDED, run.error
    # GetAuthorizationToken ×3 (Get*Token), CreateUser, AttachUserPolicy, CreateAccessKey
    assert run.result["rows"] == 10 and run.result["flagged"] == 6


def test_rerun_to_verify_matches_and_is_logged_on_the_original_evidence(incident, responder, events) -> None:
    first = _run(
        incident, responder, template="sensitive_actions_after", principal_id="AIDAQXAMPLESVCBACKUP1", **WINDOW
    )
    # when: re-run, naming only the parent
    second = _run(incident, responder, parent=first)
    # then
    assert second.status == Status.SUCCEEDED, second.error
    assert second.result["values"] == first.result["values"]
    assert second.result["verification"] == {
        "parent": first.pk,
        "expected": first.result["sha256"],
        "observed": first.result["sha256"],
        "match": True,
    }
    original = Evidence.objects.get(pk=first.result["evidence_id"])
    verified = original.custody.get(action=CustodyEvent.Action.VERIFIED)
    assert verified.detail == f"re-run #{second.pk} reproduced the result" and verified.sha256 == original.sha256
    assert f"Re-run of query run #{first.pk}: result hash" in events(incident, TimelineEvent.Kind.EVIDENCE)[-1].summary
    assert Evidence.objects.get(pk=second.result["evidence_id"]).provenance["verifies_run"] == first.pk


def test_rerun_after_new_logs_arrived_reports_a_different_hash(incident, responder, settings, tmp_path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(BUNDLED, logs)
    settings.WATCHPOST_CLOUDTRAIL_DIR = logs
    first = _run(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW)
    # given: a late delivery with one more call from the address
    late = {
        "Records": [{"eventTime": "2026-11-20T12:00:00Z", "eventName": "PutBucketPolicy", "sourceIPAddress": ATTACKER}]
    }
    folder = logs / "AWSLogs/210987654321/CloudTrail/eu-west-1/2026/11/22"
    folder.mkdir(parents=True)
    (folder / "210987654321_CloudTrail_eu-west-1_20261122T0005Z_LATELATELATELATE.json.gz").write_bytes(
        gzip.compress(json.dumps(late).encode())
    )
    second = _run(incident, responder, parent=first)
    assert second.status == Status.SUCCEEDED
    assert second.result["rows"] == 19 and second.result["verification"]["match"] is False
    assert "re-run DIFFERS" in second.result["summary"]
    assert not Evidence.objects.get(pk=first.result["evidence_id"]).custody.filter(action="verified").exists()


@pytest.mark.parametrize("username", ["x' OR '1'='1", "'; DROP TABLE incidents_incident; --", "%"])
def test_injection_strings_in_parameters_are_values(incident, responder, username: str) -> None:
    run = _run(incident, responder, template="user_activity_after", username=username, **WINDOW)
    assert run.status == Status.SUCCEEDED and run.result["rows"] == 0
    assert Evidence.objects.get(pk=run.result["evidence_id"]).provenance["parameters"]["username"] == username


def test_a_bad_parameter_fails_the_run_with_the_reason(incident, responder) -> None:
    run = _run(incident, responder, template="principal_call_summary", principal_id="AROA' OR 1=1 --")
    assert run.status == Status.FAILED and "Principal id" in run.error
    assert not Evidence.objects.exists()
    unknown = _run(incident, responder, template="drop_everything")
    assert unknown.status == Status.FAILED and "Unknown query template" in unknown.error


def test_unreadable_logs_fail_the_run_with_a_clear_message(incident, responder, settings, tmp_path, events) -> None:
    folder = tmp_path / "logs/AWSLogs/210987654321/CloudTrail/eu-west-1/2026/11/20"
    folder.mkdir(parents=True)
    (folder / "210987654321_CloudTrail_eu-west-1_20261120T1005Z_BROKENBROKENBROK.json.gz").write_bytes(b"\x1f\x8bnope")
    settings.WATCHPOST_CLOUDTRAIL_DIR = tmp_path / "logs"
    run = _run(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW)
    assert run.status == Status.FAILED
    assert "The query failed (duckdb" in run.error and "every CloudTrail file was unreadable" in run.error
    assert "failed" in events(incident, TimelineEvent.Kind.ACTION)[-1].summary


def test_a_skipped_file_is_named_on_the_run(incident, responder, settings, tmp_path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(BUNDLED, logs)
    bad = "210987654321_CloudTrail_eu-west-1_20261120T2355Z_BADBADBADBADBAD1.json.gz"
    (logs / "AWSLogs/210987654321/CloudTrail/eu-west-1/2026/11/20" / bad).write_bytes(gzip.compress(b"{"))
    settings.WATCHPOST_CLOUDTRAIL_DIR = logs
    run = _run(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW)
    assert run.status == Status.SUCCEEDED and run.result["rows"] == 18
    assert len(run.result["warnings"]) == 1 and bad in run.result["warnings"][0]
    assert run.result["summary"].endswith("· 1 file(s) skipped")


def test_progress_is_published_while_running(incident, responder) -> None:
    run = _run(incident, responder, template="create_cloudtrail_table")
    assert run.status == Status.SUCCEEDED
    assert run.progress["state"] == "SUCCEEDED" and run.progress["engine"] == "duckdb"
    assert run.progress["template"] == "create_cloudtrail_table" and run.progress["bytes_scanned"] > 0
    assert run.progress["cost_usd"] == 0  # only Athena bills per byte
    assert run.result["rows"] == 1 and run.result["preview"][0]["cells"] == ["48", "28", "2026/11/18", "2026/11/21"]


def test_prefill_comes_from_the_case(incident) -> None:
    from incidents.models import Observable

    Observable.objects.create(kind="ip", value=ATTACKER).incidents.add(incident)
    incident.cluster_name = "payments-prod"
    prefill = query_prefill(incident=incident)
    assert prefill["source_ip"] == ATTACKER and prefill["cluster"] == "payments-prod"
    assert prefill["since"] < prefill["until"]


@pytest.mark.django_db(transaction=True)
def test_rerun_outside_a_test_transaction_logs_custody_as_the_worker_does(role_groups, incident, responder) -> None:
    # The worker runs in autocommit, not inside a test's transaction: the custody row, its chain and the
    # timeline row must still be written (and committed) by the service itself.
    first = _run(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW)
    second = _run(incident, responder, parent=first)
    assert second.status == Status.SUCCEEDED, second.error
    assert second.result["verification"]["match"] is True
    assert Evidence.objects.get(pk=first.result["evidence_id"]).custody.filter(action="verified").count() == 1


def test_a_window_older_than_the_logs_says_so_on_the_case(incident, responder, events) -> None:
    run = _run(incident, responder, template="source_ip_activity", source_ip=ATTACKER, since="2026-08-01T00:00:00Z")
    assert run.result["coverage_gap"] == "No CloudTrail history is available before 2026-11-18 (the oldest file read)."
    assert run.result["coverage_gap"] in events(incident, TimelineEvent.Kind.EVIDENCE)[-1].summary
    inside = _run(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW)
    assert inside.result["coverage_gap"] == ""


def _summary(tmp_path: Path, columns: tuple[str, ...], rows: list[tuple[str | None, ...]], sensitive: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """The analysis pass the service runs, over rows stored in the evidence CSV form."""
    from incidents.services.query_summary import summarize_csv
    from integrations.queries.csvstream import CsvStream, csv_write

    path = str(tmp_path / "result.csv")
    csv_write(path, CsvStream(columns, iter(rows)))
    return summarize_csv(path, columns, preview_size=5, sensitive=sensitive)


def test_summary_of_audit_rows_counts_only_failed_http_statuses_as_errors(tmp_path: Path) -> None:
    columns = ("@timestamp", "user.username", "requestURI", "sourceIPs.0", "responseStatus.code")
    rows = [
        ("2026-11-20 09:02:41.000", "system:anonymous", "/api", ATTACKER, code)
        for code in ("200", "403", "200", "401", None)
    ]
    summary = _summary(tmp_path, columns, rows, ())
    top = summary.top()
    assert top["errors"] == [("403", 1), ("401", 1)] and summary.errors == 2
    assert top["principals"] == [("system:anonymous", 5)] and top["source_ips"] == [(ATTACKER, 5)]
    assert top["events"] == [("/api", 5)] and summary.flagged == 0 and summary.rows == 5


def test_summary_weighs_by_total_and_keeps_nulls_and_ties_in_order(tmp_path: Path) -> None:
    # an aggregated result: each row stands for `total` calls; a non-numeric or NULL total counts once
    columns = ("eventname", "arn", "total")
    rows = [
        ("GetObject", "arn:b", "2"),
        ("CreateUser", "arn:a", "3"),
        ("DeleteTrail", None, "x"),
        ("CreateRole", "", None),
        ("ListBuckets", "arn:a", "2"),
    ]
    summary = _summary(tmp_path, columns, rows, ("Create*", "Delete*"))
    assert summary.rows == 5 and summary.flagged == 3 + 1 + 1
    # GetObject and ListBuckets tie at 2: the one seen first comes first, as Counter.most_common had it
    assert summary.top()["events"] == [
        ("CreateUser", 3),
        ("GetObject", 2),
        ("ListBuckets", 2),
        ("DeleteTrail", 1),
        ("CreateRole", 1),
    ]
    assert summary.top()["principals"] == [("arn:a", 5), ("arn:b", 2)]
    # the preview keeps NULL apart from the empty string, and marks the sensitive rows
    assert [row["cells"][1] for row in summary.preview] == ["arn:b", "arn:a", None, "", "arn:a"]
    assert [row["flagged"] for row in summary.preview] == [False, True, True, True, False]


def test_top_values_are_counted_over_every_row_for_the_candidates_of_the_sample(tmp_path: Path, monkeypatch) -> None:
    from incidents.services import query_summary

    # candidates: the 6 most frequent values of the first 10 rows (all tied, so the first 6 seen)
    monkeypatch.setattr(query_summary, "SAMPLE_ROWS", 10)
    monkeypatch.setattr(query_summary, "CANDIDATES", 6)
    principals = [f"a{i}" for i in range(10)] + ["a0"] * 5 + ["a1"] * 4 + ["late"] * 9
    summary = _summary(tmp_path, ("eventname", "arn"), [("GetObject", p) for p in principals], ())
    # counted over all 28 rows; the 4 non-candidates of the sample and "late" (first seen after it) are
    # left out, and do not push a candidate out of the top 5 either
    assert summary.rows == 28
    assert summary.top()["principals"] == [("a0", 6), ("a1", 5), ("a2", 1), ("a3", 1), ("a4", 1)]


def test_the_preview_cuts_long_cells_but_the_evidence_keeps_them(tmp_path: Path) -> None:
    from incidents.services.query_summary import PREVIEW_CELL

    summary = _summary(tmp_path, ("eventname", "requestparameters"), [("CreateRole", "x" * 5000)], ("Create*",))
    (row,) = summary.preview
    assert row["flagged"] and len(row["cells"][1]) == PREVIEW_CELL and row["cells"][1].endswith("…")
    assert len((tmp_path / "result.csv").read_bytes()) > 5000


def test_a_nul_from_the_logs_is_shown_as_a_replacement_character_and_kept_in_the_evidence(tmp_path: Path) -> None:
    # CloudTrail copies request text into its records; the run's jsonb cannot hold a NUL (a DataError)
    summary = _summary(tmp_path, ("eventname", "arn"), [("GetObject", "arn:a\x00"), ("GetObject", "arn:a\ufffd")], ())
    assert [row["cells"][1] for row in summary.preview] == ["arn:a\ufffd", "arn:a\ufffd"]
    assert summary.top()["principals"] == [("arn:a\ufffd", 2)]  # the two now read alike: counted together
    assert b"arn:a\x00" in (tmp_path / "result.csv").read_bytes()


def test_the_evidence_bundle_carries_the_query_provenance(incident, responder, manager) -> None:
    import zipfile

    from incidents.services.bundle import evidence_bundle_export

    run = _run(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW)
    out = io.BytesIO()
    evidence_bundle_export(incident_id=incident.pk, actor=manager, out=out, source_address=None)
    archive = zipfile.ZipFile(io.BytesIO(out.getvalue()))
    provenance = json.loads(archive.read("provenance.json"))
    entry = provenance[str(run.result["evidence_id"])]
    assert entry["sha256"] == run.result["sha256"] and entry["template"] == "source_ip_activity"
    assert entry["parameters"]["source_ip"] == ATTACKER and "sourceipaddress = ?" in entry["sql"]


def test_the_query_time_limit_ends_before_the_task_is_killed(settings) -> None:
    # A poll past the Celery soft limit would be killed mid-stream, leaving the run to the sweep.
    assert settings.WATCHPOST_QUERY_TIMEOUT_SECONDS + 60 <= settings.CELERY_TASK_SOFT_TIME_LIMIT


def test_a_run_without_a_result_cannot_be_verified(incident, responder) -> None:
    failed = _run(incident, responder, template="source_ip_activity", source_ip="not-an-ip")
    assert failed.status == Status.FAILED
    rerun = _run(incident, responder, parent=failed)
    assert rerun.status == Status.FAILED and rerun.error == f"Run #{failed.pk} has no result to verify."


def test_evidence_storage_that_is_not_a_local_disk_is_analysed_from_a_spooled_copy(
    incident, responder, settings
) -> None:
    # given: evidence kept by a storage with no local files (as django-storages' S3 is)
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    # when
    run = _run(incident, responder, template="source_ip_activity", source_ip=ATTACKER, **WINDOW)
    # then: the same analysis as on a local disk, and the stored bytes hash to the recorded value
    assert run.status == Status.SUCCEEDED, run.error
    assert run.result["rows"] == 18 and run.result["flagged"] == len(SENSITIVE)
    evidence = Evidence.objects.get(pk=run.result["evidence_id"])
    with evidence.file.storage.open(evidence.file.name, "rb") as stored:
        data = stored.read()
    assert (
        hashlib.sha256(data).hexdigest() == evidence.sha256
        and not Path(evidence.file.storage.path(evidence.file.name)).exists()
    )
