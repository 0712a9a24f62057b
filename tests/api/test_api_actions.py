"""Action runs over the API: read with incidents:read; request and decide with remediation:execute,
under the same two-person rule as the page; a successful remediation is announced."""

import json

import pytest

from integrations.models import WebhookDelivery, WebhookSubscription
from playbooks import actions
from playbooks.actions import ActionSpec
from playbooks.models import ActionRun
from playbooks.tasks import action_run_task

pytestmark = pytest.mark.django_db
HANDLERS = "tests.playbooks.action_handlers"


@pytest.fixture(autouse=True)
def test_actions(monkeypatch) -> None:
    monkeypatch.setitem(actions.ACTIONS, "test.echo", ActionSpec("test.echo", "Echo", f"{HANDLERS}.echo"))
    monkeypatch.setitem(
        actions.ACTIONS, "test.change", ActionSpec("test.change", "Change", f"{HANDLERS}.echo", needs_approval=True)
    )


def test_a_change_is_proposed_then_approved_by_another_manager(api, responder, manager, incident) -> None:
    base = f"/api/v1/incidents/{incident.pk}/action-runs/"
    proposed = api(responder, ["remediation:execute"]).post(
        base, {"action": "test.change"}, content_type="application/json"
    )
    assert proposed.status_code == 201 and proposed.json()["status"] == "proposed"
    run_id = proposed.json()["id"]
    refused = api(responder, ["remediation:execute"]).post(
        f"{base}{run_id}/approve/", {}, content_type="application/json"
    )
    assert refused.status_code == 403
    approved = api(manager, ["remediation:execute"]).post(
        f"{base}{run_id}/approve/", {}, content_type="application/json"
    )
    assert approved.status_code == 200 and approved.json()["status"] == "queued"
    assert approved.json()["approved_by"] == "manager"
    listed = api(responder, ["incidents:read"]).get(base).json()
    assert [r["id"] for r in listed] == [run_id]


def test_write_scope_alone_cannot_launch_actions(api, responder, incident) -> None:
    response = api(responder, ["incidents:write", "incidents:read"]).post(
        f"/api/v1/incidents/{incident.pk}/action-runs/", {"action": "test.echo"}, content_type="application/json"
    )
    assert response.status_code == 403 and "remediation:execute" in response.json()["detail"]
    assert not ActionRun.objects.exists()


def test_unknown_action_is_refused_clearly(api, responder, incident) -> None:
    response = api(responder).post(
        f"/api/v1/incidents/{incident.pk}/action-runs/", {"action": "rm.rf"}, content_type="application/json"
    )
    assert response.status_code == 422 and "Unknown action" in response.json()["detail"]


def test_a_successful_remediation_is_announced(
    monkeypatch, responder, incident, django_capture_on_commit_callbacks
) -> None:
    # given: echo counts as a remediation here, and someone subscribed
    monkeypatch.setattr(actions, "REMEDIATIONS", frozenset({"test.echo"}))
    WebhookSubscription.objects.create(
        name="pager", url="https://pager.example.com/h", event_types=["remediation.applied"]
    )
    run = actions.action_run_request(incident_id=incident.pk, action="test.echo", actor=responder, params={"text": "x"})
    # when: the worker runs it
    with django_capture_on_commit_callbacks() as emitted:
        action_run_task.apply(args=[run.pk])
    with django_capture_on_commit_callbacks():
        for callback in emitted:
            callback()
    # then
    body = json.loads(WebhookDelivery.objects.get(event_type="remediation.applied").body)
    assert body["data"]["remediation"] == {
        "summary": "echoed x",
        "run": run.pk,
        "action": "test.echo",
        "approved_by": None,
    }


@pytest.mark.parametrize("name", ["a\x00", "a\ud800", "n" * 101, "\x00" * 101])
def test_a_parameter_name_the_database_cannot_store_is_refused_with_400(api, responder, incident, name) -> None:
    response = api(responder, ["remediation:execute"]).post(
        f"/api/v1/incidents/{incident.pk}/action-runs/",
        json.dumps({"action": "test.change", "params": {name: "v"}}),
        content_type="application/json",
    )
    assert response.status_code == 400 and "the parameter name" in response.json()["detail"]
    assert not ActionRun.objects.exists()
