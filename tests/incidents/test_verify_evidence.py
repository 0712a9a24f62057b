"""`manage.py verify_evidence`: a flipped byte in stored evidence is found, reported and logged."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from incidents.models import CustodyEvent, Evidence
from incidents.services import evidence_add

pytestmark = pytest.mark.django_db
Action = CustodyEvent.Action


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _add(incident, actor, data: bytes, name: str) -> Evidence:
    return evidence_add(incident_id=incident.pk, actor=actor, upload=SimpleUploadedFile(name, data))


def test_intact_evidence_passes_and_each_check_is_on_the_custody_log(incident, responder) -> None:
    # given
    first = _add(incident, responder, b"kubectl audit line\n" * 50, "audit.log")
    second = _add(incident, responder, b'{"kind": "ClusterRoleBinding"}', "binding.json")
    out = StringIO()
    # when
    call_command("verify_evidence", stdout=out, stderr=StringIO())
    # then
    assert "2 evidence file(s) checked, 0 mismatch(es)." in out.getvalue()
    for evidence in (first, second):
        row = CustodyEvent.objects.get(evidence=evidence, action=Action.VERIFIED)
        assert row.sha256 == evidence.sha256 and row.detail == "verify_evidence command" and row.actor is None


def test_a_flipped_byte_is_reported_recorded_and_fails_the_command(incident, responder, media_root) -> None:
    # given: two files; one byte of one of them is flipped in storage
    kept = _add(incident, responder, b"A" * 4096, "kept.bin")
    altered = _add(incident, responder, b"B" * 4096, "altered.bin")
    path = media_root / altered.file.name
    data = bytearray(path.read_bytes())
    data[2048] ^= 0x01
    path.write_bytes(bytes(data))
    err = StringIO()
    # when
    with pytest.raises(CommandError, match="1 evidence file"):
        call_command("verify_evidence", stdout=StringIO(), stderr=err)
    # then: exactly that file is flagged, with the hash observed, and the intact one verified
    assert f"MISMATCH evidence {altered.pk} (altered.bin)" in err.getvalue()
    assert kept.original_name not in err.getvalue()
    failed = CustodyEvent.objects.get(evidence=altered, action=Action.VERIFY_FAILED)
    assert failed.sha256 != altered.sha256 and len(failed.sha256) == 64
    assert CustodyEvent.objects.filter(evidence=kept, action=Action.VERIFIED).count() == 1
    assert not CustodyEvent.objects.filter(evidence=kept, action=Action.VERIFY_FAILED).exists()


def test_a_missing_file_is_a_mismatch(incident, responder, media_root) -> None:
    evidence = _add(incident, responder, b"gone soon", "gone.txt")
    (media_root / evidence.file.name).unlink()
    with pytest.raises(CommandError):
        call_command("verify_evidence", stdout=StringIO(), stderr=StringIO())
    assert CustodyEvent.objects.get(evidence=evidence, action=Action.VERIFY_FAILED).sha256 == "missing"
