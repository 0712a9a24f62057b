"""Set-based ingestion of one payload's findings: what `finding_ingest` does, a chunk at a time.

A backfill or an export brings thousands of findings, nearly all new. Taking them one by one (a
transaction, a row lock and ~40 small statements each) made ingestion ~200 times slower than a COPY
of the same documents (P1). Here a chunk costs one key lookup and a handful of multi-row
statements, with the same outcome as taking its findings one at a time, in order:

- first sightings of new keys are created together: incidents, findings, observables and timeline
  rows, in one transaction. Their checklist rows are written on the incident's first read
  (playbooks.checklists): most backfilled cases are never opened, and those rows were the largest
  single cost per finding;
- a copy no newer than the stored finding is answered "duplicate" or "stale" from one unlocked read
  (versions only grow, so a copy that is not newer than what we read is not newer than anything
  written since);
- everything else (newer versions, repeats within the chunk, and a whole chunk that lost an insert
  race to a concurrent delivery) goes through `finding_ingest`, after the chunk's inserts, in order.
"""

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, OperationalError, connection, connections
from django.utils import timezone

from incidents import outbound, timeline
from incidents.models import Finding, Incident, TimelineEvent
from incidents.rows import atomic_batched, id_drawn_sql, prepared, rows_insert
from incidents.services import findings as single
from incidents.services.findings import CREATED, DUPLICATE, STALE, IngestResult, finding_key
from integrations.aws.guardduty import NormalizedFinding
from playbooks.models import Playbook
from playbooks.selectors import LibrarySignature, library_signature_sql, playbooks_for_finding_types

CHUNK = 500
Numbered = tuple[int, NormalizedFinding]  # (position in the payload, finding)


def findings_ingest(*, findings: list[Numbered], payload: Any, savepoint: bool = True) -> dict[int, IngestResult]:
    """Ingest parsed findings; returns each position's result.

    With `savepoint=False` (the caller's transaction holds the whole payload) a chunk whose new rows
    lose an insert race raises IntegrityError, and the caller starts over; with it, the chunk's new
    rows are rolled back alone and taken one at a time.
    """
    if settings.WATCHPOST_GROUP_WINDOW_MINUTES:
        # Grouping attaches a finding to an incident an earlier one in the same chunk may open.
        return {pos: single.finding_ingest(finding=f, payload=payload) for pos, f in findings}
    results: dict[int, IngestResult] = {}
    for start in range(0, len(findings), CHUNK):
        results.update(_chunk_ingest(findings[start : start + CHUNK], payload, savepoint=savepoint))
    return results


Versions = dict[str, tuple[Any, int, int | None]]  # key → (UpdatedAt, Count, incident id)
Drawn = dict[str, tuple[int, int]]  # key not stored yet → (a new incident id, a new finding id)


