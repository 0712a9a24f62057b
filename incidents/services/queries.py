"""`query.run`: run an investigation query template and keep its result as evidence.

The handler (`query_run`, called by `playbooks.tasks.action_run_task`) resolves the template and its
parameters, checks coverage (is there any history to search), starts the query on the configured
engine, polls it with backoff while publishing progress and honouring cancel, then stores the result
as a CSV evidence file hashed while written (`csvstream`: Athena's result object is copied byte for
byte; rows from GetQueryResults pages, DuckDB or Logs Insights are rendered in the same form), with the
query's provenance on the evidence record. A second pass over the stored file (`query_summary`) flags
and counts rows whose eventName is on the seed's sensitive-actions list and finds the top values and
the preview; a short summary goes on the timeline. A run whose `parent` is an earlier query run
re-runs it to verify the hash, which works across engines' paths because the bytes are the same.
"""

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import transaction
from django.utils import timezone

from incidents import timeline
from incidents.errors import ValidationError
from incidents.models import CustodyEvent, Evidence, Incident
from incidents.services.evidence import _custody, evidence_acquire
from incidents.services.query_summary import ResultSummary, summarize_csv
from integrations.aws.logs import AuditCoverage, LogsInsightsEngine, audit_coverage, audit_log_group
from integrations.errors import PermanentIntegrationError
from integrations.queries import athena, embedded
from integrations.queries.base import QueryEngine, QueryRequest, QueryResult, QueryState, QueryStatus
from integrations.queries.csvstream import SpoolingReader, csv_source
from playbooks.actions import action_run_progress
from playbooks.models import ActionRun
from playbooks.query_templates import (
    DEFAULT_WINDOW,
    QueryParamError,
    QueryTemplate,
    bind_values,
    library,
    query_params_resolve,
    query_sql,
)

ATHENA_MINIMUM_BYTES = 10 * 1024 * 1024  # Athena bills at least 10 MB per query


@dataclass(frozen=True)
class QuerySpec:
    """Everything that decides a query's result: the same spec over the same logs gives the same hash."""

    template: QueryTemplate
    values: dict[str, str]
    engine: str  # duckdb | athena | logs_insights


# --- building the query -----------------------------------------------------------------------------


def engine_name_for(template: QueryTemplate) -> str:
    if template.source == "eks_audit":
        return "logs_insights"
    name = settings.WATCHPOST_QUERY_ENGINE
    if name not in ("duckdb", "athena"):
        raise PermanentIntegrationError(f"WATCHPOST_QUERY_ENGINE must be duckdb or athena, not {name!r}.")
    return str(name)


def query_request(spec: QuerySpec) -> QueryRequest:
    if spec.template.source == "eks_audit":
        return QueryRequest(
            sql=spec.template.sql.strip(),
            window_start=_epoch(spec.values["since"]),
            window_end=_epoch(spec.values["until"]),
            log_groups=(audit_log_group(spec.values["cluster"]),),
        )
    table = settings.WATCHPOST_ATHENA_TABLE if spec.engine == "athena" else embedded.VIEW
    sql = query_sql(
        spec.template,
        engine=spec.engine,
        table=table,
        sensitive=library().sensitive_actions,
        location=settings.WATCHPOST_CLOUDTRAIL_S3_LOCATION,
        range_start=settings.WATCHPOST_CLOUDTRAIL_PROJECTION_START,
    )
    return QueryRequest(sql=sql, parameters=bind_values(spec.template, spec.values))


def _epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


def engine_build(name: str, *, region: str = "") -> QueryEngine:
    if name == "duckdb":
        return embedded.DuckDbEngine(
            embedded.DuckDbConfig(
                logs_dir=str(settings.WATCHPOST_CLOUDTRAIL_DIR),
                max_object_bytes=settings.WATCHPOST_DUCKDB_MAX_OBJECT_BYTES,
                memory_limit=settings.WATCHPOST_DUCKDB_MEMORY_LIMIT,
            )
        )
    if name == "athena":
        return athena.AthenaEngine(
            athena.AthenaConfig(
                workgroup=settings.WATCHPOST_ATHENA_WORKGROUP,
                database=settings.WATCHPOST_ATHENA_DATABASE,
                catalog=settings.WATCHPOST_ATHENA_CATALOG,
                output_location=settings.WATCHPOST_ATHENA_OUTPUT_LOCATION,
                expected_bucket_owner=settings.WATCHPOST_ATHENA_EXPECTED_BUCKET_OWNER,
                region=settings.WATCHPOST_ATHENA_REGION or None,
                results_from_s3=settings.WATCHPOST_ATHENA_RESULTS_FROM_S3,
            )
        )
    return LogsInsightsEngine(region=region or settings.WATCHPOST_EKS_LOGS_REGION or None)


