"""Post-incident: lessons learned, follow-ups, the report (Markdown and PDF) and the evidence bundle."""

import hashlib
import io
import json
import zipfile
from datetime import date
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from pypdf import PdfReader

from incidents.errors import EvidenceIntegrityError, ValidationError
from incidents.models import CustodyEvent, Evidence, Incident, TimelineEvent
from incidents.permissions import PermissionDeniedError
from incidents.services import evidence_add, incident_change_phase
from incidents.services.bundle import evidence_bundle_export
from incidents.services.reports import report_data, report_markdown, report_pdf
from incidents.services.review import follow_up_add, follow_up_set_done, lessons_save
from playbooks.services import checklist_item_complete, checklist_item_decide

pytestmark = pytest.mark.django_db
Kind = TimelineEvent.Kind


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path / "media"


@pytest.fixture
def worked(incident: Incident, responder, checklist_item) -> Incident:
    """A case with a ticked step, a decision, a follow-up and two pieces of evidence."""
    checklist_item_complete(
        item_id=checklist_item(incident, "p1-confirm").pk, actor=responder, comment="SEC-1 | raised"
    )
    checklist_item_decide(item_id=checklist_item(incident, "p1-decide").pk, actor=responder, option_id="unauthorized")
    for name, data in (("audit.log", b"GET /api anonymous\n" * 50), ("rbac-before.json", b'{"subjects": []}')):
        upload = SimpleUploadedFile(name, data, content_type="text/plain")
        evidence_add(incident_id=incident.pk, actor=responder, upload=upload, source_address="203.0.113.7")
    return incident


def test_lessons_learned_are_saved_with_a_timeline_row_per_change(incident, responder, viewer, events) -> None:
    lessons_save(incident_id=incident.pk, actor=responder, what_happened="Anonymous discovery", root_cause="")
    lessons = lessons_save(
        incident_id=incident.pk, actor=responder, what_happened="Anonymous discovery", root_cause="RBAC"
    )
    lessons_save(incident_id=incident.pk, actor=responder, what_happened="Anonymous discovery", root_cause="RBAC")

    assert lessons.version == 2 and lessons.root_cause == "RBAC"
    assert [e.summary for e in events(incident, Kind.REVIEW)] == [
        "Lessons learned written: what happened",
        "Lessons learned updated: root cause",
    ]
    with pytest.raises(PermissionDeniedError):
        lessons_save(incident_id=incident.pk, actor=viewer, what_worked="x")


def test_follow_up_actions_have_owners_and_due_dates(incident, responder, manager, events) -> None:
    action = follow_up_add(
        incident_id=incident.pk,
        actor=responder,
        description="Alert on anonymous binding",
        owner_id=manager.pk,
        due_on=date(2026, 12, 15),
    )
    follow_up_set_done(incident_id=incident.pk, follow_up_id=action.pk, actor=manager, done=True)

    action.refresh_from_db()
    assert action.owner == manager and action.done_at is not None
    summaries = [e.summary for e in events(incident, Kind.REVIEW)]
    assert summaries[0] == "Follow-up action: Alert on anonymous binding (manager, due 2026-12-15)"
    assert summaries[1].startswith("Follow-up action done")
    with pytest.raises(ValidationError):
        follow_up_add(incident_id=incident.pk, actor=responder, description=" ", owner_id=None, due_on=None)


def test_markdown_report_has_every_section_with_who_and_when(worked, responder) -> None:
    lessons_save(incident_id=worked.pk, actor=responder, root_cause="system:unauthenticated bound to discovery")

    text = report_markdown(data=report_data(incident=worked, generated_by="tester"))

    headings = ["## Header", "## Metrics", "## Lessons learned", "## Checklist", "## Decisions", "## RBAC before/after"]
    headings += ["## Queries", "## Evidence", "### Chain of custody", "## Timeline"]
    for heading in headings:
        assert heading in text, heading
    assert f"# {worked.reference} {worked.title}" in text
    assert "| Done | responder |" in text and "SEC-1 \\| raised" in text  # pipes escaped in cells
    assert "Not valid → part-2" in text
    assert "No RBAC inspection or remediation was recorded." in text
    for evidence in Evidence.objects.filter(incident=worked):
        assert evidence.sha256 in text
    assert "system:unauthenticated bound to discovery" in text


def test_pdf_report_holds_the_title_and_the_checklist(worked) -> None:
    pdf = report_pdf(data=report_data(incident=worked, generated_by="tester"))

    assert pdf.startswith(b"%PDF")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert worked.title in text
    assert "Checklist" in text and "P1 confirm" in text and "Acquire, preserve, document evidence" in text


