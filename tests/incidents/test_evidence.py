"""Evidence: hashed while written, size-limited, custody-logged, re-verified on download."""

import hashlib
import io
import os
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile, UploadedFile

from incidents.errors import EvidenceIntegrityError, EvidenceRejectedError, IncidentClosedError
from incidents.models import CustodyEvent, Evidence, Incident, Phase, TimelineEvent
from incidents.permissions import PermissionDeniedError
from incidents.services import (
    evidence_add,
    evidence_get_for_user,
    evidence_open_verified,
    evidence_record_view,
    evidence_verify,
    incident_set_restricted,
)

Action = CustodyEvent.Action
ADDRESS = "203.0.113.7"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def _add(incident: Incident, actor, data: bytes, name: str = "pod.log") -> Evidence:
    upload = SimpleUploadedFile(name, data, content_type="text/plain")
    return evidence_add(incident_id=incident.pk, actor=actor, upload=upload, source_address=ADDRESS)


def _custody(evidence: Evidence) -> list[tuple[str, str | None, str]]:
    return list(
        CustodyEvent.objects.filter(evidence=evidence)
        .order_by("at", "id")
        .values_list("action", "source_address", "sha256")
    )


def test_small_upload_is_hashed_stored_and_logged(
    incident, responder, events, media_root, django_capture_on_commit_callbacks
) -> None:
    # given
    data = b"2025-03-01T10:02:00Z exec into api-7f by system:anonymous\n" * 100
    upload = SimpleUploadedFile("../../etc/kubectl-audit.log", data, content_type="text/plain")

    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        evidence = evidence_add(
            incident_id=incident.pk, actor=responder, upload=upload, description=" audit ", source_address=ADDRESS
        )

    # then: the row
    stored = Evidence.objects.get(pk=evidence.pk)
    digest = hashlib.sha256(data).hexdigest()
    assert stored.sha256 == digest
    assert stored.size == len(data)
    assert stored.original_name == "kubectl-audit.log"
    assert stored.content_type == "text/plain"
    assert stored.description == "audit"
    assert stored.uploaded_by == responder
    # the bytes, under a server-side name inside MEDIA_ROOT
    path = Path(stored.file.path)
    assert path.is_relative_to(media_root / "evidence" / str(incident.pk))
    assert "kubectl-audit" not in path.name
    assert path.read_bytes() == data
    # custody and timeline
    acquired = CustodyEvent.objects.get(evidence=stored)
    assert (acquired.action, acquired.actor, acquired.source_address, acquired.sha256) == (
        Action.ACQUIRED,
        responder,
        ADDRESS,
        digest,
    )
    (event,) = events(incident, TimelineEvent.Kind.EVIDENCE)
    assert event.actor == responder
    assert event.data == {"evidence": stored.pk, "sha256": digest, "size": len(data), "name": "kubectl-audit.log"}
    # the background re-verification is queued after commit, once
    assert len(callbacks) == 1


def test_large_upload_spooled_to_disk_is_hashed_over_every_byte(incident, responder, media_root) -> None:
    # given: more than 3 MiB, as Django hands over uploads above FILE_UPLOAD_MAX_MEMORY_SIZE
    data = os.urandom(3 * 1024 * 1024 + 12_345)
    upload = TemporaryUploadedFile("memory.dump", "application/octet-stream", len(data), None)
    upload.write(data)
    upload.flush()
    upload.seek(0)

    # when
    try:
        evidence = evidence_add(incident_id=incident.pk, actor=responder, upload=upload, source_address=ADDRESS)
    finally:
        upload.close()

    # then
    stored = Evidence.objects.get(pk=evidence.pk)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert Path(stored.file.path).read_bytes() == data
    assert _custody(stored) == [(Action.ACQUIRED, ADDRESS, stored.sha256)]


