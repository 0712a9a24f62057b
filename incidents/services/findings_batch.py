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
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from incidents import outbound
from incidents.models import Finding, Incident, TimelineEvent
from incidents.services import findings as single
from incidents.services.findings import CREATED, DUPLICATE, STALE, IngestResult, finding_key
from integrations.aws.guardduty import NormalizedFinding
from playbooks.selectors import playbooks_for_finding_types

CHUNK = 500
Numbered = tuple[int, NormalizedFinding]  # (position in the payload, finding)


def findings_ingest(*, findings: list[Numbered], payload: Any) -> dict[int, IngestResult]:
    """Ingest parsed findings; returns each position's result."""
    if settings.WATCHPOST_GROUP_WINDOW_MINUTES:
        # Grouping attaches a finding to an incident an earlier one in the same chunk may open.
        return {pos: single.finding_ingest(finding=f, payload=payload) for pos, f in findings}
    results: dict[int, IngestResult] = {}
    for start in range(0, len(findings), CHUNK):
        results.update(_chunk_ingest(findings[start : start + CHUNK], payload))
    return results


def _stored_versions(findings: Iterable[NormalizedFinding]) -> dict[str, tuple[Any, int, int | None]]:
    """key → (UpdatedAt, Count, incident id) of the stored rows, in one query on the unique index."""
    accounts, regions, ids = set(), set(), set()
    for f in findings:
        accounts.add(f.account_id)
        regions.add(f.region)
        ids.add(f.finding_id)
    rows = Finding.objects.filter(account_id__in=accounts, region__in=regions, finding_id__in=ids).values_list(
        "account_id", "region", "finding_id", "finding_updated_at", "count", "incident_id"
    )
    return {f"{a}/{r}/{i}": (updated, count, incident) for a, r, i, updated, count, incident in rows}


def _chunk_ingest(chunk: list[Numbered], payload: Any) -> dict[int, IngestResult]:
    stored = _stored_versions(f for _, f in chunk)
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
        with transaction.atomic():
            results.update(_create_all(fresh, payload))
    except IntegrityError:
        # A concurrent delivery created one of these keys first: take them one at a time (locked).
        later = sorted(fresh + later)
    for pos, finding in later:
        results[pos] = single.finding_ingest(finding=finding, payload=payload)
    return results


def _create_all(fresh: list[Numbered], payload: Any) -> dict[int, IngestResult]:
    if not fresh:
        return {}
    playbooks = playbooks_for_finding_types(finding_types={f.finding_type for _, f in fresh})
    incidents = Incident.objects.bulk_create(
        [Incident(**single.incident_fields(f, playbooks[f.finding_type])) for _, f in fresh]
    )
    rows = Finding.objects.bulk_create(
        [
            Finding(incident=incident, account_id=f.account_id, region=f.region, finding_id=f.finding_id,
                    **single.finding_fields(f, payload))
            for (_, f), incident in zip(fresh, incidents, strict=True)
        ]
    )  # fmt: skip
    single.observables_link(
        {incident.pk: single.finding_observables(f) for (_, f), incident in zip(fresh, incidents, strict=True)}
    )
    _events_create(fresh, incidents, rows)
    for incident in incidents:
        outbound.incident_created(incident=incident, actor=None)  # nothing unless someone subscribed
    return {
        pos: IngestResult(status=CREATED, finding_key=finding_key(f), incident_id=incident.pk)
        for (pos, f), incident in zip(fresh, incidents, strict=True)
    }


def _events_create(fresh: list[Numbered], incidents: list[Incident], rows: list[Finding]) -> None:
    events = []
    for (_, f), incident, row in zip(fresh, incidents, rows, strict=True):
        playbook = incident.playbook
        events.append(
            TimelineEvent(
                incident=incident,
                kind=TimelineEvent.Kind.CREATED,
                summary=f"Incident opened from playbook {playbook.slug} v{playbook.version}",
                data={"playbook": playbook.slug, "playbook_version": playbook.version},
                occurred_at=incident.created_at,
            )
        )
        events.append(
            TimelineEvent(
                incident=incident,
                kind=TimelineEvent.Kind.FINDING,
                summary=f"GuardDuty finding {f.finding_type} received (count {f.count})",
                data=single.event_data(row),
                occurred_at=f.first_seen or f.updated_at,
            )
        )
    TimelineEvent.objects.bulk_create(events)
