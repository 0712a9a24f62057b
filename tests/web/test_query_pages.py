"""The query panel on the incident page: forms pre-filled from the case, the run's progress and result,
re-run to verify, provenance on the evidence page, and nothing for anonymous callers."""

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from incidents.models import Observable
from playbooks.models import ActionRun, ChecklistItem, PlaybookStep
from playbooks.tasks import action_run_task
from tests.integrations.query_helpers import BUNDLED

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
ATTACKER = "198.51.100.23"


@pytest.fixture(autouse=True)
def query_settings(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path
    settings.WATCHPOST_QUERY_ENGINE = "duckdb"
    settings.WATCHPOST_CLOUDTRAIL_DIR = BUNDLED


@pytest.fixture
def query_item(incident) -> ChecklistItem:
    PlaybookStep.objects.filter(playbook=incident.playbook, step_id="p3-restore").update(action="query.run")
    Observable.objects.create(kind="ip", value=ATTACKER).incidents.add(incident)
    return ChecklistItem.objects.select_related("step").get(incident=incident, step__step_id="p3-restore")


def _page(client: Client, incident) -> str:  # type: ignore[no-untyped-def]
    return client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()


def test_the_step_offers_each_template_with_the_case_prefilled(client: Client, responder, incident, query_item) -> None:
    client.force_login(responder)
    page = _page(client, incident)
    for name in ("principal_call_summary", "user_activity_after", "iam_user_activity_after", "source_ip_activity"):
        assert f'name="template" value="{name}"' in page
    assert f'name="source_ip" value="{ATTACKER}"' in page
    assert "k8s_anonymous_requests" in page and "create_cloudtrail_table" in page


def test_a_viewer_sees_no_query_form(client: Client, viewer, incident, query_item) -> None:
    client.force_login(viewer)
    page = _page(client, incident)
    assert 'name="template"' not in page


def test_run_from_the_page_then_follow_it_to_the_evidence(client: Client, responder, incident, query_item) -> None:
    client.force_login(responder)
    # when: the responder submits the form (htmx), and the worker runs it
    response = client.post(
        reverse("incidents:action-request", args=[incident.pk]),
        {
            "action": "query.run",
            "item": query_item.pk,
            "template": "source_ip_activity",
            "source_ip": ATTACKER,
            "since": "2026-11-18T00:00:00Z",
            "until": "2026-11-28T00:00:00Z",
        },
        **HTMX,
    )
    assert response.status_code == 200
    run = ActionRun.objects.get(incident=incident)
    assert run.status == ActionRun.Status.QUEUED and run.params["template"] == "source_ip_activity"
    polled = client.get(reverse("incidents:action-run", args=[incident.pk, run.pk]), **HTMX).content.decode()
    assert 'hx-trigger="every 2s"' in polled and "source_ip_activity" in polled
    action_run_task.apply(args=[run.pk])
    run.refresh_from_db()
    # then: the run's row shows the result, the flagged preview rows and the re-run button
    row = client.get(reverse("incidents:action-run", args=[incident.pk, run.pk]), **HTMX).content.decode()
    assert 'hx-trigger="every 2s"' not in row
    assert "18 rows" in row and "<strong>10 sensitive</strong>" in row
    assert row.count('<tr class="flagged">') == 10
    assert run.result["sha256"] in row and "Re-run to verify" in row
    evidence_url = reverse("incidents:evidence-detail", args=[run.result["evidence_id"]])
    assert evidence_url in row
    evidence_page = client.get(evidence_url).content.decode()
    assert "Provenance" in evidence_page and "sourceipaddress = ?" in evidence_page
    assert f"source_ip={ATTACKER}" in evidence_page


def test_progress_shows_state_elapsed_bytes_and_cost(client: Client, responder, incident, query_item) -> None:
    run = ActionRun.objects.create(
        incident=incident,
        checklist_item=query_item,
        action="query.run",
        status=ActionRun.Status.RUNNING,
        params={"template": "source_ip_activity"},
        progress={
            "state": "RUNNING",
            "engine": "athena",
            "template": "source_ip_activity",
            "elapsed_s": 12.5,
            "percent": 42.0,
            "bytes_scanned": 3 * 1024**3,
            "cost_usd": 0.016106,
        },
        requested_by=responder,
    )
    client.force_login(responder)
    row = client.get(reverse("incidents:action-run", args=[incident.pk, run.pk]), **HTMX).content.decode()
    assert "RUNNING 42% · 12.5 s elapsed · 3.0\xa0GB scanned · estimated cost $0.0161" in row
    assert "Cancel" in row


def test_anonymous_callers_get_no_run_data(client: Client, responder, incident, query_item) -> None:
    run = ActionRun.objects.create(
        incident=incident, action="query.run", params={"template": "source_ip_activity"}, requested_by=responder
    )
    response = client.get(reverse("incidents:action-run", args=[incident.pk, run.pk]))
    assert response.status_code == 302 and "/login" in response["Location"]
    posted = client.post(reverse("incidents:action-request", args=[incident.pk]), {"action": "query.run"})
    assert posted.status_code == 302 and ActionRun.objects.count() == 1


def test_a_queued_rerun_without_parameters_renders(client: Client, responder, incident, query_item) -> None:
    # A re-run names only its parent: nothing about the query is known until the worker starts it.
    parent = ActionRun.objects.create(
        incident=incident, checklist_item=query_item, action="query.run", requested_by=responder
    )
    rerun = ActionRun.objects.create(
        incident=incident, checklist_item=query_item, action="query.run", parent=parent, requested_by=responder
    )
    client.force_login(responder)
    row = client.get(reverse("incidents:action-run", args=[incident.pk, rerun.pk]), **HTMX)
    assert row.status_code == 200 and f"query · re-run of #{parent.pk}" in row.content.decode()
    assert client.get(reverse("incidents:detail", args=[incident.pk])).status_code == 200
