"""Finding ingestion: every path (poller, SQS, webhook, import) ends here.

`payload_store` keeps the body before anything parses it; `payload_process` parses it and hands each
finding to `finding_ingest`, quarantining what cannot be read, with the reason. `finding_ingest` is
idempotent on (account, region, finding id), enforced by the Finding table's unique constraint:

- a new id opens an incident from the playbook for its type (the fallback playbook otherwise);
- a newer version (later UpdatedAt, or the same UpdatedAt with a higher Count) updates the finding and
  adds one occurrence event to its incident's timeline, reopening a recently closed incident;
- an older or identical copy changes nothing and says so: "stale" or "duplicate".
"""

import gc
import hashlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, models, transaction
from django.utils import timezone

from incidents import timeline
from incidents.models import (
    Finding,
    InboundPayload,
    Incident,
    Observable,
    Phase,
    Priority,
    QuarantinedDocument,
    Severity,
)
from incidents.rows import atomic_batched, commits_unflushed, row_update, rows_insert, statement_send
from incidents.services.incidents import incident_change_phase, incident_open, sla_due_at
from integrations.aws.guardduty import FindingParseError, NormalizedFinding, documents_from_bytes, parse_finding
from integrations.storable import storable
from playbooks.models import Playbook
from playbooks.selectors import playbook_for_finding_type

CREATED, UPDATED, DUPLICATE, STALE, REJECTED = "created", "updated", "duplicate", "stale", "rejected"
# Reference: TRIAGE_GUIDE.md severity matrix (Critical → P1 … Low → P4).
PRIORITY_FOR_SEVERITY = {
    Severity.CRITICAL: Priority.P1,
    Severity.HIGH: Priority.P2,
    Severity.MEDIUM: Priority.P3,
    Severity.LOW: Priority.P4,
}
ANONYMOUS_ACCESS_SUFFIX = "Kubernetes/SuccessfulAnonymousAccess"
ANONYMOUS_GRANTED = "Policy:Kubernetes/AnonymousAccessGranted"


@dataclass(frozen=True)
class IngestResult:
    status: str
    finding_key: str = ""
    incident_id: int | None = None
    reason: str = ""
    position: int | None = None


@dataclass
class IngestReport:
    payload_id: int
    results: list[IngestResult] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counted = Counter(result.status for result in self.results)
        return {status: counted.get(status, 0) for status in (CREATED, UPDATED, DUPLICATE, STALE, REJECTED)}

    @property
    def fully_accepted(self) -> bool:
        return not any(result.status == REJECTED for result in self.results)


# --- payloads ---------------------------------------------------------------------------------------


def payload_store(
    *, source: str, body: bytes, meta: dict[str, Any] | None = None, flush: bool = True
) -> InboundPayload:
    """Keep the body exactly as received, committed on its own before any parsing.

    `flush=False` is for a caller that processes the payload next (`payload_process_stored`) and answers
    its sender only after that: the processing's commit puts this row on disk with its own, so this
    commit need not wait for the disk (rows.commits_unflushed says why that holds).
    """
    # The meta is ours, but made of what came with the body (a file name, a message attribute): a name
    # undecodable as UTF-8 reaches Python with lone surrogates, which jsonb refuses.
    fields = {"source": source, "body": body, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
              "meta": storable(meta or {}), "received_at": timezone.now(), "status": InboundPayload.Status.RECEIVED,
              "counts": {}, "processed_at": None}  # fmt: skip
    # One row, one statement: in autocommit it is its own transaction (an atomic block would add a
    # BEGIN and a COMMIT round trip to every event, P3); inside a caller's transaction it is part of it.
    with nullcontext() if flush else commits_unflushed():
        (pk,) = rows_insert(InboundPayload, [fields])  # once per event: not worth the ORM's cost (incidents.rows)
    row = {"id": pk} | fields
    names = [field.attname for field in InboundPayload._meta.concrete_fields]
    return InboundPayload.from_db(None, names, [row[name] for name in names])  # as if read back


def _quarantine(payload: InboundPayload, *, position: int | None, document: Any, reason: str) -> IngestResult:
    QuarantinedDocument.objects.create(
        payload=payload, position=position, document=document if isinstance(document, dict | list) else None,
        reason=reason,
    )  # fmt: skip
    return IngestResult(status=REJECTED, reason=reason, position=position)