def test_bundle_manifest_hashes_check_out_and_the_export_is_on_the_custody_log(worked, manager, events) -> None:
    out = io.BytesIO()

    result = evidence_bundle_export(incident_id=worked.pk, actor=manager, out=out, source_address="198.51.100.1")

    archive = zipfile.ZipFile(io.BytesIO(out.getvalue()))
    manifest = json.loads(archive.read("manifest.json"))
    paths = {entry["path"] for entry in manifest}
    assert {"custody_log.json", "timeline.json", "report.md"} <= paths
    assert set(archive.namelist()) == paths | {"manifest.json"}
    for entry in manifest:  # what a regulator does: re-hash every file
        data = archive.read(entry["path"])
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
    evidence = list(Evidence.objects.filter(incident=worked).order_by("pk"))
    for item in evidence:
        (entry,) = [e for e in manifest if e["path"].startswith(f"evidence/{item.pk}-")]
        assert entry["sha256"] == item.sha256
        (exported,) = CustodyEvent.objects.filter(evidence=item, action=CustodyEvent.Action.EXPORTED)
        assert exported.actor == manager and exported.source_address == "198.51.100.1"
    log = json.loads(archive.read("custody_log.json"))
    assert [row["action"] for row in log].count("exported") == 2  # the export is in its own log
    assert result.sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    (event,) = [e for e in events(worked, Kind.EVIDENCE) if "bundle" in e.summary]
    assert event.data["sha256"] == result.sha256 and event.actor == manager


def test_bundle_refuses_tampered_evidence_and_records_the_refusal(worked, manager, media_root) -> None:
    item = Evidence.objects.filter(incident=worked).first()
    Path(item.file.path).write_bytes(b"tampered")

    with pytest.raises(EvidenceIntegrityError, match="Integrity check failed"):
        evidence_bundle_export(incident_id=worked.pk, actor=manager, out=io.BytesIO())

    assert not CustodyEvent.objects.filter(action=CustodyEvent.Action.EXPORTED).exists()
    refused = CustodyEvent.objects.get(evidence=item, action=CustodyEvent.Action.VERIFY_FAILED)
    assert refused.sha256 == hashlib.sha256(b"tampered").hexdigest()
    assert not TimelineEvent.objects.filter(incident=worked, summary__contains="bundle").exists()


def test_bundle_of_an_invisible_case_is_refused(worked, manager, other_responder) -> None:
    from incidents.services import incident_set_restricted

    incident_set_restricted(incident_id=worked.pk, actor=manager, restricted=True)
    with pytest.raises(Incident.DoesNotExist):
        evidence_bundle_export(incident_id=worked.pk, actor=other_responder, out=io.BytesIO())


def test_export_commands_write_the_report_and_the_bundle(worked, responder, tmp_path) -> None:
    incident_change_phase(incident_id=worked.pk, actor=responder, to="acknowledged")
    md, pdf, bundle = tmp_path / "r.md", tmp_path / "r.pdf", tmp_path / "b.zip"

    call_command("export_report", str(worked.pk), "--format", "md", "--out", str(md), stdout=io.StringIO())
    call_command("export_report", str(worked.pk), "--format", "pdf", "--out", str(pdf), stdout=io.StringIO())
    call_command("export_bundle", str(worked.pk), "--out", str(bundle), stdout=io.StringIO())

    assert worked.title in md.read_text() and pdf.read_bytes().startswith(b"%PDF")
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    assert len([e for e in manifest if e["path"].startswith("evidence/")]) == 2
    assert CustodyEvent.objects.filter(action="exported", actor=None, detail__contains="manage.py").count() == 2
    with pytest.raises(CommandError):
        call_command("export_bundle", "999999", "--out", str(tmp_path / "x.zip"), stdout=io.StringIO())
    assert not (tmp_path / "x.zip").exists()


def test_report_lists_rbac_and_query_runs_with_their_evidence_hashes(worked, responder, manager) -> None:
    from playbooks.models import ActionRun

    snapshot = Evidence.objects.filter(incident=worked, original_name="rbac-before.json").get()
    ActionRun.objects.create(
        incident=worked, action="rbac.remediate", status=ActionRun.Status.SUCCEEDED, requested_by=responder,
        approved_by=manager, params={"remove": ["system:unauthenticated"]},
        result={"removed": ["system:discovery"], "evidence_ids": [snapshot.pk]},
    )  # fmt: skip
    ActionRun.objects.create(
        incident=worked, action="query.run", status=ActionRun.Status.FAILED, requested_by=responder,
        params={"template": "anonymous-calls", "days": 90}, error="Athena: access denied",
    )  # fmt: skip

    data = report_data(incident=worked, generated_by="tester")
    text = report_markdown(data=data)

    assert [entry.action for entry in data.rbac] == ["rbac.remediate"]
    assert [entry.action for entry in data.queries] == ["query.run"]
    rbac = text.split("## RBAC before/after")[1].split("## Queries")[0]
    assert "system:discovery" in rbac and "approved by: `manager`" in rbac
    assert f"evidence rbac-before.json: SHA-256 `{snapshot.sha256}`" in rbac
    queries = text.split("## Queries")[1].split("## Evidence")[0]
    assert "anonymous-calls" in queries and "Athena: access denied" in queries
    pdf_text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(report_pdf(data=data))).pages)
    assert "rbac.remediate" in pdf_text and snapshot.sha256[:20] in pdf_text.replace("\n", "")
