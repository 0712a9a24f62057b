"""Evidence: hashed while written, immutable afterwards, every access on the custody log.

Stored through Django's storage API (local disk by default, S3 through django-storages), under a
server-side name. A download re-hashes the stored bytes and refuses on mismatch.
"""

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from incidents import outbound, permissions, timeline
from incidents.errors import EvidenceIntegrityError, EvidenceRejectedError
from incidents.models import CustodyEvent, Evidence, Incident
from incidents.selectors import incident_queryset_for_user
from incidents.services.audit import CUSTODY, chain_append, custody_fields
from incidents.services.incidents import _locked, _require_open

CHUNK = 1024 * 1024


class _HashingFile(File):  # type: ignore[type-arg]
    """Hashes exactly the bytes the storage backend reads, so the hash describes what was written."""

    DEFAULT_CHUNK_SIZE = CHUNK  # Django's 64 KiB means 16 times the Python calls for a large result

    def __init__(self, file: IO[bytes], *, name: str, max_bytes: int) -> None:
        super().__init__(file, name=name)
        self._source = file
        self.max_bytes = max_bytes
        self._reset()

    def _reset(self) -> None:
        self.digest = hashlib.sha256()
        self.count = 0

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset == 0 and whence == 0:
            self._reset()  # the backend starts over (Django's chunks() does): so do we
        return self._source.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self.digest.update(data)
        self.count += len(data)
        if self.count > self.max_bytes:
            raise EvidenceRejectedError(_too_large_message(self.max_bytes))
        return data


def _too_large_message(max_bytes: int) -> str:
    return f"Evidence is limited to {max_bytes / 1024 / 1024:.0f} MiB per file (WATCHPOST_EVIDENCE_MAX_BYTES)."