def payload_process(*, payload_id: int) -> IngestReport:
    """Parse a stored payload and ingest its findings (set-based: findings_batch); bad documents are quarantined."""
    return payload_process_stored(InboundPayload.objects.get(pk=payload_id))


def payload_process_pending(*, payload_id: int) -> IngestReport | None:
    """Process a stored payload that nothing has finished yet (the queued path); None when it is done.

    Safe to run twice (a redelivered task, or the reconcile job re-enqueueing it): a payload that
    is no longer "received" is left alone, and findings ingest idempotently. A one-chunk payload is
    processed in one transaction, so an attempt that died left nothing behind; a larger one may keep
    the quarantine rows of its first chunks, which the re-run records again (never fewer).
    """
    payload = InboundPayload.objects.filter(pk=payload_id, status=InboundPayload.Status.RECEIVED).first()
    if payload is None:
        return None
    return payload_process_stored(payload)


def payload_process_stored(payload: InboundPayload) -> IngestReport:
    """`payload_process` for the row `payload_store` has just returned (its body is in hand: not read back)."""
    with _collector_paused():
        return _payload_parse_and_ingest(payload)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a payload is ingested.

    A payload's parsed documents (~300 objects each, 500 to a chunk) live until their chunk is written,
    so the collector ran again and again over them, and over everything else the process holds, and
    freed nothing: JSON trees hold no cycles, and reference counting frees them. On a bulk import that
    was about 0.05 ms a finding (benchmarks/README.md, P1). Switched back on at the end, if it was on;
    whatever cycle was made meanwhile (a payload is at most 20 MiB) is collected then.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _payload_parse_and_ingest(payload: InboundPayload) -> IngestReport:
    from incidents.services.findings_batch import CHUNK  # it builds on this module

    report = IngestReport(payload_id=payload.pk)
    try:
        documents = documents_from_bytes(bytes(payload.body))
    except FindingParseError as exc:
        documents = []
        report.results.append(_quarantine(payload, position=None, document=None, reason=str(exc)))
    if len(documents) > CHUNK:  # chunk by chunk, each committed on its own
        return _documents_ingest(payload, documents, report, savepoint=True)
    # A payload of one chunk (an EventBridge event, an SQS message, a webhook call) is processed in one
    # transaction with its status: one commit instead of two per event (P3), and a crash leaves the
    # payload "received" as a whole, for re-processing. Its new rows go in without a savepoint (two
    # round trips fewer per event); should a concurrent delivery win an insert race, the whole
    # transaction is lost, and is done again once, now with the savepoint and the winner's rows in sight.
    # The writes that return nothing, the payload's status among them, share one round trip at the end,
    # with the COMMIT; the BEGIN goes with the key lookup (atomic_batched): three round trips an event.
    try:
        with atomic_batched():
            return _documents_ingest(payload, documents, replace(report, results=[*report.results]), savepoint=False)
    except (IntegrityError, OperationalError) as exc:
        if not lost_to_another_session(exc):
            raise
        with atomic_batched():
            return _documents_ingest(payload, documents, report, savepoint=True)


DEADLOCK_DETECTED = "40P01"  # PostgreSQL's SQLSTATE


def lost_to_another_session(exc: DatabaseError) -> bool:
    """The write lost to a concurrent ingest: an insert race, or a deadlock that made us the victim.

    Either way the transaction (or savepoint) is rolled back and the other session's rows stand, so
    doing the work again converges: with a savepoint, and if that loses too, one finding at a time
    behind its row lock. A deadlock takes new
    rows that two sessions each want, inserted in opposite orders (two files imported at once that
    share findings, in a different order). Any other database error (a lost connection) is not ours
    to retry here: the task that runs us retries those.
    """
    if isinstance(exc, IntegrityError):
        return True
    return getattr(exc.__cause__, "pgcode", None) == DEADLOCK_DETECTED


def _documents_ingest(
    payload: InboundPayload, documents: list[Any], report: IngestReport, *, savepoint: bool
) -> IngestReport:
    from incidents.services.findings_batch import findings_ingest  # it builds on this module

    parsed, results = [], {}
    for position, document in enumerate(documents):
        try:
            parsed.append((position, _finding_parsed(document)))
        except FindingParseError as exc:
            results[position] = _quarantine(payload, position=position, document=document, reason=str(exc))
    results.update(findings_ingest(findings=parsed, payload=payload, savepoint=savepoint))
    report.results.extend(results[position] for position in sorted(results))
    _payload_close(payload, report)
    return report


