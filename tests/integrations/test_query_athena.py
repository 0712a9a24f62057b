"""Athena: the API flow against moto on loopback, and what moto cannot do through botocore's Stubber.

moto never executes a query: results are injected (a FIFO queue per account and region, header row
included by us) and its state machine is stepped one tick per GetQueryExecution (DOMAIN.md §4.2).
Pagination, FAILED, throttling and the idempotency token are exercised with the Stubber, which checks
every request and response against the real service model.
"""

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from integrations.errors import PermanentIntegrationError, TransientIntegrationError
from integrations.queries.athena import AthenaConfig, AthenaEngine, sql_literal
from integrations.queries.base import QueryRequest, QueryState
from tests.integrations.query_helpers import inject, manual_progression, spec

TOKEN = "watchpost-run-7-" + "a" * 40
COLUMNS = [{"Name": "eventname", "Type": "varchar"}, {"Name": "total", "Type": "bigint"}]


def test_moto_flow_polls_through_the_states_and_reads_the_injected_rows(moto: str) -> None:
    # given: a query that stays queued, then running, for a few polls
    inject(moto, [["eventname", "total"], ["CreateUser", "1"], ["GetObject", None]])
    manual_progression(moto, 3)
    engine = AthenaEngine(AthenaConfig(output_location="s3://athena-results/watchpost/", region="us-east-1"))
    request = QueryRequest(sql="SELECT eventname, count(*) AS total FROM t WHERE x = ?", parameters=("a'b",))
    # when
    execution_id = engine.start(request, token=TOKEN)
    states = []
    while not (status := engine.status(execution_id)).state.done:
        states.append(status.state)
    result = engine.result(execution_id)
    # then
    # moto keeps each state for `times` polls; Athena itself goes QUEUED → RUNNING → SUCCEEDED.
    assert states == [QueryState.QUEUED] * states.count(QueryState.QUEUED) + [QueryState.RUNNING] * 3
    assert states.count(QueryState.QUEUED) >= 1
    assert status.state is QueryState.SUCCEEDED
    assert status.details["workgroup"] == "primary" and status.details["database"] == "default"
    assert result.columns == ("eventname", "total")
    assert list(result.rows) == [("CreateUser", "1"), ("GetObject", None)]  # header skipped once, NULL kept
    echoed = boto3.client("athena").get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert echoed["ExecutionParameters"] == ["'a''b'"]  # a quoted literal, the quote doubled
    assert echoed["Query"] == request.sql  # the value never entered the text


def test_getting_results_before_the_end_is_refused_and_stop_cancels(moto: str) -> None:
    manual_progression(moto, 5)
    engine = AthenaEngine(AthenaConfig(region="us-east-1"))
    execution_id = engine.start(QueryRequest(sql="SELECT 1"), token=TOKEN)
    assert engine.status(execution_id).state is QueryState.QUEUED
    with pytest.raises(PermanentIntegrationError, match="InvalidRequestException"):
        list(engine.result(execution_id).rows)
    engine.stop(execution_id)
    assert engine.status(execution_id).state is QueryState.CANCELLED


def test_an_unknown_workgroup_is_a_permanent_error(moto: str) -> None:
    engine = AthenaEngine(AthenaConfig(workgroup="no-such-group", region="us-east-1"))
    with pytest.raises(PermanentIntegrationError, match="StartQueryExecution"):
        engine.start(QueryRequest(sql="SELECT 1"), token=TOKEN)


def test_a_template_goes_to_athena_with_its_values_as_execution_parameters(moto: str) -> None:
    from incidents.services.queries import query_request

    query = spec("user_activity_after", engine="athena", username="x' OR '1'='1", since="2026-11-20T00:00:00Z")
    request = query_request(query)
    inject(moto, [["eventname", "total"]])
    engine = AthenaEngine(AthenaConfig(region="us-east-1"))
    execution_id = engine.start(request, token=TOKEN)
    echoed = boto3.client("athena").get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]
    assert echoed["ExecutionParameters"] == [
        "'2026/11/20'",
        "'2026/11/29'",
        "'2026-11-20T00:00:00Z'",
        "'2026-11-28T00:00:00Z'",
        "'%x'' OR ''1''=''1%'",
    ]
    assert "cloudtrail_logs_pp" in echoed["Query"] and "OR '1'" not in echoed["Query"]


# --- Stubber: what moto cannot show ---------------------------------------------------------------