def query_spec_from_params(*, params: dict[str, Any], now: datetime) -> QuerySpec:
    """The responder's form (template name + text values) → a checked spec with absolute times."""
    try:
        template = library().get(str(params.get("template", "")))
        raw = {k: str(v) for k, v in params.items() if k in template.params or k in ("since", "until")}
        values = query_params_resolve(template, raw, now=now)
    except QueryParamError as exc:
        raise ValidationError(str(exc)) from exc
    return QuerySpec(template=template, values=values, engine=engine_name_for(template))


def query_prefill(*, incident: Incident, now: datetime | None = None) -> dict[str, str]:
    """Form defaults from the case: the finding's source IP, the cluster, and the seed's 90 days, counted
    back from when the activity was first seen (a case worked weeks later still covers the lead-up)."""
    now = now or timezone.now()
    ip = incident.observables.filter(kind="ip").order_by("value").values_list("value", flat=True).first()
    until = now.astimezone(UTC)
    since = min(until, incident.detected_at.astimezone(UTC)) - DEFAULT_WINDOW
    return {
        "source_ip": ip or "",
        "cluster": incident.cluster_name,
        "since": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "until": until.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "principal_id": "",
        "username": "",
    }


# --- running ----------------------------------------------------------------------------------------


def _token(run: ActionRun, request: QueryRequest) -> str:
    # ClientRequestToken: the same run and query always send the same token, so a retried task (or a
    # retried call) gets the execution it already started instead of a second, billed one.
    digest = hashlib.sha256(repr((request.sql, request.parameters)).encode()).hexdigest()[:40]
    return f"watchpost-run-{run.pk}-{digest}"


def _progress(run: ActionRun, spec: QuerySpec, execution_id: str, status: QueryStatus, started: float) -> bool:
    cost = 0.0
    if spec.engine == "athena":
        billed = max(status.bytes_scanned, ATHENA_MINIMUM_BYTES) if status.bytes_scanned else 0
        cost = billed / 1e12 * settings.WATCHPOST_ATHENA_PRICE_PER_TB_USD
    progress = {
        "state": str(status.state),
        "engine": spec.engine,
        "template": spec.template.name,
        "execution_id": execution_id,
        "elapsed_s": round(time.monotonic() - started, 1),
        "percent": status.percent,
        "bytes_scanned": status.bytes_scanned,
        "cost_usd": round(cost, 6),
    }
    return action_run_progress(run_id=run.pk, progress=progress)


def _execute(engine: QueryEngine, request: QueryRequest, spec: QuerySpec, run: ActionRun) -> tuple[str, QueryStatus]:
    """Start (or resume, after a retried task) and poll until the query ends, is cancelled or times out."""
    started = time.monotonic()
    previous = run.progress or {}
    if spec.engine == "athena" and previous.get("engine") == "athena" and previous.get("execution_id"):
        execution_id = str(previous["execution_id"])  # a retry: the query is already running in Athena
    else:
        execution_id = engine.start(request, token=_token(run, request))
        # Recorded before the first poll: a retry after a throttled poll must resume, not start again.
        _progress(run, spec, execution_id, QueryStatus(QueryState.QUEUED), started)
    delay = 0.2
    while True:
        status = engine.status(execution_id)
        cancel = _progress(run, spec, execution_id, status, started)
        if status.state.done:
            return execution_id, status
        if cancel:
            engine.stop(execution_id)
            return execution_id, QueryStatus(
                QueryState.CANCELLED, "Cancelled by a responder.", status.bytes_scanned, status.engine_ms
            )
        if time.monotonic() - started > settings.WATCHPOST_QUERY_TIMEOUT_SECONDS:
            engine.stop(execution_id)
            raise PermanentIntegrationError(
                f"The query ran longer than {settings.WATCHPOST_QUERY_TIMEOUT_SECONDS} s and was stopped "
                f"(execution {execution_id}). Narrow the time window."
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)


def _spec_for_run(run: ActionRun) -> tuple[QuerySpec, ActionRun | None]:
    parent = run.parent if run.parent_id and run.parent and run.parent.action == "query.run" else None
    if parent is not None:
        if parent.status != ActionRun.Status.SUCCEEDED or not parent.result.get("sha256"):
            raise ValidationError(f"Run #{parent.pk} has no result to verify.")
        template = library().get(str(parent.result["template"]))
        return QuerySpec(template, dict(parent.result["values"]), str(parent.result["engine"])), parent
    return query_spec_from_params(params=run.params, now=run.created_at), None