# The finding's key and type (wire name, Finding field): an AWS account id has 12 digits, a GuardDuty id
# 32 characters and a type at most 100, so a longer value is not a GuardDuty finding; PostgreSQL refused
# it at INSERT, as a server error, before it was checked here.
_BOUNDED = (("id", "finding_id"), ("accountId", "account_id"), ("region", "region"), ("type", "finding_type"))


def _finding_parsed(document: Any) -> NormalizedFinding:
    """parse_finding, and the key fits the columns it is stored in (raises FindingParseError)."""
    finding = parse_finding(document)
    for wire, name in _BOUNDED:
        limit, length = _max_length(name), len(getattr(finding, name))
        if length > limit:
            raise FindingParseError(f"{wire}: {length} characters long, longer than the {limit} it may have")
    return finding


@cache  # per ingested finding: the model's meta does not change
def _max_length(name: str) -> int:
    field = Finding._meta.get_field(name)
    assert isinstance(field, models.CharField) and field.max_length is not None  # all four are bounded CharFields
    return field.max_length


def _payload_close(payload: InboundPayload, report: IngestReport) -> None:
    rejected = report.counts[REJECTED]
    if not rejected:
        status = InboundPayload.Status.ACCEPTED
    elif rejected == len(report.results):
        status = InboundPayload.Status.REJECTED
    else:
        status = InboundPayload.Status.PARTIAL
    row_update(InboundPayload, payload.pk, {"status": status, "counts": report.counts, "processed_at": timezone.now()})


def payload_receive(*, source: str, body: bytes, meta: dict[str, Any] | None = None) -> IngestReport:
    """Store the body, then process it: for a caller that answers its sender only once this returns."""
    return payload_process_stored(payload_store(source=source, body=body, meta=meta, flush=False))


# --- one finding ------------------------------------------------------------------------------------


def finding_key(finding: NormalizedFinding) -> str:
    return f"{finding.account_id}/{finding.region}/{finding.finding_id}"


def finding_ingest(*, finding: NormalizedFinding, payload: InboundPayload | None = None) -> IngestResult:
    key = {"account_id": finding.account_id, "region": finding.region, "finding_id": finding.finding_id}
    with transaction.atomic():
        stored = Finding.objects.select_for_update().filter(**key).first()
        if stored is None:
            try:
                with transaction.atomic():  # a savepoint: losing the insert race rolls back our incident too
                    return _finding_create(finding, payload)
            except IntegrityError:
                stored = Finding.objects.select_for_update().filter(**key).first()  # waits for the winner
                if stored is None:
                    # No finding row, yet an insert conflicted: its incident exists (the row was purged).
                    return _finding_create(finding, payload, incident=_incident_by_key(finding))
        return _finding_repeat(stored, finding, payload)


def _incident_by_key(finding: NormalizedFinding) -> Incident:
    return Incident.objects.select_for_update().get(source="guardduty", external_ref=finding_key(finding))


def finding_fields(finding: NormalizedFinding, payload: InboundPayload | None) -> dict[str, Any]:
    return {
        "finding_type": finding.finding_type,
        "title": finding.title[:500],
        "description": finding.description,
        "severity": finding.severity,
        "count": finding.count,
        "first_seen": finding.first_seen,
        "last_seen": finding.last_seen,
        "finding_created_at": finding.created_at,
        "finding_updated_at": finding.updated_at,
        "is_sample": finding.is_sample,
        "cluster_name": finding.cluster_name[:100],
        "cluster_arn": finding.cluster_arn[:300],
        "raw": finding.raw,
        "last_payload_id": payload.pk if payload else None,
    }


def _finding_create(
    finding: NormalizedFinding, payload: InboundPayload | None, *, incident: Incident | None = None
) -> IngestResult:
    incident, attached = (incident, True) if incident is not None else _incident_for_new(finding)
    stored = Finding.objects.create(
        incident=incident,
        account_id=finding.account_id,
        region=finding.region,
        finding_id=finding.finding_id,
        **finding_fields(finding, payload),
    )
    observables_attach(incident=incident, finding=finding)
    summary = f"GuardDuty finding {finding.finding_type} received (count {finding.count})"
    if attached:
        summary = f"Related finding attached: {finding.finding_type} (count {finding.count})"
    timeline.event_add(
        incident=incident,
        kind=timeline.Kind.FINDING,
        summary=summary,
        data=event_data(stored.pk, finding),
        occurred_at=finding.first_seen or finding.updated_at,
    )
    return IngestResult(status=CREATED, finding_key=finding_key(finding), incident_id=incident.pk)


