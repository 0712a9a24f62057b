"""The evidence bundle: one zip a regulator can check without us.

    manifest.json        [{"path", "sha256", "size"}] for every other file in the zip
    evidence/<id>-<name> each piece of evidence, re-hashed while it is copied
    custody_log.json     every custody event of every piece, this export's included
    provenance.json      {evidence id: provenance} of acquired evidence (a query's engine, SQL, parameters …)
    timeline.json        the case timeline
    report.md            the post-incident report

Every file is hashed as it is written, and each piece of evidence must still match its recorded
SHA-256: a mismatch refuses the whole export (recorded on that piece's custody log, like a refused
download). The export appends an `exported` custody event to every piece and a timeline row with the
bundle's own SHA-256, in one transaction with the writing: a failed export leaves no record of one.
"""

import hashlib
import json
import re
import zipfile
from dataclasses import dataclass
from typing import IO, Any

from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from incidents import timeline
from incidents.errors import EvidenceIntegrityError
from incidents.models import CustodyEvent, Evidence, Incident, TimelineEvent
from incidents.services.evidence import CHUNK, _custody
from incidents.services.reports import report_data, report_incident_get, report_markdown


@dataclass(frozen=True)
class BundleResult:
    filename: str
    sha256: str
    size: int
    evidence_count: int


def bundle_filename(incident: Incident) -> str:
    return f"{incident.reference}-evidence-bundle.zip"


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:120] or "evidence"


class _Manifest:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.entries: list[dict[str, Any]] = []

    def write_bytes(self, path: str, data: bytes) -> None:
        self.archive.writestr(path, data)
        self.entries.append({"path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})

    def write_json(self, path: str, value: object) -> None:
        self.write_bytes(path, json.dumps(value, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False).encode())

    def copy_evidence(self, path: str, evidence: Evidence) -> str:
        """Copy the stored bytes into the zip, hashing them on the way; returns the observed SHA-256."""
        digest, size = hashlib.sha256(), 0
        try:
            with evidence.file.storage.open(str(evidence.file.name), "rb") as source:
                with self.archive.open(path, "w", force_zip64=True) as target:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        target.write(chunk)
        except FileNotFoundError:
            return "missing"
        self.entries.append({"path": path, "sha256": digest.hexdigest(), "size": size})
        return digest.hexdigest()


def evidence_bundle_export(
    *, incident_id: int, actor: User | None, out: IO[bytes], source_address: str | None = None, via: str = "web"
) -> BundleResult:
    """Write the bundle to `out` (seekable, readable: a temporary or a real file).

    `actor=None` is the command line, which sees every case; a user must be able to read the case.
    """
    incident = report_incident_get(user=actor, incident_id=incident_id)
    evidence = list(incident.evidence.order_by("created_at", "id"))
    try:
        return _export(incident=incident, evidence=evidence, actor=actor, out=out, address=source_address, via=via)
    except _Mismatch as mismatch:
        # Recorded after the export rolled back: the refusal itself is part of the chain of custody.
        item = mismatch.item
        _custody(
            evidence=item,
            action=CustodyEvent.Action.VERIFY_FAILED,
            actor=actor,
            address=source_address,
            sha256=mismatch.observed,
            detail="evidence bundle export refused",
        )
        raise EvidenceIntegrityError(
            f"Integrity check failed for {item.original_name}: stored SHA-256 is {mismatch.observed}, recorded "
            f"{item.sha256}. The bundle was not exported; tell the incident commander."
        ) from None


@transaction.atomic
def _export(
    *, incident: Incident, evidence: list[Evidence], actor: User | None, out: IO[bytes], address: str | None, via: str
) -> BundleResult:
    who = actor.get_username() if actor else "system"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        manifest = _Manifest(archive)
        for item in evidence:
            observed = manifest.copy_evidence(f"evidence/{item.pk}-{_safe_name(item.original_name)}", item)
            if observed != item.sha256:
                raise _Mismatch(item, observed)
        exported = [
            _custody(
                evidence=item,
                action=CustodyEvent.Action.EXPORTED,
                actor=actor,
                address=address,
                sha256=item.sha256,
                detail=f"evidence bundle {bundle_filename(incident)} ({via})",
            )
            for item in evidence
        ]
        manifest.write_json("custody_log.json", _custody_log(evidence))
        manifest.write_json("provenance.json", {str(item.pk): item.provenance for item in evidence if item.provenance})
        manifest.write_json("timeline.json", _timeline(incident))
        data = report_data(incident=incident, generated_by=f"{who} (evidence bundle)")
        manifest.write_bytes("report.md", report_markdown(data=data).encode())
        archive.writestr("manifest.json", json.dumps(manifest.entries, indent=2))
    sha256, size = _file_sha256(out)
    timeline.event_add(
        incident=incident,
        kind=timeline.Kind.EVIDENCE,
        actor=actor,
        summary=f"Evidence bundle exported by {who}: {len(evidence)} evidence file(s), bundle SHA-256 {sha256[:16]}…",
        data={
            "bundle": bundle_filename(incident),
            "sha256": sha256,
            "size": size,
            "evidence": [item.pk for item in evidence],
            "custody_events": [event.pk for event in exported],
            "via": via,
        },
    )
    return BundleResult(bundle_filename(incident), sha256, size, len(evidence))


class _Mismatch(Exception):
    def __init__(self, item: Evidence, observed: str) -> None:
        super().__init__(item.pk)
        self.item, self.observed = item, observed


def _custody_log(evidence: list[Evidence]) -> list[dict[str, Any]]:
    ids = [item.pk for item in evidence]
    events = CustodyEvent.objects.filter(evidence_id__in=ids).order_by("evidence_id", "at", "id")
    return [
        {
            "evidence": row["evidence_id"],
            "at": row["at"],
            "action": row["action"],
            "actor": row["actor__username"],
            "source_address": row["source_address"],
            "sha256": row["sha256"],
            "detail": row["detail"],
        }
        for row in events.values("evidence_id", "at", "action", "actor__username", "source_address", "sha256", "detail")
    ]


def _timeline(incident: Incident) -> dict[str, Any]:
    rows = (
        TimelineEvent.objects.filter(incident=incident)
        .order_by("occurred_at", "id")
        .values("id", "occurred_at", "recorded_at", "kind", "actor__username", "summary", "data")
    )
    return {"incident": incident.reference, "events": list(rows.iterator(chunk_size=2000))}


def _file_sha256(out: IO[bytes]) -> tuple[str, int]:
    out.flush()
    out.seek(0)
    digest, size = hashlib.sha256(), 0
    while chunk := out.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    out.seek(0)
    return digest.hexdigest(), size
