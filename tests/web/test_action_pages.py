"""Action panels on the incident page: not configured, launch, approve, follow the run."""

import pytest
from django.test import Client
from django.urls import reverse

from playbooks import actions
from playbooks.actions import ActionSpec
from playbooks.models import ActionRun, ChecklistItem, PlaybookStep

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def isolate_item(incident) -> ChecklistItem:
    PlaybookStep.objects.filter(playbook=incident.playbook, step_id="p2-isolate").update(action="test.change")
    return ChecklistItem.objects.select_related("step").get(incident=incident, step__step_id="p2-isolate")


@pytest.fixture(autouse=True)
def change_action(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = ActionSpec("test.change", "Isolate the pod", "tests.playbooks.action_handlers.echo", needs_approval=True)
    monkeypatch.setitem(actions.ACTIONS, spec.name, spec)


def _page(client: Client, incident) -> str:  # type: ignore[no-untyped-def]
    return client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()


def test_a_step_whose_automation_is_missing_says_so(client: Client, responder, incident) -> None:
    PlaybookStep.objects.filter(playbook=incident.playbook, step_id="p2-revoke").update(action="nowhere.thing")
    client.force_login(responder)
    assert "nowhere.thing: automation not configured" in _page(client, incident)


def test_propose_then_a_manager_approves_from_the_page(
    client: Client, responder, manager, incident, isolate_item
) -> None:
    # given: the responder proposes from the step's panel
    client.force_login(responder)
    assert "Isolate the pod (needs approval)" in _page(client, incident)
    response = client.post(
        reverse("incidents:action-request", args=[incident.pk]),
        {"action": "test.change", "item": isolate_item.pk, "text": "pod/web-1"},
        **HTMX,
    )
    assert response.status_code == 200 and "Awaiting approval" in response.content.decode()
    run = ActionRun.objects.get()
    assert run.params == {"text": "pod/web-1"} and run.checklist_item == isolate_item
    assert "Approve</button>" not in _page(client, incident)  # never offered to the proposer
    # when: a manager approves
    client.force_login(manager)
    assert "Approve</button>" in _page(client, incident)
    response = client.post(reverse("incidents:action-approve", args=[incident.pk, run.pk]), **HTMX)
    # then: queued, and the row polls itself while it waits for the worker
    html = response.content.decode()
    assert "Queued" in html and 'hx-trigger="every 2s"' in html
    assert ActionRun.objects.get().approved_by == manager


def test_a_run_of_another_incident_is_not_found(client: Client, responder, manager, incident, isolate_item) -> None:
    run = actions.action_run_request(incident_id=incident.pk, action="test.change", actor=responder)
    client.force_login(manager)
    response = client.post(reverse("incidents:action-approve", args=[incident.pk + 1, run.pk]))
    assert response.status_code == 404
    assert ActionRun.objects.get().status == ActionRun.Status.PROPOSED


def test_a_viewer_gets_403_and_no_run(client: Client, viewer, incident, isolate_item) -> None:
    client.force_login(viewer)
    response = client.post(
        reverse("incidents:action-request", args=[incident.pk]), {"action": "test.change", "item": isolate_item.pk}
    )
    assert response.status_code == 403 and not ActionRun.objects.exists()


def test_anonymous_requests_get_no_run_data(client: Client, responder, incident, isolate_item) -> None:
    run = actions.action_run_request(incident_id=incident.pk, action="test.change", actor=responder)
    response = client.get(reverse("incidents:action-run", args=[incident.pk, run.pk]))
    assert response.status_code == 302 and "run #" not in response.content.decode()