def event_data(finding_pk: int, finding: NormalizedFinding) -> dict[str, Any]:
    """What a finding's timeline row records of the version it saw."""
    return {
        "finding": finding_pk,
        "finding_id": finding.finding_id,
        "type": finding.finding_type,
        "count": finding.count,
        "updated_at": finding.updated_at.isoformat(),
    }


def _incident_for_new(finding: NormalizedFinding) -> tuple[Incident, bool]:
    """(incident, attached): a grouped open incident when grouping applies, else a new one."""
    grouped = _grouping_target(finding)
    if grouped is not None:
        return grouped, True
    playbook = playbook_for_finding_type(finding_type=finding.finding_type)
    fields = incident_fields(finding, playbook)
    fields.pop("sla_due_at")  # incident_open computes it
    return incident_open(actor=None, **fields), False


def incident_fields(finding: NormalizedFinding, playbook: Playbook) -> dict[str, Any]:
    """The incident a new finding opens (TRIAGE_GUIDE: severity band → priority; samples are P4)."""
    severity = Severity.from_guardduty(finding.severity)
    priority = Priority.P4 if finding.is_sample else PRIORITY_FOR_SEVERITY[severity]
    detected_at = finding.first_seen or finding.created_at or finding.updated_at
    title = f"{finding.finding_type} on {finding.cluster_name or finding.account_id}"
    return {
        "title": (("[SAMPLE] " if finding.is_sample else "") + title)[:300],
        "summary": finding.description,
        "playbook": playbook,
        "severity": severity,
        "priority": priority,
        "finding_type": finding.finding_type,
        "cluster_name": finding.cluster_name[:100],
        "account_id": finding.account_id,
        "region": finding.region,
        "source": "guardduty",
        "external_ref": finding_key(finding),
        "detected_at": detected_at,
        "sla_due_at": sla_due_at(detected_at=detected_at, priority=priority),
    }


def _grouping_target(finding: NormalizedFinding) -> Incident | None:
    """Optional (settings): attach to an open incident on the same cluster instead of opening one."""
    window = settings.WATCHPOST_GROUP_WINDOW_MINUTES
    if not window or not finding.cluster_name:
        return None
    types = [finding.finding_type]
    if finding.finding_type.endswith(ANONYMOUS_ACCESS_SUFFIX):
        types.append(ANONYMOUS_GRANTED)  # a granted binding, then its use: one story, one incident
    since = timezone.now() - timedelta(minutes=window)
    return (
        Incident.objects.select_for_update()
        .filter(
            cluster_name=finding.cluster_name,
            account_id=finding.account_id,
            finding_type__in=types,
            created_at__gte=since,
        )
        .exclude(phase=Phase.CLOSED)
        .order_by("created_at", "id")
        .first()
    )


def _is_newer(finding: NormalizedFinding, stored: Finding) -> bool | None:
    """True newer, False older, None identical (same UpdatedAt and Count)."""
    mine, theirs = (finding.updated_at, finding.count), (stored.finding_updated_at, stored.count)
    return None if mine == theirs else mine > theirs


def _finding_repeat(stored: Finding, finding: NormalizedFinding, payload: InboundPayload | None) -> IngestResult:
    newer = _is_newer(finding, stored)
    key, incident_id = finding_key(finding), stored.incident_id
    if newer is None:
        return IngestResult(status=DUPLICATE, finding_key=key, incident_id=incident_id)
    if not newer:
        return IngestResult(status=STALE, finding_key=key, incident_id=incident_id)
    previous = stored.count
    for name, value in finding_fields(finding, payload).items():
        setattr(stored, name, value)
    stored.save()
    if stored.incident_id:
        incident = Incident.objects.get(pk=stored.incident_id)
        observables_attach(incident=incident, finding=finding)
        timeline.event_add(
            incident=incident,
            kind=timeline.Kind.FINDING,
            summary=f"Finding occurred again: count {finding.count} (was {previous})",
            data=event_data(stored.pk, finding) | {"previous_count": previous},
            occurred_at=finding.last_seen or finding.updated_at,
        )
        _reopen_if_recent(incident)
    return IngestResult(status=UPDATED, finding_key=key, incident_id=incident_id)