def test_oversize_upload_is_rejected_and_nothing_is_stored(incident, responder, settings, media_root, events) -> None:
    # given
    settings.WATCHPOST_EVIDENCE_MAX_BYTES = 1024
    before = len(events(incident))

    # when
    with pytest.raises(EvidenceRejectedError, match="limited"):
        _add(incident, responder, b"x" * 1025)

    # then
    assert not Evidence.objects.exists()
    assert not CustodyEvent.objects.exists()
    assert len(events(incident)) == before
    assert _stored_files(media_root) == []


def test_upload_larger_than_its_declared_size_is_rejected_and_nothing_is_stored(
    incident, responder, settings, media_root, events
) -> None:
    """The limit holds on the bytes actually read, not only on the size the client declared."""
    # given: a client that declares 100 bytes and sends 4 KiB
    settings.WATCHPOST_EVIDENCE_MAX_BYTES = 1024
    upload = UploadedFile(io.BytesIO(b"y" * 4096), name="liar.bin", content_type="application/octet-stream", size=100)
    before = len(events(incident))

    # when
    with pytest.raises(EvidenceRejectedError):
        evidence_add(incident_id=incident.pk, actor=responder, upload=upload, source_address=ADDRESS)

    # then
    assert not Evidence.objects.exists()
    assert len(events(incident)) == before
    assert _stored_files(media_root) == []


def test_upload_of_exactly_the_limit_is_accepted(incident, responder, settings) -> None:
    settings.WATCHPOST_EVIDENCE_MAX_BYTES = 1024

    evidence = _add(incident, responder, b"z" * 1024)

    assert Evidence.objects.get(pk=evidence.pk).size == 1024


def test_empty_upload_is_rejected(incident, responder, media_root) -> None:
    with pytest.raises(EvidenceRejectedError, match="empty"):
        _add(incident, responder, b"")

    assert not Evidence.objects.exists()
    assert _stored_files(media_root) == []


def test_viewer_cannot_add_evidence(incident, viewer, media_root) -> None:
    with pytest.raises(PermissionDeniedError):
        _add(incident, viewer, b"data")

    assert not Evidence.objects.exists()
    assert _stored_files(media_root) == []


def test_evidence_on_a_closed_incident_is_refused(incident, responder, media_root) -> None:
    Incident.objects.filter(pk=incident.pk).update(phase=Phase.CLOSED)

    with pytest.raises(IncidentClosedError):
        _add(incident, responder, b"data")

    assert not Evidence.objects.exists()
    assert _stored_files(media_root) == []


def test_good_download_rehashes_and_records_downloaded_with_the_address(incident, responder, viewer) -> None:
    # given
    data = b"pcap bytes" * 1000
    evidence = _add(incident, responder, data)

    # when: a viewer may read evidence
    returned, handle = evidence_open_verified(evidence_id=evidence.pk, actor=viewer, source_address="198.51.100.20")
    try:
        served = handle.read()
    finally:
        handle.close()

    # then
    assert returned.pk == evidence.pk
    assert served == data
    downloaded = CustodyEvent.objects.get(evidence=evidence, action=Action.DOWNLOADED)
    assert downloaded.actor == viewer
    assert downloaded.source_address == "198.51.100.20"
    assert downloaded.sha256 == hashlib.sha256(data).hexdigest()


def test_tampered_file_is_refused_on_download_and_the_failure_is_logged(incident, responder) -> None:
    # given: the stored bytes are changed on disk after upload
    evidence = _add(incident, responder, b"original evidence")
    Path(evidence.file.path).write_bytes(b"tampered evidence")

    # when
    with pytest.raises(EvidenceIntegrityError) as caught:
        evidence_open_verified(evidence_id=evidence.pk, actor=responder, source_address=ADDRESS)

    # then
    tampered_hash = hashlib.sha256(b"tampered evidence").hexdigest()
    assert tampered_hash in str(caught.value)
    assert evidence.sha256 in str(caught.value)
    assert _custody(evidence) == [
        (Action.ACQUIRED, ADDRESS, evidence.sha256),
        (Action.VERIFY_FAILED, ADDRESS, tampered_hash),
    ]
    assert Evidence.objects.get(pk=evidence.pk).sha256 == hashlib.sha256(b"original evidence").hexdigest()


