"""Demo findings for `make run`, fed through the real ingestion pipeline.

`manage.py seed_demo` calls this so that a machine with no AWS account shows a realistic queue. The
fictional findings in `incidents/demo/findings/*.json` (wire spelling, DOMAIN.md §1.4) are dated around
DEMO_CLOCK; on import every ISO timestamp moves by (now - DEMO_CLOCK), so acknowledgement clocks are
still running. They then go through `payload_receive` like any other delivery: stored, parsed,
ingested, each opening its incident from its playbook.
"""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from incidents.models import Finding, InboundPayload, Incident
from incidents.services.findings import IngestReport, payload_receive

FINDINGS_DIR = Path(__file__).resolve().parent / "findings"
DEMO_CLOCK = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_TIMESTAMPS = (("createdAt",), ("updatedAt",), ("service", "eventFirstSeen"), ("service", "eventLastSeen"))


def _redate(document: dict[str, Any], shift: timedelta) -> dict[str, Any]:
    """A copy of the finding with its ISO timestamps moved by `shift` (epoch-number fields stay)."""
    document = json.loads(json.dumps(document))
    for *parents, key in _TIMESTAMPS:
        holder = document
        for parent in parents:
            holder = holder.get(parent) or {}
        value = holder.get(key)
        when = parse_datetime(value) if isinstance(value, str) else None
        if when is not None:
            holder[key] = (when + shift).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return document


def demo_findings_load(*, now: datetime, directory: Path = FINDINGS_DIR) -> list[dict[str, Any]]:
    """Every demo finding, in file-name order, re-dated so that DEMO_CLOCK falls on `now`."""
    shift = now - DEMO_CLOCK
    return [_redate(json.loads(path.read_text()), shift) for path in sorted(directory.glob("*.json"))]


def demo_findings_import(*, now: datetime) -> IngestReport | None:
    """Ingest the demo findings not imported yet (re-dating a second time would look like new versions)."""
    documents = demo_findings_load(now=now)
    present = set(
        Finding.objects.filter(finding_id__in=[d["id"] for d in documents]).values_list("finding_id", flat=True)
    )
    fresh = [document for document in documents if document["id"] not in present]
    if not fresh:
        return None
    body = json.dumps(fresh).encode()
    return payload_receive(source=InboundPayload.Source.DEMO, body=body, meta={"files": str(FINDINGS_DIR)})


def demo_incidents() -> QuerySet[Incident]:
    return Incident.objects.filter(findings__last_payload__source=InboundPayload.Source.DEMO)