def _reopen_if_recent(incident: Incident) -> None:
    hours = settings.WATCHPOST_REOPEN_WINDOW_HOURS
    if not hours or incident.phase != Phase.CLOSED or incident.closed_at is None:
        return
    if timezone.now() - incident.closed_at <= timedelta(hours=hours):
        incident_change_phase(
            incident_id=incident.pk, actor=None, to=Phase.ANALYSIS, reason="the finding occurred again after closing"
        )


# --- observables ------------------------------------------------------------------------------------


def finding_observables(finding: NormalizedFinding) -> set[tuple[str, str]]:
    values = {("ip", ip[:500]) for ip in finding.source_ips}
    if finding.asn and finding.asn != "0":  # "0" is GuardDuty's "private address, no ASN"
        values.add(("asn", f"AS{finding.asn}"[:500]))
    for kind, value in (
        ("k8s_user", finding.k8s_user),
        ("impersonated_user", finding.impersonated_user),
        ("user_agent", finding.user_agent),
        ("cluster", finding.cluster_arn or finding.cluster_name),
        ("service_account", finding.service_account),
    ):
        if value:
            values.add((kind, value[:500]))
    return values


def observables_attach(*, incident: Incident, finding: NormalizedFinding) -> None:
    observables_link({incident.pk: finding_observables(finding)})


def observables_link(wanted: dict[int, set[tuple[str, str]]], *, new_incidents: bool = False) -> None:
    """Create the observables each incident names (shared rows) and link each incident to its own.

    Two statements whatever the number of incidents. The link looks each wanted (incident, kind,
    value) row up on the (kind, value) unique index, one probe per row: a join let the planner pick a
    sequential scan of every observable while the table's statistics said it was small (it grows with
    every ingest, and a long-lived worker session kept the plan), 0.9 ms per event and growing. The
    link is a statement of its own, after the insert, so its snapshot also holds an observable that
    a concurrent ingest committed in between (the insert skipped it as a conflict). That holds when the
    two travel in one multi-statement query (writes_batched): each statement takes its own snapshot.

    `new_incidents`: every incident here was opened in this transaction, so none has a link yet, and
    theirs go in without the conflict check (its probe of the unique index and speculative insertion,
    per row, were a fifth of the link's cost: P3).
    """
    rows = [(pk, kind, value) for pk, values in wanted.items() for kind, value in values]
    if not rows:
        return
    # In one order for every session: two ingests that each insert a new observable the other wants
    # would otherwise wait on each other's uncommitted row, a deadlock that fails one of them.
    unique = sorted({(kind, value) for _, kind, value in rows})
    rows_insert(Observable, [{"kind": kind, "value": value} for kind, value in unique], ignore_conflicts=True)
    through = Observable.incidents.through
    link, observable = through._meta.db_table, Observable._meta.db_table
    # Plain VALUES rows (column1…3 on PostgreSQL and SQLite alike, which `make run` uses); the scalar
    # subquery is never flattened into a join, so each row is one index probe. Observables are never
    # deleted, so the probe finds the row; `IS NOT NULL` keeps a NULL out of the NOT NULL column if one
    # ever were. Only table names from the models' meta are formatted in; every value is a bound parameter.
    # The first row's casts type the VALUES columns for a prepared statement (incidents.rows.prepared),
    # whose parameters PostgreSQL types from their context alone.
    first_row = "(CAST(%s AS bigint), CAST(%s AS text), CAST(%s AS text))"
    sql = (
        f'INSERT INTO "{link}" (observable_id, incident_id) '  # noqa: S608
        f'SELECT x.observable_id, x.incident_id FROM (SELECT (SELECT o.id FROM "{observable}" o '
        f"WHERE o.kind = w.column2 AND o.value = w.column3) AS observable_id, w.column1 AS incident_id "
        f"FROM (VALUES {', '.join([first_row] + ['(%s, %s, %s)'] * (len(rows) - 1))}) AS w) AS x "
        f"WHERE x.observable_id IS NOT NULL{'' if new_incidents else ' ON CONFLICT DO NOTHING'}"
    )
    statement_send(sql, [cell for row in rows for cell in row])  # after the insert above, even when batched
