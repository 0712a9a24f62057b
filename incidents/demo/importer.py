"""Demo importer: opens one incident per bundled demo finding. NOT the ingestion pipeline.

`manage.py seed_demo` uses this so that `make run` shows a realistic queue on a machine with no AWS
account. It reads the fictional findings in `incidents/demo/findings/*.json` (the wire / camelCase
spelling, DOMAIN.md §1.4) and does only what a demo needs: one incident per finding id, its Finding
row, its observables and one timeline event. Real ingestion (EventBridge/SQS, API poller, webhook,
repeat deliveries, stale updates, quarantine of bad payloads) belongs to `integrations/aws/guardduty.py`
and `incidents.services.finding_ingest`; do not grow this module into that.

The files are dated around DEMO_CLOCK. On import every finding timestamp is moved by (now - DEMO_CLOCK),
so the demo queue shows acknowledgement clocks that are still running rather than all breached long ago.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils.dateparse import parse_datetime

from incidents import timeline
from incidents.models import Finding, Incident, Observable, Priority, Severity
from incidents.services import incident_open_idempotent
from playbooks.selectors import playbook_for_finding_type

FINDINGS_DIR = Path(__file__).resolve().parent / "findings"
DEMO_SOURCE = "demo"
DEMO_CLOCK = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# Reference: TRIAGE_GUIDE.md severity matrix (Critical → P1 … Low → P4).
PRIORITY_FOR_SEVERITY = {
    Severity.CRITICAL: Priority.P1,
    Severity.HIGH: Priority.P2,
    Severity.MEDIUM: Priority.P3,
    Severity.LOW: Priority.P4,
}
_TIMESTAMPS = (("createdAt",), ("updatedAt",), ("service", "eventFirstSeen"), ("service", "eventLastSeen"))


@dataclass(frozen=True)
class DemoFinding:
    finding_id: str
    finding_type: str
    account_id: str
    region: str
    cluster_name: str
    title: str
    description: str
    severity: float
    count: int
    first_seen: datetime
    last_seen: datetime | None
    created_at: datetime | None
    updated_at: datetime | None
    is_sample: bool
    observables: tuple[tuple[str, str], ...]
    raw: dict[str, Any]


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _redate(document: dict[str, Any], shift: timedelta) -> dict[str, Any]:
    """A copy of the finding with its ISO timestamps moved by `shift` (epoch-number fields are left alone)."""
    document = json.loads(json.dumps(document))
    for *parents, key in _TIMESTAMPS:
        holder = _dig(document, *parents) if parents else document
        when = _when(holder.get(key)) if isinstance(holder, dict) else None
        if when is not None:
            holder[key] = _iso(when + shift)
    return document


def _is_sample(service: dict[str, Any]) -> bool:
    # Sample findings carry `additionalInfo.sample: true` and/or `value` = '{"sample":true}' (DOMAIN.md §1.1).
    info = service.get("additionalInfo") or {}
    if info.get("sample") is True:
        return True
    try:
        value = json.loads(info.get("value") or "{}")
    except (TypeError, ValueError):
        return False
    return isinstance(value, dict) and value.get("sample") is True


def _observables(document: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    call = _dig(document, "service", "action", "kubernetesApiCallAction") or {}
    remote = call.get("remoteIpDetails") or {}
    user = _dig(document, "resource", "kubernetesDetails", "kubernetesUserDetails") or {}
    asn = str(_dig(remote, "organization", "asn") or "")
    found = [("ip", ip) for ip in [*(call.get("sourceIPs") or []), remote.get("ipAddressV4")] if ip]
    if asn and asn != "0":  # private addresses come with asn "0"
        found.append(("asn", f"AS{asn}"))
    found += [("k8s_user", user.get("username")), ("user_agent", call.get("userAgent"))]
    found.append(("cluster", _dig(document, "resource", "eksClusterDetails", "name")))
    unique = dict.fromkeys((kind, str(value)[:500]) for kind, value in found if value)
    return tuple(unique)


def demo_finding_parse(document: dict[str, Any]) -> DemoFinding:
    """Read the fields the demo needs from one wire-spelling finding."""
    service = document.get("service") or {}
    first_seen = _when(service.get("eventFirstSeen")) or _when(document.get("createdAt"))
    if first_seen is None:
        raise ValueError(f"demo finding {document.get('id')!r} has no eventFirstSeen or createdAt")
    return DemoFinding(
        finding_id=document["id"],
        finding_type=document["type"],
        account_id=document["accountId"],
        region=document["region"],
        cluster_name=_dig(document, "resource", "eksClusterDetails", "name") or "",
        title=document.get("title") or "",
        description=document.get("description") or "",
        severity=float(document["severity"]),
        count=int(service.get("count") or 1),
        first_seen=first_seen,
        last_seen=_when(service.get("eventLastSeen")),
        created_at=_when(document.get("createdAt")),
        updated_at=_when(document.get("updatedAt")),
        is_sample=_is_sample(service),
        observables=_observables(document),
        raw=document,
    )


def demo_findings_load(*, now: datetime, directory: Path = FINDINGS_DIR) -> list[DemoFinding]:
    """Every demo finding, in file-name order, re-dated so that DEMO_CLOCK falls on `now`."""
    shift = now - DEMO_CLOCK
    documents = [json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))]
    return [demo_finding_parse(_redate(document, shift)) for document in documents]


@transaction.atomic
def demo_finding_import(*, finding: DemoFinding) -> tuple[Incident, bool]:
    """Open the incident for one demo finding; a finding imported before gives its incident back untouched."""
    severity = Severity.from_guardduty(finding.severity)
    incident, created = incident_open_idempotent(
        source=DEMO_SOURCE,
        external_ref=finding.finding_id,
        title=f"{finding.finding_type} on {finding.cluster_name}",
        summary=finding.description,
        severity=severity,
        priority=PRIORITY_FOR_SEVERITY[severity],
        finding_type=finding.finding_type,
        cluster_name=finding.cluster_name,
        account_id=finding.account_id,
        region=finding.region,
        detected_at=finding.first_seen,
        playbook=playbook_for_finding_type(finding_type=finding.finding_type),
        actor=None,
    )
    if not created:
        return incident, False
    _finding_store(incident=incident, finding=finding)
    for kind, value in finding.observables:
        observable, _ = Observable.objects.get_or_create(kind=kind, value=value)
        observable.incidents.add(incident)
    timeline.event_add(
        incident=incident,
        kind=timeline.Kind.FINDING,
        summary=f"GuardDuty finding received: count {finding.count}",
        data={
            "finding_id": finding.finding_id,
            "type": finding.finding_type,
            "severity": finding.severity,
            "count": finding.count,
            "source": DEMO_SOURCE,
        },
    )
    return incident, True


def _finding_store(*, incident: Incident, finding: DemoFinding) -> Finding:
    row, _ = Finding.objects.update_or_create(
        account_id=finding.account_id,
        region=finding.region,
        finding_id=finding.finding_id,
        defaults={
            "incident": incident,
            "finding_type": finding.finding_type,
            "title": finding.title[:500],
            "description": finding.description,
            "severity": finding.severity,
            "count": finding.count,
            "first_seen": finding.first_seen,
            "last_seen": finding.last_seen,
            "gd_created_at": finding.created_at,
            "gd_updated_at": finding.updated_at,
            "is_sample": finding.is_sample,
            "cluster_name": finding.cluster_name,
            "raw": finding.raw,
        },
    )
    return row
