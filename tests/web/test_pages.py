"""The pages, through the test client: full pages, htmx partials, exports, downloads, errors."""

import csv
import hashlib
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from incidents.models import CustodyEvent, Evidence, Incident, Phase, TimelineEvent
from incidents.services import evidence_add, incident_open, note_add
from playbooks.models import ChecklistItem

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def responder_client(client: Client, responder) -> Client:
    client.force_login(responder)
    return client


def _item(incident: Incident, step_id: str) -> ChecklistItem:
    return ChecklistItem.objects.select_related("step").get(incident=incident, step__step_id=step_id)


def test_incident_page_shows_header_checklist_and_war_room(responder_client: Client, incident: Incident) -> None:
    response = responder_client.get(reverse("incidents:detail", args=[incident.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert incident.reference in html and incident.title in html
    assert 'id="checklist"' in html and 'id="war-room"' in html and 'id="evidence"' in html
    assert html.count('class="item status-todo"') == ChecklistItem.objects.filter(incident=incident).count()


def test_htmx_tick_returns_the_item_and_out_of_band_counters_only(responder_client: Client, incident: Incident) -> None:
    # given
    item = _item(incident, "p1-confirm")
    url = reverse("incidents:item-status", args=[incident.pk, item.pk])
    # when
    response = responder_client.post(url, {"status": "done"}, **HTMX)
    # then: a fragment, not a page, carrying the item and the counters to swap out of band
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert f'id="item-{item.pk}"' in html and "status-done" in html
    assert 'id="part-1-count" hx-swap-oob="true"' in html and ">1/3<" in html
    assert 'id="progress" hx-swap-oob="true"' in html
    assert _item(incident, "p1-confirm").status == ChecklistItem.Status.DONE


def test_plain_post_tick_redirects_back_to_the_incident(responder_client: Client, incident: Incident) -> None:
    item = _item(incident, "p1-confirm")
    response = responder_client.post(reverse("incidents:item-status", args=[incident.pk, item.pk]), {"status": "done"})
    assert response.status_code == 303
    assert response["Location"] == reverse("incidents:detail", args=[incident.pk])


def test_htmx_decision_rerenders_the_whole_checklist_with_the_branch_greyed(
    responder_client: Client, incident: Incident
) -> None:
    item = _item(incident, "p1-decide")
    response = responder_client.post(
        reverse("incidents:item-decide", args=[incident.pk, item.pk]), {"option": "authorized"}, **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="checklist">')
    assert html.count("status-na") == 2  # both part-2 steps
    assert "branch not taken" in html


def test_htmx_rule_violation_is_shown_in_the_flash_area(responder_client: Client, incident: Incident) -> None:
    item = _item(incident, "p1-confirm")
    response = responder_client.post(
        reverse("incidents:item-status", args=[incident.pk, item.pk]), {"status": "skipped", "comment": ""}, **HTMX
    )
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#flash"
    assert "Say why the step is skipped." in response.content.decode()
    assert _item(incident, "p1-confirm").status == ChecklistItem.Status.TODO


def test_viewer_sees_the_case_but_gets_403_when_ticking(client: Client, viewer, incident: Incident) -> None:
    client.force_login(viewer)
    page = client.get(reverse("incidents:detail", args=[incident.pk]))
    item = _item(incident, "p1-confirm")
    tick = client.post(reverse("incidents:item-status", args=[incident.pk, item.pk]), {"status": "done"})
    assert page.status_code == 200 and "Mark “" not in page.content.decode()  # no tick buttons for viewers
    assert tick.status_code == 403
    assert _item(incident, "p1-confirm").status == ChecklistItem.Status.TODO


def test_restricted_incident_is_404_for_a_responder_outside_it(
    client: Client, other_responder, incident: Incident
) -> None:
    Incident.objects.filter(pk=incident.pk).update(restricted=True)
    client.force_login(other_responder)
    assert client.get(reverse("incidents:detail", args=[incident.pk])).status_code == 404
    assert client.get(reverse("incidents:timeline-csv", args=[incident.pk])).status_code == 404
    listing = client.get(reverse("incidents:list")).content.decode()
    assert incident.title not in listing


def test_incident_list_filters_and_htmx_next_page(responder_client: Client, playbook, responder) -> None:
    for n in range(7):
        incident_open(title=f"case {n}", playbook=playbook, actor=responder, cluster_name="prod" if n % 2 else "dev")
    first = responder_client.get(reverse("incidents:list"), {"cluster": "prod", "size": 2})
    html = first.content.decode()
    assert first.status_code == 200
    assert html.count("<tr>") - 1 == 2  # header row + two incidents
    assert "case 0" not in html  # dev
    cursor = first.context["page"].next_cursor
    more = responder_client.get(
        reverse("incidents:list"), {"cluster": "prod", "size": 2, "cursor": cursor}, HTTP_HX_TARGET="more-row", **HTMX
    )
    rest = more.content.decode()
    assert "<html" not in rest
    assert rest.count("<tr>") == 1 and "more-row" not in rest  # the third prod case, and no further page


def test_incident_list_bad_cursor_is_a_clear_400(responder_client: Client) -> None:
    response = responder_client.get(reverse("incidents:list"), {"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert "no longer valid" in response.content.decode()


def test_timeline_csv_export_streams_every_event_with_formula_cells_neutralised(
    responder_client: Client, incident: Incident, responder
) -> None:
    note_add(incident_id=incident.pk, actor=responder, body='=HYPERLINK("http://evil")')
    response = responder_client.get(reverse("incidents:timeline-csv", args=[incident.pk]))
    assert response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["id", "occurred_at", "recorded_at", "kind", "actor", "summary", "data"]
    assert len(rows) - 1 == TimelineEvent.objects.filter(incident=incident).count()
    assert all(not row[5].startswith("=") for row in rows[1:])
    assert response["Content-Disposition"].startswith("attachment;")


def test_timeline_json_export_filters_by_kind(responder_client: Client, incident: Incident, responder) -> None:
    note_add(incident_id=incident.pk, actor=responder, body="first note")
    response = responder_client.get(reverse("incidents:timeline-json", args=[incident.pk]), {"kind": "note"})
    document = json.loads(b"".join(response.streaming_content))
    assert document["incident"] == incident.reference
    assert [event["kind"] for event in document["events"]] == ["note"]
    assert document["events"][0]["actor"] == "responder"


def test_evidence_download_is_an_attachment_with_nosniff_and_custody(
    responder_client: Client, incident: Incident, responder, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    evidence = evidence_add(
        incident_id=incident.pk,
        actor=responder,
        upload=SimpleUploadedFile("x.html", b"<script>alert(1)</script>", "text/html"),
    )
    response = responder_client.get(reverse("incidents:evidence-download", args=[evidence.pk]), REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content) == b"<script>alert(1)</script>"
    custody = CustodyEvent.objects.get(evidence=evidence, action=CustodyEvent.Action.DOWNLOADED)
    assert custody.source_address == "10.1.2.3" and custody.actor == responder


def test_tampered_evidence_download_is_refused_with_a_clear_page(
    responder_client: Client, incident: Incident, responder, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    evidence = evidence_add(incident_id=incident.pk, actor=responder, upload=SimpleUploadedFile("a.txt", b"original"))
    (tmp_path / evidence.file.name).write_bytes(b"tampered")
    response = responder_client.get(reverse("incidents:evidence-download", args=[evidence.pk]))
    assert response.status_code == 409
    assert "Integrity check failed" in response.content.decode()
    assert Evidence.objects.get(pk=evidence.pk).custody.filter(action=CustodyEvent.Action.VERIFY_FAILED).exists()


def test_evidence_upload_through_the_page(responder_client: Client, incident: Incident, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    upload = SimpleUploadedFile("pods.json", b'{"items": []}')
    response = responder_client.post(
        reverse("incidents:evidence-upload", args=[incident.pk]), {"file": upload, "description": "pods"}
    )
    assert response.status_code == 303
    evidence = Evidence.objects.get(incident=incident)
    assert evidence.sha256 == hashlib.sha256(b'{"items": []}').hexdigest()


def test_oversize_upload_is_refused_with_a_message_and_nothing_stored(
    responder_client: Client, incident: Incident, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    settings.WATCHPOST_EVIDENCE_MAX_BYTES = 10
    response = responder_client.post(
        reverse("incidents:evidence-upload", args=[incident.pk]),
        {"file": SimpleUploadedFile("big.bin", b"x" * 11)},
        follow=True,
    )
    assert "Evidence is limited to" in response.content.decode()
    assert not Evidence.objects.filter(incident=incident).exists()
    assert not any(path.is_file() for path in tmp_path.rglob("*"))


def test_stale_note_save_shows_both_versions(responder_client: Client, incident: Incident, responder) -> None:
    note = note_add(incident_id=incident.pk, actor=responder, body="version one")
    url = reverse("incidents:note-edit", args=[incident.pk, note.pk])
    assert responder_client.post(url, {"body": "version two", "base_version": 1}).status_code == 303
    response = responder_client.post(url, {"body": "my stale edit", "base_version": 1})
    html = response.content.decode()
    assert response.status_code == 409
    assert "version two" in html and "my stale edit" in html


def test_phase_change_and_close_gate_message_through_the_page(client: Client, manager, incident: Incident) -> None:
    client.force_login(manager)
    url = reverse("incidents:phase", args=[incident.pk])
    for phase in ("acknowledged", "analysis", "post_incident"):
        assert client.post(url, {"to": phase}).status_code == 303
    blocked = client.post(url, {"to": "closed", "resolution": "authorized"}, follow=True)
    assert "mandatory checklist item(s) are still open" in blocked.content.decode()
    closed = client.post(
        url, {"to": "closed", "resolution": "authorized", "override_reason": "owner confirmed, steps moot"}
    )
    assert closed.status_code == 303
    incident.refresh_from_db()
    assert incident.phase == Phase.CLOSED and incident.close_override_reason == "owner confirmed, steps moot"


def test_playbook_viewer_lists_parts_steps_and_fixes(responder_client: Client, playbook) -> None:
    response = responder_client.get(reverse("playbooks:detail", args=[playbook.slug, playbook.version]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Part 1" in html and "P1 decide" in html


def test_create_incident_form_opens_a_case_from_the_fallback_playbook(responder_client: Client, playbook) -> None:
    response = responder_client.post(
        reverse("incidents:create"),
        {"title": "Reported by the SOC", "severity": 3, "priority": 2, "finding_type": "Unknown:Type/X"},
    )
    incident = Incident.objects.get(title="Reported by the SOC")
    assert response.status_code == 303 and incident.playbook == playbook and incident.priority == 2


def test_create_incident_form_rejects_a_bad_account_id(responder_client: Client, playbook) -> None:
    response = responder_client.post(
        reverse("incidents:create"), {"title": "x", "severity": 2, "priority": 3, "account_id": "12"}
    )
    assert response.status_code == 422
    assert "12 digits" in response.content.decode()


@pytest.mark.parametrize("page", ["list", "timeline"])
def test_query_count_does_not_grow_with_page_size(
    responder_client: Client, incident: Incident, playbook, responder, page: str
) -> None:
    # given: enough rows for two full pages of 100
    for n in range(110):
        incident_open(title=f"bulk {n}", playbook=playbook, actor=responder)
        note_add(incident_id=incident.pk, actor=responder, body=f"note {n}")
    url = reverse("incidents:list") if page == "list" else reverse("incidents:timeline", args=[incident.pk])
    counts = []
    for size in (10, 100):
        with CaptureQueriesContext(connection) as queries:
            assert responder_client.get(url, {"size": size, "phase": "all"}).status_code == 200
        counts.append(len(queries))
    # then: O(1) queries per page (P6)
    assert counts[0] == counts[1], counts


def test_incident_page_query_count_does_not_grow_with_notes_evidence_and_events(
    responder_client: Client, incident: Incident, responder, manager, settings, tmp_path
) -> None:
    settings.MEDIA_ROOT = tmp_path
    counts = []
    for batch in (1, 15):
        for n in range(batch):
            note_add(incident_id=incident.pk, actor=manager if n % 2 else responder, body=f"note {n}")
            evidence_add(incident_id=incident.pk, actor=responder, upload=SimpleUploadedFile(f"e{n}.txt", b"x%d" % n))
        with CaptureQueriesContext(connection) as queries:
            assert responder_client.get(reverse("incidents:detail", args=[incident.pk])).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
