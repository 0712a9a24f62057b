"""Dashboard, timeline lanes, cluster timeline, review page and exports through the test client."""

import csv
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from incidents.models import CustodyEvent, Incident, Priority, TimelineEvent
from incidents.services import evidence_add, incident_open, incident_set_restricted

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def _login(client: Client, user) -> Client:
    client.force_login(user)
    return client


def test_home_sends_managers_to_the_dashboard_and_others_to_the_list(client, manager, responder) -> None:
    assert _login(client, manager).get("/")["Location"] == reverse("incidents:dashboard")
    assert _login(Client(), responder).get("/")["Location"] == reverse("incidents:list")


def test_dashboard_is_for_managers_only(client, responder, viewer) -> None:
    for user in (responder, viewer):
        response = _login(Client(), user).get(reverse("incidents:dashboard"))
        assert response.status_code == 403


def test_dashboard_shows_breaches_with_the_reason_and_svg_charts(client, manager, playbook, responder) -> None:
    # given: a P1 case an hour old, never acknowledged
    detected = timezone.now() - timedelta(hours=1)
    case = incident_open(
        title="anon on payments", playbook=playbook, actor=responder, priority=Priority.P1, detected_at=detected,
        cluster_name="payments-prod", finding_type="Discovery:Kubernetes/SuccessfulAnonymousAccess",
    )  # fmt: skip
    # when
    response = _login(client, manager).get(reverse("incidents:dashboard"), {"days": 7})
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert case.reference in html and "breached, waiting" in html
    assert "P1 target 15 min" in html and "no commander assigned" in html
    assert html.count("<svg") == 3 and 'class="bar s-mtta"' in html
    assert "style=" not in html  # the CSP forbids inline styles
    assert reverse("incidents:cluster-timeline", args=["payments-prod"]) in html


def test_timeline_page_shows_lanes_and_filters_by_lane(client, responder, incident) -> None:
    response = _login(client, responder).get(reverse("incidents:timeline", args=[incident.pk]), {"lane": "finding"})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="lane-finding"' in html and "Incident opened" in html
    other = _login(Client(), responder).get(reverse("incidents:timeline", args=[incident.pk]), {"lane": "notes"})
    assert "No events match." in other.content.decode()