def file_sha256(file: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := file.read(CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


# What a file must start with when its name claims one of these types (S9): a ".png" that is really
# HTML is refused rather than stored under a name that lies. Other extensions (logs, JSON, YAML, …)
# carry no reliable signature and are kept as they are; downloads are always attachments anyway.
MAGIC: dict[str, tuple[bytes, ...]] = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "pdf": (b"%PDF-",),
    "zip": (b"PK\x03\x04", b"PK\x05\x06"),
    "gz": (b"\x1f\x8b",),
    "pcap": (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"),
    "pcapng": (b"\x0a\x0d\x0d\x0a",),
}


def _check_magic(name: str, upload: UploadedFile) -> None:
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    signatures = MAGIC.get(extension)
    if not signatures:
        return
    head = upload.read(16)
    upload.seek(0)
    if not any(head.startswith(signature) for signature in signatures):
        raise EvidenceRejectedError(f"{name}: the content is not a .{extension} file; rename it or upload the real one")


def _custody(
    *,
    evidence: Evidence,
    action: str,
    actor: User | None,
    address: str | None,
    sha256: str,
    detail: str = "",
) -> CustodyEvent:
    event = CustodyEvent(
        evidence=evidence, action=action, actor=actor, source_address=address, sha256=sha256, detail=detail[:300]
    )
    chain_append(chain=CUSTODY, row=event, fields=custody_fields(event))
    return event


def evidence_add(
    *,
    incident_id: int,
    actor: User,
    upload: UploadedFile,
    description: str = "",
    source_address: str | None = None,
    acquired_by: str = "uploaded",  # how it was acquired, on the custody log: an upload, or an action run
) -> Evidence:
    permissions.require(permissions.can_work(actor), "Viewers cannot add evidence.")
    max_bytes = settings.WATCHPOST_EVIDENCE_MAX_BYTES
    if upload.size is not None and upload.size > max_bytes:
        raise EvidenceRejectedError(_too_large_message(max_bytes))
    if not upload.size:
        raise EvidenceRejectedError("The file is empty.")
    name = (upload.name or "evidence").replace("\\", "/").rsplit("/", 1)[-1][:255] or "evidence"
    _check_magic(name, upload)
    with transaction.atomic():
        incident = _locked(incident_id=incident_id, actor=actor)
        _require_open(incident)
        assert upload.file is not None  # an UploadedFile always wraps an open file
        hashing = _HashingFile(upload.file, name=name, max_bytes=max_bytes)
        evidence = Evidence(
            incident=incident,
            original_name=name,
            content_type=(upload.content_type or "")[:100],
            description=description.strip(),
            uploaded_by=actor,
            size=0,
            sha256="",
        )
        storage = evidence.file.storage
        target = evidence.file.field.generate_filename(evidence, name)  # a fresh uuid path
        try:
            evidence.file.name = storage.save(target, hashing, max_length=evidence.file.field.max_length)
            evidence.sha256, evidence.size = hashing.digest.hexdigest(), hashing.count
            evidence.save()
            _custody(
                evidence=evidence,
                action=CustodyEvent.Action.ACQUIRED,
                actor=actor,
                address=source_address,
                sha256=evidence.sha256,
                detail=acquired_by,
            )
            timeline.event_add(
                incident=incident,
                kind=timeline.Kind.EVIDENCE,
                actor=actor,
                summary=f"Evidence added: {name} (SHA-256 {evidence.sha256[:16]}…)",
                data={"evidence": evidence.pk, "sha256": evidence.sha256, "size": evidence.size, "name": name},
            )
            outbound.evidence_added(incident=incident, actor=actor, evidence=evidence)
        except Exception:
            # No orphan when the write or the row fails; this also removes a partly written file.
            if storage.exists(target):
                storage.delete(target)
            raise
        transaction.on_commit(lambda: _enqueue_verify(evidence.pk))
    return evidence


def evidence_acquire(
    *,
    incident_id: int,
    actor: User | None,
    stream: IO[bytes],
    name: str,
    content_type: str,
    description: str,
    provenance: dict[str, Any],
    max_bytes: int,
    describe: Callable[[Evidence], tuple[str, dict[str, Any]]],
    inspect: Callable[[Evidence], None] | None = None,
) -> Evidence:
    """Evidence the app acquires itself (a query result …), streamed from `stream` and hashed as written.

    The bytes are written before the transaction, so a long stream never holds the incident's row
    lock; the row, its ACQUIRED custody event and the timeline event then commit together, and the
    file is removed if they do not. `inspect(evidence)` runs once the bytes are stored (file name,
    hash and size set), still outside the transaction: a long read of the stored file (the analysis
    of a query result) holds no lock either. `describe(evidence)` then runs inside it: it may complete
    `evidence.provenance` and returns the timeline summary and data.
    """
    incident = Incident.objects.get(pk=incident_id)
    _require_open(incident)
    hashing = _HashingFile(stream, name=name, max_bytes=max_bytes)
    evidence = Evidence(incident=incident, original_name=name[:255], content_type=content_type[:100], size=0)
    storage = evidence.file.storage
    target = evidence.file.field.generate_filename(evidence, name)
    saved = ""
    try:
        saved = storage.save(target, hashing, max_length=evidence.file.field.max_length)
        evidence.file.name = saved
        evidence.sha256, evidence.size = hashing.digest.hexdigest(), hashing.count
        if inspect is not None:
            inspect(evidence)
        with transaction.atomic():
            incident = _locked(incident_id=incident_id, actor=None)
            _require_open(incident)
            evidence.description, evidence.uploaded_by, evidence.provenance = description, actor, provenance
            summary, data = describe(evidence)
            evidence.save()
            _custody(
                evidence=evidence,
                action=CustodyEvent.Action.ACQUIRED,
                actor=actor,
                address=None,
                sha256=evidence.sha256,
                detail=str(provenance.get("engine", "acquired")),
            )
            timeline.event_add(
                incident=incident,
                kind=timeline.Kind.EVIDENCE,
                actor=actor,
                summary=summary,
                data={"evidence": evidence.pk, "sha256": evidence.sha256, "size": evidence.size, "name": name} | data,
            )
            transaction.on_commit(lambda: _enqueue_verify(evidence.pk))
    except BaseException:
        # Also a partly written file: the stream failed or went over the size limit.
        for leftover in {saved, target} - {""}:
            if storage.exists(leftover):
                storage.delete(leftover)
        raise
    return evidence


def _enqueue_verify(evidence_id: int) -> None:
    from incidents.tasks import evidence_verify_task

    evidence_verify_task.delay(evidence_id)


def evidence_get_for_user(*, user: User, evidence_id: int) -> Evidence:
    return Evidence.objects.select_related("incident").get(
        pk=evidence_id, incident__in=incident_queryset_for_user(user)
    )


def evidence_record_view(*, evidence: Evidence, actor: User, source_address: str | None) -> None:
    _custody(
        evidence=evidence,
        action=CustodyEvent.Action.VIEWED,
        actor=actor,
        address=source_address,
        sha256=evidence.sha256,
    )


def _stored_sha256(evidence: Evidence) -> str:
    """The hash of the bytes in storage now, or "missing" when the file is gone."""
    try:
        with evidence.file.storage.open(str(evidence.file.name), "rb") as stored:
            return file_sha256(stored)
    except FileNotFoundError:
        return "missing"


def evidence_open_verified(*, evidence_id: int, actor: User, source_address: str | None) -> tuple[Evidence, IO[bytes]]:
    """Re-hash the stored bytes; on a match log the download and return the open file."""
    evidence = evidence_get_for_user(user=actor, evidence_id=evidence_id)
    observed = _stored_sha256(evidence)
    if observed != evidence.sha256:
        # Committed on its own: the refusal itself is part of the chain of custody.
        _custody(
            evidence=evidence,
            action=CustodyEvent.Action.VERIFY_FAILED,
            actor=actor,
            address=source_address,
            sha256=observed,
            detail="download refused",
        )
        raise EvidenceIntegrityError(
            f"Integrity check failed for {evidence.original_name}: stored SHA-256 is {observed}, "
            f"recorded {evidence.sha256}. The file was not served; tell the incident commander."
        )
    _custody(
        evidence=evidence, action=CustodyEvent.Action.DOWNLOADED, actor=actor, address=source_address, sha256=observed
    )
    return evidence, evidence.file.storage.open(str(evidence.file.name), "rb")


def evidence_verify(*, evidence_id: int) -> bool:
    """Background re-verification (worker): records the result either way."""
    return _verify(Evidence.objects.get(pk=evidence_id), detail="worker re-hash").ok


@dataclass(frozen=True)
class EvidenceCheck:
    evidence_id: int
    incident_id: int
    name: str
    recorded: str
    observed: str  # the hash of the stored bytes now, or "missing"

    @property
    def ok(self) -> bool:
        return self.observed == self.recorded


def _verify(evidence: Evidence, *, detail: str) -> EvidenceCheck:
    check = EvidenceCheck(
        evidence_id=evidence.pk,
        incident_id=evidence.incident_id,
        name=evidence.original_name,
        recorded=evidence.sha256,
        observed=_stored_sha256(evidence),
    )
    action = CustodyEvent.Action.VERIFIED if check.ok else CustodyEvent.Action.VERIFY_FAILED
    _custody(evidence=evidence, action=action, actor=None, address=None, sha256=check.observed, detail=detail)
    return check


def evidence_verify_all(*, detail: str = "verify_evidence") -> Iterator[EvidenceCheck]:
    """Re-hash every stored file, oldest first; each result goes on that evidence's custody log."""
    for evidence in Evidence.objects.order_by("pk").iterator(chunk_size=500):
        yield _verify(evidence, detail=detail)