def _coverage(spec: QuerySpec, incident: Incident) -> AuditCoverage | None:
    if spec.template.source != "eks_audit":
        return None
    return audit_coverage(cluster=spec.values["cluster"], region=incident.region or settings.WATCHPOST_EKS_LOGS_REGION)


def query_run(*, run: ActionRun) -> dict[str, Any]:
    spec, parent = _spec_for_run(run)
    coverage = _coverage(spec, run.incident)
    if coverage is not None and not coverage.log_group_exists:
        return _gap_only(run, spec, coverage)
    try:
        request = query_request(spec)
    except QueryParamError as exc:
        raise ValidationError(str(exc)) from exc
    engine = engine_build(spec.engine, region=run.incident.region)
    try:
        execution_id, status = _execute(engine, request, spec, run)
        base = {"template": spec.template.name, "engine": spec.engine, "values": spec.values}
        if status.state is QueryState.CANCELLED:
            return base | {"cancelled": True, "execution_id": execution_id, "summary": "Query cancelled."}
        if status.state is QueryState.FAILED:
            raise PermanentIntegrationError(f"The query failed ({spec.engine} {execution_id}): {status.reason}")
        result = engine.result(execution_id)
        return base | _keep(run, spec, request, execution_id, status, result, coverage, parent)
    finally:
        engine.close()


def _gap_only(run: ActionRun, spec: QuerySpec, coverage: AuditCoverage) -> dict[str, Any]:
    timeline.event_add(
        incident=run.incident,
        kind=timeline.Kind.ACTION,
        actor=run.requested_by,
        summary=f"Coverage gap: {coverage.gap}"[:500],
        data={"run": run.pk, "template": spec.template.name, "coverage_gap": coverage.gap},
    )
    return {
        "template": spec.template.name,
        "engine": spec.engine,
        "values": spec.values,
        "coverage_gap": coverage.gap,
        "rows": None,
        "summary": f"Not run: {coverage.gap}",
    }


def _provenance(
    run: ActionRun, spec: QuerySpec, request: QueryRequest, execution_id: str, status: QueryStatus
) -> dict[str, Any]:
    return {
        "engine": spec.engine,
        "template": spec.template.name,
        "sql": request.sql,
        "parameters": spec.values,
        "bound_values": list(request.parameters),
        "execution_id": execution_id,
        "workgroup": status.details.get("workgroup", ""),
        "database": status.details.get("database", ""),
        "table": status.details.get("table", settings.WATCHPOST_ATHENA_TABLE if spec.engine == "athena" else ""),
        "details": status.details,
        "window": {"since": spec.values.get("since", ""), "until": spec.values.get("until", "")},
        "bytes_scanned": status.bytes_scanned,
        "engine_ms": status.engine_ms,
        "run": run.pk,
        "run_by": run.requested_by.get_username() if run.requested_by else "",
        "run_at": timezone.now().isoformat(),
        "verifies_run": run.parent_id,
    }


def _keep(
    run: ActionRun,
    spec: QuerySpec,
    request: QueryRequest,
    execution_id: str,
    status: QueryStatus,
    result: QueryResult,
    coverage: AuditCoverage | None,
    parent: ActionRun | None,
) -> dict[str, Any]:
    provenance = _provenance(run, spec, request, execution_id, status) | {"result_source": result.source}
    gap = _gap(spec, status, coverage)
    evidence, summary = _store(run, spec, result, provenance, gap)
    verification = _verify(run, parent, evidence) if parent is not None else None
    return {
        "execution_id": execution_id,
        "evidence_id": evidence.pk,
        "sha256": evidence.sha256,
        "size": evidence.size,
        "rows": summary.rows,
        "flagged": summary.flagged,
        "columns": list(result.columns),
        "preview": summary.preview,
        "top": summary.top(),
        "bytes_scanned": status.bytes_scanned,
        "warnings": list(result.warnings),
        "coverage_gap": gap,
        "verification": verification,
        "summary": _run_text(summary, evidence, verification, result.warnings),
    }