def test_missing_file_is_refused_on_download(incident, responder) -> None:
    evidence = _add(incident, responder, b"original evidence")
    Path(evidence.file.path).unlink()

    with pytest.raises(EvidenceIntegrityError):
        evidence_open_verified(evidence_id=evidence.pk, actor=responder, source_address=ADDRESS)

    assert _custody(evidence)[-1] == (Action.VERIFY_FAILED, ADDRESS, "missing")


def test_verify_records_verified_for_intact_evidence(incident, responder) -> None:
    evidence = _add(incident, responder, b"intact")

    assert evidence_verify(evidence_id=evidence.pk) is True

    last = CustodyEvent.objects.filter(evidence=evidence).latest("id")
    assert (last.action, last.actor, last.sha256) == (Action.VERIFIED, None, evidence.sha256)


def test_verify_records_verify_failed_for_tampered_evidence(incident, responder) -> None:
    evidence = _add(incident, responder, b"intact")
    Path(evidence.file.path).write_bytes(b"changed")

    assert evidence_verify(evidence_id=evidence.pk) is False

    last = CustodyEvent.objects.filter(evidence=evidence).latest("id")
    assert (last.action, last.sha256) == (Action.VERIFY_FAILED, hashlib.sha256(b"changed").hexdigest())


def test_view_is_recorded_on_the_custody_log(incident, responder, viewer) -> None:
    evidence = _add(incident, responder, b"screenshot")

    evidence_record_view(
        evidence=evidence_get_for_user(user=viewer, evidence_id=evidence.pk), actor=viewer, source_address=ADDRESS
    )

    assert _custody(evidence)[-1] == (Action.VIEWED, ADDRESS, evidence.sha256)


def test_evidence_of_a_restricted_incident_is_not_served_to_others(incident, manager, responder, other_responder):
    # given
    evidence = _add(incident, responder, b"secret")
    incident_set_restricted(incident_id=incident.pk, actor=manager, restricted=True)

    # when / then
    with pytest.raises(Evidence.DoesNotExist):
        evidence_open_verified(evidence_id=evidence.pk, actor=other_responder, source_address=ADDRESS)
    assert [action for action, _, _ in _custody(evidence)] == [Action.ACQUIRED]


@pytest.mark.parametrize(
    ("name", "data"),
    [("shot.png", b"<html><script>alert(1)</script>"), ("report.pdf", b"MZ\x90\x00"), ("capture.pcap", b"GET / HTTP")],
)
def test_a_file_whose_content_contradicts_its_extension_is_refused(incident, responder, media_root, name, data):
    upload = SimpleUploadedFile(name, data)
    with pytest.raises(EvidenceRejectedError, match=f"not a .{name.rsplit('.', 1)[1]} file"):
        evidence_add(incident_id=incident.pk, actor=responder, upload=upload)
    assert not Evidence.objects.exists() and _stored_files(media_root) == []


def test_matching_signatures_and_unsigned_types_are_kept(incident, responder, media_root) -> None:
    files = (("shot.png", b"\x89PNG\r\n\x1a\n" + b"0" * 8), ("audit.log", b"<html>"), ("x.gz", b"\x1f\x8b\x08"))
    for name, data in files:
        evidence_add(incident_id=incident.pk, actor=responder, upload=SimpleUploadedFile(name, data))
    assert Evidence.objects.count() == 3


def test_a_path_traversal_name_is_stored_under_a_server_side_name(incident, responder, media_root) -> None:
    upload = SimpleUploadedFile("../../etc/passwd", b"root:x:0:0")
    evidence = evidence_add(incident_id=incident.pk, actor=responder, upload=upload)
    assert evidence.original_name == "passwd"
    assert ".." not in evidence.file.name and Path(evidence.file.path).resolve().is_relative_to(media_root.resolve())
