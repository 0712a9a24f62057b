"""Running a query template on an engine the way the handler does, for the engine tests."""

import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from incidents.services.queries import QuerySpec, query_request
from integrations.queries.base import QueryEngine, QueryState, Row
from integrations.queries.embedded import DuckDbConfig, DuckDbEngine
from playbooks.query_templates import library, query_params_resolve

ACCOUNT = "123456789012"
COLUMNS = [{"Name": "eventname", "Type": "varchar"}, {"Name": "total", "Type": "bigint"}]
BUNDLED = Path(__file__).resolve().parents[2] / "incidents" / "demo" / "cloudtrail"
NOW = datetime(2026, 11, 28, tzinfo=UTC)


def spec(template: str, engine: str = "duckdb", **params: str) -> QuerySpec:
    chosen = library().get(template)
    return QuerySpec(chosen, query_params_resolve(chosen, params, now=NOW), engine)


def run_to_end(engine: QueryEngine, query: QuerySpec) -> tuple[QueryState, tuple[str, ...], list[Row], str]:
    execution_id = engine.start(query_request(query), token="t" * 32)
    deadline = time.monotonic() + 60
    while not (status := engine.status(execution_id)).state.done and time.monotonic() < deadline:
        time.sleep(0.02)
    if status.state is not QueryState.SUCCEEDED:
        return status.state, (), [], status.reason
    result = engine.result(execution_id)
    return status.state, result.columns, list(result.rows), "\n".join(result.warnings)


def duckdb_rows(template: str, logs: Path = BUNDLED, **params: str) -> tuple[tuple[str, ...], list[Row]]:
    engine = DuckDbEngine(DuckDbConfig(logs_dir=str(logs)))
    try:
        state, columns, rows, reason = run_to_end(engine, spec(template, **params))
    finally:
        engine.close()
    assert state is QueryState.SUCCEEDED, reason
    return columns, rows


def inject(endpoint: str, rows: list[list[str | None]], columns: list[dict[str, str]] = COLUMNS) -> None:
    """Queue one result; the first row must be the header, as Athena's first page has it."""
    result = {
        "rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
        "column_info": [c | {"CatalogName": "hive", "Nullable": "UNKNOWN"} for c in columns],
    }
    body = {"account_id": ACCOUNT, "region": "us-east-1", "results": [result]}
    requests.post(f"{endpoint}/moto-api/static/athena/query-results", json=body, timeout=10).raise_for_status()


def manual_progression(endpoint: str, ticks: int) -> None:
    body = {"model_name": "athena::execution", "transition": {"progression": "manual", "times": ticks}}
    requests.post(f"{endpoint}/moto-api/state-manager/set-transition", json=body, timeout=10).raise_for_status()