def _stubbed() -> tuple[AthenaEngine, Stubber]:
    client = boto3.client("athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    return AthenaEngine(AthenaConfig(region="us-east-1"), client=client), Stubber(client)


def _page(rows: list[list[str | None]], token: str | None = None, header: bool = False) -> dict[str, Any]:
    page: dict[str, Any] = {
        "ResultSet": {
            "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
            "ResultSetMetadata": {"ColumnInfo": [{"Name": c["Name"], "Type": c["Type"]} for c in COLUMNS]},
        }
    }
    if token:
        page["NextToken"] = token
    return page


def _execution(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "QueryExecution": {
            "QueryExecutionId": "q-1",
            "StatementType": "DML",
            "Status": {"State": state, **extra.pop("status", {})},
            "Statistics": {"DataScannedInBytes": 123_456_789, "EngineExecutionTimeInMillis": 4200},
            "WorkGroup": "primary",
            "QueryExecutionContext": {"Database": "cloudtrail"},
            **extra,
        }
    }


def test_results_are_paginated_with_the_header_only_on_the_first_page() -> None:
    engine, stub = _stubbed()
    stub.add_response("get_query_execution", _execution("SUCCEEDED"), {"QueryExecutionId": "q-1"})
    stub.add_response(
        "get_query_results",
        _page([["eventname", "total"], ["CreateUser", "2"]], token="p2"),
        {"QueryExecutionId": "q-1", "MaxResults": 1000},
    )
    stub.add_response(
        "get_query_results",
        _page([["eventname", "1"], ["AttachUserPolicy", None]], token="p3"),
        {"QueryExecutionId": "q-1", "MaxResults": 1000, "NextToken": "p2"},
    )
    stub.add_response(
        "get_query_results",
        _page([["RunInstances", "7"]]),
        {"QueryExecutionId": "q-1", "MaxResults": 1000, "NextToken": "p3"},
    )
    with stub:
        status = engine.status("q-1")
        rows = list(engine.result("q-1").rows)
    stub.assert_no_pending_responses()
    assert status.bytes_scanned == 123_456_789 and status.details["database"] == "cloudtrail"
    # A later page's first row is data, even when it happens to look like the header.
    assert rows == [("CreateUser", "2"), ("eventname", "1"), ("AttachUserPolicy", None), ("RunInstances", "7")]


def test_a_failed_query_reports_athenas_reason() -> None:
    engine, stub = _stubbed()
    failed = {
        "StateChangeReason": "TABLE_NOT_FOUND: line 2:6: "
        "Table 'awsdatacatalog.default.cloudtrail_logs_pp' does not exist",
        "AthenaError": {"ErrorCategory": 2, "ErrorType": 1301, "Retryable": False},
    }
    stub.add_response("get_query_execution", _execution("FAILED", status=failed), {"QueryExecutionId": "q-1"})
    with stub:
        status = engine.status("q-1")
    assert status.state is QueryState.FAILED
    assert "cloudtrail_logs_pp' does not exist" in status.reason and "[user error 1301]" in status.reason


def test_throttling_is_transient_and_the_retry_sends_the_same_token() -> None:
    engine, stub = _stubbed()
    request = QueryRequest(sql="SELECT 1 FROM t WHERE a = ?", parameters=("AIDA",))
    expected = {
        "QueryString": request.sql,
        "ClientRequestToken": TOKEN,
        "QueryExecutionContext": {"Database": "default", "Catalog": "AwsDataCatalog"},
        "WorkGroup": "primary",
        "ExecutionParameters": ["'AIDA'"],
    }
    stub.add_client_error(
        "start_query_execution", "ThrottlingException", "Rate exceeded", 400, expected_params=expected
    )
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"}, expected)
    with stub:
        with pytest.raises(TransientIntegrationError, match="ThrottlingException"):
            engine.start(request, token=TOKEN)
        assert engine.start(request, token=TOKEN) == "q-1"
    stub.assert_no_pending_responses()


def test_too_many_queries_is_transient_and_expired_credentials_are_permanent() -> None:
    engine, stub = _stubbed()
    stub.add_client_error("get_query_execution", "TooManyRequestsException", "Too many queries", 400)
    stub.add_client_error("get_query_execution", "ExpiredTokenException", "The security token has expired", 400)
    with stub:
        with pytest.raises(TransientIntegrationError):
            engine.status("q-1")
        with pytest.raises(PermanentIntegrationError, match="ExpiredTokenException"):
            engine.status("q-1")


def test_a_short_token_and_an_oversized_query_are_refused_before_any_call() -> None:
    engine, stub = _stubbed()
    with stub:
        with pytest.raises(PermanentIntegrationError, match="ClientRequestToken"):
            engine.start(QueryRequest(sql="SELECT 1"), token="short")
        with pytest.raises(PermanentIntegrationError, match="262,144"):
            engine.start(QueryRequest(sql="SELECT 1 -- " + "x" * 262_144), token=TOKEN)


def test_sql_literal_doubles_quotes() -> None:
    assert sql_literal("O'Brien") == "'O''Brien'"
    assert sql_literal("' OR 1=1 --") == "''' OR 1=1 --'"


# Values that CSV writers get wrong: NULL and "" (Athena: an empty unquoted field vs ""), a comma, a line
# break inside a value, non-ASCII text, a value that looks like the NULL marker's neighbourhood.
TRICKY: list[list[str | None]] = [
    ["eventname", "total"],
    ["CreateUser", "1"],
    ["Tag, then delete", None],
    ["", "0"],
    [None, ""],
    ["line one\nline two", "3"],
    ["Zugriff verweigert – ü 中文 🙂", "4"],
]


def athena_csv(rows: list[list[str | None]]) -> bytes:
    """The result CSV as Athena writes it (PyAthena's AthenaCSVReader documents the same rules): every
    value quoted with quotes doubled, NULL an empty unquoted field, LF line ends, UTF-8."""
    quoted = (",".join("" if v is None else '"' + v.replace('"', '""') + '"' for v in row) + "\n" for row in rows)
    return "".join(quoted).encode("utf-8")


def _both_paths(rows: list[list[str | None]], replace_object: bytes | None = None) -> list[tuple[Any, bytes]]:
    """The same injected result read through GetQueryResults pages and from the S3 result object."""
    from integrations.queries.csvstream import csv_source

    read = []
    for from_s3 in (False, True):
        engine = AthenaEngine(
            AthenaConfig(output_location="s3://athena-results/q/", region="us-east-1", results_from_s3=from_s3)
        )
        execution_id = engine.start(QueryRequest(sql="SELECT eventname, total FROM t"), token=TOKEN)
        assert engine.status(execution_id).state is QueryState.SUCCEEDED
        if from_s3 and replace_object is not None:
            bucket, _, key = engine._locations[execution_id].removeprefix("s3://").partition("/")
            boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=replace_object)
        result = engine.result(execution_id)
        source = csv_source(result)
        read.append((result, source.read(-1)))
        source.close()
    return read