def _stored_versions(findings: Iterable[NormalizedFinding]) -> tuple[Versions, LibrarySignature, Drawn]:
    """The stored rows' versions, in one query on the unique index; the playbook library's state; and, on
    PostgreSQL, for each key not stored yet, an incident id and a finding id drawn from their sequences.

    The keys are a VALUES list (PostgreSQL, and SQLite for `make run`) joined to the table's unique
    index: it names exactly the wanted keys, and costs a fraction of the ORM's three IN lookups to build,
    on every ingested event (P3). The library signature rides along (its one row) because a new finding
    needs it next, and a round trip of its own cost an event more than the aggregate does. With the ids
    drawn here, a first sighting's rows all go in without RETURNING, in the round trip that commits
    them (writes_batched), not one of their own. A key found stored draws nothing; an id drawn for a
    key that then loses an insert race to another delivery stays unused, as a rolled-back INSERT's would.
    """
    keys = {(f.account_id, f.region, f.finding_id) for f in findings}
    assert keys, "a chunk holds at least one finding"
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.…` is a context-local lookup
    with db.cursor() as cursor:
        statement = prepared(_versions_statement(len(keys), db.vendor), db)
        cursor.execute(statement, [part for key in keys for part in key])
        fetched = cursor.fetchall()
    field = Finding._meta.get_field("finding_updated_at")
    converters = db.ops.get_db_converters(field.get_col(Finding._meta.db_table))
    versions: Versions = {}
    drawn: Drawn = {}
    for _, _, account, region, finding_id, pk, updated, count, incident, new_incident, new_finding in fetched:
        key = f"{account}/{region}/{finding_id}"
        if pk is not None:
            versions[key] = (_converted(updated, converters, field), count, incident)
        elif new_incident is not None:
            drawn[key] = (new_incident, new_finding)
    return versions, (fetched[0][0], fetched[0][1]), drawn


@lru_cache(maxsize=32)  # on every ingested event: the same few statements (a key count each), built once
def _versions_statement(count: int, vendor: str) -> str:
    """`_stored_versions`' statement for `count` keys."""
    table = connection.ops.quote_name(Finding._meta.db_table)
    # The first row's casts give a prepared statement's parameters their type (rows.prepared).
    rows = ", ".join(["(CAST(%s AS text), CAST(%s AS text), CAST(%s AS text))"] + ["(%s, %s, %s)"] * (count - 1))
    if vendor == "postgresql":
        drawn_sql = ", ".join(f"CASE WHEN f.id IS NULL THEN {id_drawn_sql(model)} END" for model in (Incident, Finding))
    else:
        drawn_sql = "NULL, NULL"
    # Only the table names from the models' meta are formatted in; every value is a bound parameter.
    return (
        "SELECT p.library_last, p.library_rows, k.column1, k.column2, k.column3, f.id, f.finding_updated_at, "  # noqa: S608
        f"f.count, f.incident_id, {drawn_sql} FROM ({library_signature_sql()}) AS p CROSS JOIN (VALUES {rows}) AS k "
        f"LEFT JOIN {table} AS f ON f.account_id = k.column1 AND f.region = k.column2 AND f.finding_id = k.column3"
    )


def _converted(value: Any, converters: list[Any], field: Any) -> Any:
    """A raw column value as the ORM would return it (SQLite hands back datetimes as text)."""
    for converter in converters:
        value = converter(value, field, connection)
    return value


def _chunk_ingest(chunk: list[Numbered], payload: Any, *, savepoint: bool) -> dict[int, IngestResult]:
    stored, library, drawn = _stored_versions(f for _, f in chunk)
    results: dict[int, IngestResult] = {}
    fresh: list[Numbered] = []
    later: list[Numbered] = []
    seen: set[str] = set()
    for pos, finding in chunk:
        key = finding_key(finding)
        version = stored.get(key)
        if key in seen:
            later.append((pos, finding))
        elif version is None:
            fresh.append((pos, finding))
        elif (finding.updated_at, finding.count) == version[:2]:
            results[pos] = IngestResult(status=DUPLICATE, finding_key=key, incident_id=version[2])
        elif (finding.updated_at, finding.count) < version[:2]:
            results[pos] = IngestResult(status=STALE, finding_key=key, incident_id=version[2])
        else:
            later.append((pos, finding))
        seen.add(key)
    try:
        # The observables, links and timeline rows need no answer: they travel with the next statement
        # (here the savepoint's release, or one round trip at the block's end), not one trip each (P3).
        with atomic_batched(savepoint=savepoint):
            results.update(_create_all(fresh, payload, library, drawn))
    except (IntegrityError, OperationalError) as exc:
        if not savepoint or not single.lost_to_another_session(exc):
            raise  # without a savepoint the caller's transaction is lost with it: the caller starts over
        # A concurrent delivery created one of these keys first, or deadlocked with us over them:
        # take them one at a time (locked).
        later = sorted(fresh + later)
    for pos, finding in later:
        results[pos] = single.finding_ingest(finding=finding, payload=payload)
    return results


def _create_all(
    fresh: list[Numbered], payload: Any, library: LibrarySignature, drawn: Drawn
) -> dict[int, IngestResult]:
    """Every first sighting's incident, finding, observables and timeline rows (`incidents.rows`: plain
    multi-row INSERTs, the same values the ORM would send, without its per-statement cost)."""
    if not fresh:
        return {}
    playbooks = playbooks_for_finding_types(finding_types={f.finding_type for _, f in fresh}, signature=library)
    now = timezone.now()
    incident_rows = [_incident_row(f, playbooks[f.finding_type], now) for _, f in fresh]
    ids = [drawn.get(finding_key(f)) for _, f in fresh]
    if all(ids):  # PostgreSQL: the ids came with the lookup, so every row here waits for the commit's round trip
        incident_ids, finding_ids = [pair[0] for pair in ids if pair], [pair[1] for pair in ids if pair]
        rows_insert(Incident, [row | {"id": pk} for row, pk in zip(incident_rows, incident_ids, strict=True)],
                    returning=False)  # fmt: skip
    else:
        incident_ids, finding_ids = rows_insert(Incident, incident_rows), []
    finding_rows = [
        _finding_row(f, incident_id, payload) for (_, f), incident_id in zip(fresh, incident_ids, strict=True)
    ]
    if finding_ids:
        with_ids = [row | {"id": pk} for row, pk in zip(finding_rows, finding_ids, strict=True)]
        rows_insert(Finding, with_ids, returning=False)
    else:
        finding_ids = rows_insert(Finding, finding_rows)
    single.observables_link(
        {incident_id: single.finding_observables(f) for (_, f), incident_id in zip(fresh, incident_ids, strict=True)},
        new_incidents=True,
    )
    rows_insert(TimelineEvent, _event_rows(fresh, incident_rows, incident_ids, playbooks, finding_ids), returning=False)
    if outbound.announced("incident.created"):  # a backfill's model instances only when someone listens
        for row, incident_id in zip(incident_rows, incident_ids, strict=True):
            outbound.incident_created(incident=Incident(pk=incident_id, **row), actor=None)
    return {
        pos: IngestResult(status=CREATED, finding_key=finding_key(f), incident_id=incident_id)
        for (pos, f), incident_id in zip(fresh, incident_ids, strict=True)
    }


def _incident_row(finding: NormalizedFinding, playbook: Playbook, now: datetime) -> dict[str, Any]:
    fields = single.incident_fields(finding, playbook)
    del fields["playbook"]
    return fields | {"playbook_id": playbook.pk, "created_at": now, "updated_at": now}


def _finding_row(finding: NormalizedFinding, incident_id: int, payload: Any) -> dict[str, Any]:
    key = {"account_id": finding.account_id, "region": finding.region, "finding_id": finding.finding_id}
    return single.finding_fields(finding, payload) | key | {"incident_id": incident_id}


def _event_rows(
    fresh: list[Numbered],
    incident_rows: list[dict[str, Any]],
    incident_ids: list[int],
    playbooks: dict[str, Playbook],
    finding_ids: list[int],
) -> list[dict[str, Any]]:
    """Each new incident's "opened" and "finding received" timeline rows."""
    events = []
    for (_, f), row, incident_id, finding_id in zip(fresh, incident_rows, incident_ids, finding_ids, strict=True):
        events.append(
            {
                "incident_id": incident_id,
                "kind": TimelineEvent.Kind.CREATED,
                "occurred_at": row["created_at"],
                **timeline.created_event_text(playbooks[f.finding_type]),
            }
        )
        events.append(
            {
                "incident_id": incident_id,
                "kind": TimelineEvent.Kind.FINDING,
                "summary": f"GuardDuty finding {f.finding_type} received (count {f.count})",
                "data": single.event_data(finding_id, f),
                "occurred_at": f.first_seen or f.updated_at,
            }
        )
    return events