def test_analyst_event_with_its_own_zone_is_stored_in_utc(client, responder, incident) -> None:
    url = reverse("incidents:analyst-event", args=[incident.pk])
    form = {"occurred_at": "2026-11-20T14:02:03", "tz": "Europe/Amsterdam", "summary": "first anonymous call"}
    response = _login(client, responder).post(url, form | {"source": "Athena query 7"})
    assert response.status_code == 303
    event = TimelineEvent.objects.get(incident=incident, kind=TimelineEvent.Kind.ANALYST)
    assert event.occurred_at.isoformat() == "2026-11-20T13:02:03+00:00"
    assert "given as 2026-11-20 14:02:03 Europe/Amsterdam" in event.summary and "Athena query 7" in event.summary
    csv_text = b"".join(client.get(reverse("incidents:timeline-csv", args=[incident.pk])).streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [row["occurred_at"] for row in rows if row["kind"] == "analyst"] == ["2026-11-20 13:02:03+00:00"]
    exported = json.loads(
        b"".join(client.get(reverse("incidents:timeline-json", args=[incident.pk])).streaming_content)
    )
    assert [e["lane"] for e in exported["events"] if e["kind"] == "analyst"] == ["analyst"]


def test_cluster_timeline_merges_visible_cases_only(client, responder, manager, playbook) -> None:
    seen = incident_open(title="seen case", playbook=playbook, actor=responder, cluster_name="payments-prod")
    hidden = incident_open(title="hidden case", playbook=playbook, actor=manager, cluster_name="payments-prod")
    incident_set_restricted(incident_id=hidden.pk, actor=manager, restricted=True)
    incident_open(title="other cluster", playbook=playbook, actor=responder, cluster_name="analytics-dev")
    url = reverse("incidents:cluster-timeline", args=["payments-prod"])

    as_responder = _login(client, responder).get(url).content.decode()
    as_manager = _login(Client(), manager).get(url).content.decode()

    assert seen.reference in as_responder and hidden.reference not in as_responder
    assert "other cluster" not in as_responder
    assert seen.reference in as_manager and hidden.reference in as_manager


def test_review_page_saves_lessons_and_follow_ups(client, responder, incident, manager) -> None:
    c = _login(client, responder)
    c.post(reverse("incidents:lessons", args=[incident.pk]), {"what_happened": "anon", "root_cause": "binding"})
    c.post(
        reverse("incidents:follow-up-add", args=[incident.pk]),
        {"description": "Remove anonymous bindings everywhere", "owner": manager.pk, "due_on": "2026-12-31"},
    )
    html = c.get(reverse("incidents:review", args=[incident.pk])).content.decode()
    assert "binding</textarea>" in html and "Remove anonymous bindings everywhere" in html and "2026-12-31" in html
    detail = c.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert 'id="post-incident"' in detail and "Lessons learned v1" in detail
    assert reverse("incidents:report-pdf", args=[incident.pk]) in detail


def test_viewer_cannot_write_the_review(client, viewer, incident) -> None:
    response = _login(client, viewer).post(reverse("incidents:lessons", args=[incident.pk]), {"what_happened": "x"})
    assert response.status_code == 403


def test_report_downloads_and_bundle_post_records_custody(client, responder, manager, incident) -> None:
    upload = SimpleUploadedFile("pod.log", b"exec into api", content_type="text/plain")
    evidence = evidence_add(incident_id=incident.pk, actor=responder, upload=upload)
    c = _login(client, manager)

    md = c.get(reverse("incidents:report-md", args=[incident.pk]))
    pdf = c.get(reverse("incidents:report-pdf", args=[incident.pk]))
    assert md.status_code == 200 and md["Content-Disposition"].endswith('-report.md"')
    assert evidence.sha256 in md.content.decode()
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert c.get(reverse("incidents:bundle", args=[incident.pk])).status_code == 405  # a change: POST only

    response = c.post(reverse("incidents:bundle", args=[incident.pk]))
    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "evidence/" in " ".join(zipfile.ZipFile(io.BytesIO(body)).namelist())
    assert json.loads(zipfile.ZipFile(io.BytesIO(body)).read("manifest.json"))
    assert CustodyEvent.objects.filter(evidence=evidence, action="exported", actor=manager).count() == 1


def test_exports_of_an_invisible_case_are_404(client, manager, other_responder, incident: Incident) -> None:
    incident_set_restricted(incident_id=incident.pk, actor=manager, restricted=True)
    c = _login(client, other_responder)
    for name in ("report-md", "report-pdf", "review"):
        assert c.get(reverse(f"incidents:{name}", args=[incident.pk])).status_code == 404
    assert c.post(reverse("incidents:bundle", args=[incident.pk])).status_code == 404


def test_dashboard_query_count_does_not_grow_with_the_data(client, manager, playbook, responder) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    c = _login(client, manager)
    incident_open(title="one", playbook=playbook, actor=responder, cluster_name="a", finding_type="T1")
    c.get(reverse("incidents:dashboard"))  # warm: session, groups
    with CaptureQueriesContext(connection) as small:
        c.get(reverse("incidents:dashboard"))
    for i in range(6):
        incident_open(title=f"more {i}", playbook=playbook, actor=responder, cluster_name=f"c{i}", finding_type=f"T{i}")
    with CaptureQueriesContext(connection) as large:
        c.get(reverse("incidents:dashboard"))
    assert len(large.captured_queries) == len(small.captured_queries)


def test_timeline_time_window_filters_the_page_and_the_export(client, responder, incident) -> None:
    from datetime import UTC, datetime

    from incidents.services import analyst_event_add

    for day in (1, 5, 9):
        when = datetime(2026, 11, day, 12, 0, tzinfo=UTC)
        analyst_event_add(incident_id=incident.pk, actor=responder, occurred_at=when, summary=f"call on day {day}")
    c = _login(client, responder)
    window = {"since": "2026-11-02T00:00", "until": "2026-11-06", "lane": "analyst"}

    html = c.get(reverse("incidents:timeline", args=[incident.pk]), window).content.decode()
    exported = json.loads(
        b"".join(c.get(reverse("incidents:timeline-json", args=[incident.pk]), window).streaming_content)
    )
    bad = c.get(reverse("incidents:timeline", args=[incident.pk]), {"since": "2026-13-45T99:00"})

    assert "call on day 5" in html and "call on day 1" not in html and "call on day 9" not in html
    assert [e["summary"] for e in exported["events"]] == ["call on day 5"]
    assert bad.status_code == 200  # an impossible date is ignored, not a server error