def test_page_path_bytes_equal_the_result_object_athena_wrote(moto: str) -> None:
    # given: a result bucket; moto writes the result CSV there as Athena does (quoted values, NULL bare, LF)
    boto3.client("s3").create_bucket(Bucket="athena-results")
    inject(moto, TRICKY)
    inject(moto, TRICKY)
    # when
    (pages, rendered), (from_s3, copied) = _both_paths(TRICKY)
    # then: the rendered pages are byte for byte the object, which is copied as it is
    assert rendered == copied == athena_csv(TRICKY)
    assert pages.source == "GetQueryResults" and from_s3.source.startswith("s3://athena-results/q/")
    # and read back as rows, the object keeps NULL apart from "" as the pages' Datums do
    assert list(from_s3.rows) == [tuple(row) for row in TRICKY[1:]]


def test_page_path_bytes_equal_athenas_form_for_values_with_quotes(moto: str) -> None:
    # moto 5.2.5 writes `"{value}"` without doubling a quote inside (real Athena doubles it), so here the
    # object at the result location is replaced by Athena's form of the same rows before it is read.
    boto3.client("s3").create_bucket(Bucket="athena-results")
    rows = TRICKY + [['say "hi"', '"'], ['{"a":"b,c"}', '""']]
    inject(moto, rows)
    inject(moto, rows)
    (_pages, rendered), (from_s3, copied) = _both_paths(rows, replace_object=athena_csv(rows))
    assert rendered == copied == athena_csv(rows)
    assert b'"say ""hi""",""""\n' in rendered
    assert list(from_s3.rows)[-2:] == [('say "hi"', '"'), ('{"a":"b,c"}', '""')]


def test_a_missing_result_object_is_a_permanent_error(moto: str) -> None:
    boto3.client("s3").create_bucket(Bucket="athena-results")
    inject(moto, [["eventname", "total"], ["CreateUser", "1"]])
    engine = AthenaEngine(
        AthenaConfig(output_location="s3://athena-results/q/", region="us-east-1", results_from_s3=True)
    )
    execution_id = engine.start(QueryRequest(sql="SELECT 1"), token=TOKEN)
    engine.status(execution_id)
    engine._locations[execution_id] = "s3://athena-results/q/gone.csv"  # the object expired or was removed
    with pytest.raises(PermanentIntegrationError, match="NoSuchKey"):
        list(engine.result(execution_id).rows)
