"""API v1 sub-resources: checklist, notes, evidence with custody, timeline with since=, ticket events."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from incidents.models import CustodyEvent, Evidence, Note, TimelineEvent
from playbooks.models import ChecklistItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def base(incident) -> str:
    return f"/api/v1/incidents/{incident.pk}"


def test_checklist_tick_untick_and_skip_with_a_comment(api, responder, incident, base, checklist_item) -> None:
    client = api(responder, ["incidents:read", "incidents:write"])
    items = client.get(f"{base}/checklist/").json()
    item = next(i for i in items if i["step_id"] == "p1-confirm")
    ticked = client.post(
        f"{base}/checklist/{item['id']}/tick/", {"comment": "confirmed"}, content_type="application/json"
    )
    assert ticked.status_code == 200 and ticked.json()["status"] == "done" and ticked.json()["done_by"] == "responder"
    untick = client.post(f"{base}/checklist/{item['id']}/untick/", {}, content_type="application/json")
    assert untick.json()["status"] == "todo"
    no_reason = client.post(f"{base}/checklist/{item['id']}/skip/", {}, content_type="application/json")
    assert no_reason.status_code == 422 and "why" in no_reason.json()["detail"]
    skipped = client.post(f"{base}/checklist/{item['id']}/skip/", {"comment": "n/a"}, content_type="application/json")
    assert skipped.json()["status"] == "skipped" and checklist_item(incident, "p1-confirm").comment == "n/a"
    assert TimelineEvent.objects.filter(incident=incident, kind="checklist").count() == 3


def test_decide_picks_an_option(api, responder, incident, base, checklist_item) -> None:
    item = checklist_item(incident, "p1-decide")
    response = api(responder).post(
        f"{base}/checklist/{item.pk}/decide/", {"option": "authorized"}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["decision"] == "authorized"
    assert checklist_item(incident, "p2-isolate").status == ChecklistItem.Status.NOT_APPLICABLE


def test_another_incidents_checklist_item_is_404(api, responder, incident, playbook, base) -> None:
    from incidents.services import incident_open

    other = incident_open(title="other", playbook=playbook, actor=responder)
    foreign = ChecklistItem.objects.filter(incident=other).first()
    response = api(responder).post(f"{base}/checklist/{foreign.pk}/tick/", {}, content_type="application/json")
    assert response.status_code == 404 and foreign.status == "todo"


def test_notes_add_and_list(api, responder, incident, base) -> None:
    client = api(responder)
    created = client.post(f"{base}/notes/", {"body": "Checked the audit log"}, content_type="application/json")
    assert created.status_code == 201 and created.json()["author"] == "responder"
    assert [n["body"] for n in client.get(f"{base}/notes/").json()] == ["Checked the audit log"]
    assert client.post(f"{base}/notes/", {"body": "  "}, content_type="application/json").status_code in (400, 422)


def test_evidence_upload_and_download_are_on_the_custody_log(
    api, responder, incident, base, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    client = api(responder, ["evidence:read", "evidence:write"])
    content = b"kubectl get clusterrolebindings -o yaml\n"
    uploaded = client.post(f"{base}/evidence/", {"file": SimpleUploadedFile("crb.yaml", content), "description": "x"})
    assert uploaded.status_code == 201 and uploaded.json()["sha256"] == hashlib.sha256(content).hexdigest()
    evidence_id = uploaded.json()["id"]
    download = client.get(f"{base}/evidence/{evidence_id}/download/", REMOTE_ADDR="198.51.100.7")
    assert download.status_code == 200 and b"".join(download.streaming_content) == content
    custody = list(CustodyEvent.objects.filter(evidence_id=evidence_id).values_list("action", "actor__username"))
    assert custody == [("acquired", "responder"), ("downloaded", "responder")]
    assert CustodyEvent.objects.get(evidence_id=evidence_id, action="downloaded").source_address == "198.51.100.7"


def test_tampered_evidence_is_refused_with_409(api, responder, incident, base, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    client = api(responder, ["evidence:read", "evidence:write"])
    evidence_id = client.post(f"{base}/evidence/", {"file": SimpleUploadedFile("a.log", b"original")}).json()["id"]
    path = Evidence.objects.get(pk=evidence_id).file.path
    with open(path, "wb") as handle:
        handle.write(b"changed")
    response = client.get(f"{base}/evidence/{evidence_id}/download/")
    assert response.status_code == 409 and "Integrity" in response.json()["detail"]
    assert CustodyEvent.objects.filter(evidence_id=evidence_id, action="verify_failed").exists()


def test_timeline_pages_with_a_cursor_and_since(api, responder, incident, base) -> None:
    client = api(responder, ["incidents:read", "incidents:write"])
    mark = timezone.now()
    for n in range(3):
        client.post(f"{base}/notes/", {"body": f"note {n}"}, content_type="application/json")
    first = client.get(f"{base}/timeline/", {"page_size": 2}).json()
    rest = client.get(f"{base}/timeline/", {"page_size": 2, "cursor": first["next_cursor"]}).json()
    all_ids = [e["id"] for e in first["results"] + rest["results"]]
    assert len(all_ids) == len(set(all_ids)) == TimelineEvent.objects.filter(incident=incident).count() == 4
    since = client.get(f"{base}/timeline/", {"since": mark.isoformat()}).json()["results"]
    assert [e["kind"] for e in since] == ["note"] * 3 and since[0]["data"]["note"]


def test_ticket_comment_becomes_a_note_and_ticket_closed_a_timeline_event(api, responder, incident, base) -> None:
    client = api(responder, ["incidents:write"])
    comment = client.post(
        f"{base}/ticket-events/",
        {"event": "comment_added", "system": "Jira", "ticket": "SEC-9", "author": "alice", "body": "Owner confirmed"},
        content_type="application/json",
    )
    closed = client.post(
        f"{base}/ticket-events/",
        {"event": "ticket_closed", "system": "Jira", "ticket": "SEC-9", "status": "Done"},
        content_type="application/json",
    )
    assert comment.status_code == closed.status_code == 201
    assert "Owner confirmed" in Note.objects.get(pk=comment.json()["id"]).body
    event = TimelineEvent.objects.get(pk=closed.json()["id"])
    assert event.summary == "Jira SEC-9 closed (Done)" and event.actor == responder
    incident.refresh_from_db()
    assert incident.phase == "new"  # the ticket closing does not close the case


def test_observables_and_playbooks_read(api, responder, incident, base) -> None:
    client = api(responder, ["incidents:read"])
    assert client.get(f"{base}/observables/").json() == []
    playbooks = client.get("/api/v1/playbooks/").json()
    assert [p["slug"] for p in playbooks] == ["unauthorized-access"]
    detail = client.get("/api/v1/playbooks/unauthorized-access/").json()
    assert [s["step_id"] for s in detail["steps"]][:2] == ["p1-confirm", "p1-optional"]
    assert client.get("/api/v1/playbooks/nope/").status_code == 404


def test_unknown_api_path_is_a_problem_404(api, responder) -> None:
    response = api(responder).get("/api/v1/nothing-here/")
    assert response.status_code == 404 and response["Content-Type"] == "application/problem+json"


def test_a_ticket_made_for_a_watchpost_incident_is_linked_on_the_timeline(api, responder, incident, base) -> None:
    response = api(responder, ["incidents:write"]).post(
        f"{base}/ticket-events/",
        {"event": "ticket_linked", "system": "Jira", "ticket": "SEC-77"},
        content_type="application/json",
    )
    assert response.status_code == 201
    event = TimelineEvent.objects.get(pk=response.json()["id"])
    assert event.summary == "Jira SEC-77 linked" and event.data["ticket"]["key"] == "SEC-77"


def test_an_unexpected_error_is_a_problem_500_without_internals(api, responder, incident, base, monkeypatch) -> None:
    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals")

    monkeypatch.setattr("incidents.services.note_add", broken)
    response = api(responder).post(f"{base}/notes/", {"body": "x"}, content_type="application/json")
    assert response.status_code == 500 and response["Content-Type"] == "application/problem+json"
    assert b"secret internals" not in response.content