def _store(
    run: ActionRun, spec: QuerySpec, result: QueryResult, provenance: dict[str, Any], gap: str
) -> tuple[Evidence, ResultSummary]:
    """Store the result's CSV as evidence, then analyse the stored bytes (before the row commits)."""
    sensitive = library().sensitive_actions if spec.template.source == "cloudtrail" else ()
    source = csv_source(result)
    # The analysis reads a local file: the stored one on a local disk, else a copy kept while storing.
    spool = None if _local_storage() else SpoolingReader(source)
    summaries: list[ResultSummary] = []

    def analyse(evidence: Evidence) -> None:
        if spool is not None:
            spool.spool.flush()
        path = spool.spool.name if spool is not None else evidence.file.path
        preview = settings.WATCHPOST_QUERY_PREVIEW_ROWS
        summaries.append(summarize_csv(path, result.columns, preview_size=preview, sensitive=sensitive))

    try:
        evidence = evidence_acquire(
            incident_id=run.incident_id,
            actor=run.requested_by,
            stream=spool if spool is not None else source,  # type: ignore[arg-type]  # read() is all it needs
            name=f"{run.incident.reference}-{spec.template.name}-run{run.pk}.csv",
            content_type="text/csv",
            description=f"{spec.template.title} ({spec.engine})",
            provenance=provenance,
            max_bytes=settings.WATCHPOST_QUERY_RESULT_MAX_BYTES,
            inspect=analyse,
            describe=lambda evidence: _describe(evidence, spec, summaries[0], run, gap),
        )
    finally:
        source.close()
        if spool is not None:
            spool.close()
    return evidence, summaries[0]


def _local_storage() -> bool:
    """Whether evidence is stored as files on a local disk DuckDB can read (not S3, not in memory)."""
    storage = Evidence._meta.get_field("file").storage  # type: ignore[attr-defined]
    return isinstance(getattr(storage, "_wrapped", storage), FileSystemStorage) or isinstance(
        storage, FileSystemStorage
    )


def _gap(spec: QuerySpec, status: QueryStatus, coverage: AuditCoverage | None) -> str:
    """What history the window asked for but the source does not have, said on the case."""
    since = spec.values.get("since", "")
    if coverage is not None:
        return coverage.gap if since and coverage.missing_before(_iso(since)) else ""
    first = status.details.get("first_delivery", "")  # DuckDB: the oldest file in the directory
    if since and first and since[:10].replace("-", "/") < first:
        return f"No CloudTrail history is available before {first.replace('/', '-')} (the oldest file read)."
    return ""


def _describe(
    evidence: Evidence, spec: QuerySpec, summary: ResultSummary, run: ActionRun, gap: str
) -> tuple[str, dict[str, Any]]:
    # Row count and hash are only known once the rows have streamed: they complete the provenance.
    evidence.provenance |= {"rows": summary.rows, "sha256": evidence.sha256, "size": evidence.size}
    data = {"run": run.pk, "rows": summary.rows, "flagged": summary.flagged, "top": summary.top()}
    return _timeline_text(spec, summary, gap), data | ({"coverage_gap": gap} if gap else {})


def _iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@transaction.atomic  # the custody chain locks its head row; the custody and timeline rows commit together
def _verify(run: ActionRun, parent: ActionRun, evidence: Evidence) -> dict[str, Any]:
    expected = str(parent.result.get("sha256", ""))
    match = evidence.sha256 == expected
    original = Evidence.objects.filter(pk=parent.result.get("evidence_id")).first()
    if original is not None and match:
        _custody(
            evidence=original,
            action=CustodyEvent.Action.VERIFIED,
            actor=run.requested_by,
            address=None,
            sha256=evidence.sha256,
            detail=f"re-run #{run.pk} reproduced the result",
        )
    verdict = "matches" if match else f"DIFFERS from run #{parent.pk} ({expected[:16]}…)"
    timeline.event_add(
        incident=run.incident,
        kind=timeline.Kind.EVIDENCE,
        actor=run.requested_by,
        summary=f"Re-run of query run #{parent.pk}: result hash {evidence.sha256[:16]}… {verdict}",
        data={"run": run.pk, "parent": parent.pk, "match": match, "sha256": evidence.sha256, "expected": expected},
    )
    return {"parent": parent.pk, "expected": expected, "observed": evidence.sha256, "match": match}


def _timeline_text(spec: QuerySpec, summary: ResultSummary, gap: str) -> str:
    text = f"Query {spec.template.name} ({spec.engine}): {summary.rows} rows"
    if summary.flagged:
        text += f", {summary.flagged} sensitive"
    detail = summary.text()
    if detail:
        text += f". {detail}"
    if gap:
        text += f". {gap}"
    return text[:500]


def _run_text(
    summary: ResultSummary, evidence: Evidence, verification: dict[str, Any] | None, warnings: tuple[str, ...]
) -> str:
    text = f"{summary.rows} rows, {summary.flagged} sensitive, SHA-256 {evidence.sha256[:16]}…"
    if verification is not None:
        text += " · re-run " + ("matches" if verification["match"] else "DIFFERS")
    if warnings:
        text += f" · {len(warnings)} file(s) skipped"
    return text
