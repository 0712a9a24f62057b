"""API v1 incidents: list, idempotent create, retrieve, partial update through the services."""

import threading

import pytest
from django.db import connection
from django.test import Client

from incidents.models import Incident, Phase, TimelineEvent
from playbooks.models import ChecklistItem

pytestmark = pytest.mark.django_db

URL = "/api/v1/incidents/"
JIRA = {"title": "Anonymous access on prod-eks", "severity": "high", "source": "jira", "external_ref": "SEC-1"}


def test_create_from_a_ticket_answers_201_then_200_with_the_same_incident(api, responder, playbook) -> None:
    client = api(responder, ["incidents:write", "incidents:read"])
    first = client.post(URL, JIRA, content_type="application/json")
    again = client.post(URL, JIRA | {"title": "retitled"}, content_type="application/json")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"] and Incident.objects.count() == 1
    body = first.json()
    assert {k: body[k] for k in ("title", "severity", "priority", "phase", "source", "external_ref")} == {
        "title": JIRA["title"], "severity": "high", "priority": 3, "phase": "new", "source": "jira",
        "external_ref": "SEC-1",
    }  # fmt: skip
    assert TimelineEvent.objects.filter(incident_id=body["id"], kind="created", actor=responder).exists()


def test_retrieve_has_an_etag_and_answers_304_to_if_none_match(api, responder, incident) -> None:
    client = api(responder, ["incidents:read"])
    first = client.get(f"{URL}{incident.pk}/")
    assert first.status_code == 200 and first["ETag"]
    assert client.get(f"{URL}{incident.pk}/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304


def test_stale_if_match_is_refused_412_and_changes_nothing(api, responder, incident) -> None:
    # given: a client read the incident, then someone else changed it
    client = api(responder, ["incidents:read", "incidents:write"])
    etag = client.get(f"{URL}{incident.pk}/")["ETag"]
    client.patch(f"{URL}{incident.pk}/", {"title": "changed by someone"}, content_type="application/json")
    # when: the first client writes with its old ETag
    stale = client.patch(
        f"{URL}{incident.pk}/", {"severity": "critical"}, content_type="application/json", HTTP_IF_MATCH=etag
    )
    # then
    assert stale.status_code == 412 and stale["Content-Type"] == "application/problem+json"
    incident.refresh_from_db()
    assert incident.severity != 4


def test_current_if_match_is_accepted_and_returns_the_new_etag(api, responder, incident) -> None:
    client = api(responder, ["incidents:read", "incidents:write"])
    etag = client.get(f"{URL}{incident.pk}/")["ETag"]
    response = client.patch(
        f"{URL}{incident.pk}/", {"severity": "critical"}, content_type="application/json", HTTP_IF_MATCH=etag
    )
    assert response.status_code == 200 and response.json()["severity"] == "critical"
    assert response["ETag"] != etag and response["ETag"] == client.get(f"{URL}{incident.pk}/")["ETag"]


def test_phase_goes_through_the_state_machine(api, responder, incident) -> None:
    client = api(responder, ["incidents:write", "incidents:read"])
    skip = client.patch(f"{URL}{incident.pk}/", {"phase": "containment"}, content_type="application/json")
    assert skip.status_code == 409 and "allowed next: acknowledged" in skip.json()["detail"]
    ok = client.patch(f"{URL}{incident.pk}/", {"phase": "acknowledged"}, content_type="application/json")
    assert ok.status_code == 200 and ok.json()["phase"] == "acknowledged"
    assert TimelineEvent.objects.filter(incident=incident, kind="phase", actor=responder).count() == 1


def test_close_gate_refuses_over_open_mandatory_items(api, responder, incident) -> None:
    Incident.objects.filter(pk=incident.pk).update(phase=Phase.POST_INCIDENT)
    client = api(responder, ["incidents:write"])
    response = client.patch(
        f"{URL}{incident.pk}/", {"phase": "closed", "resolution": "true_positive"}, content_type="application/json"
    )
    assert response.status_code == 409 and response.json()["title"] == "Close gate"
    assert (
        len(response.json()["open_items"])
        == ChecklistItem.objects.filter(incident=incident, step__mandatory=True).count()
    )
    incident.refresh_from_db()
    assert incident.phase == Phase.POST_INCIDENT


def test_assignment_needs_a_manager(api, responder, manager, incident) -> None:
    refused = api(responder).patch(
        f"{URL}{incident.pk}/", {"assignees": ["responder"]}, content_type="application/json"
    )
    assert refused.status_code == 403
    done = api(manager).patch(
        f"{URL}{incident.pk}/", {"assignees": ["responder"], "commander": "manager"}, content_type="application/json"
    )
    assert (
        done.status_code == 200 and done.json()["assignees"] == ["responder"] and done.json()["commander"] == "manager"
    )


def test_list_filters_and_pages_with_a_cursor(api, responder, playbook) -> None:
    client = api(responder, ["incidents:write", "incidents:read"])
    for n in range(5):
        client.post(URL, JIRA | {"external_ref": f"SEC-{n}"}, content_type="application/json")
    first = client.get(URL, {"page_size": 2, "source": "jira"}).json()
    second = client.get(URL, {"page_size": 2, "source": "jira", "cursor": first["next_cursor"]}).json()
    assert len(first["results"]) == 2 and len(second["results"]) == 2
    assert not {i["id"] for i in first["results"]} & {i["id"] for i in second["results"]}
    assert [i["external_ref"] for i in client.get(URL, {"external_ref": "SEC-3"}).json()["results"]] == ["SEC-3"]
    bad = client.get(URL, {"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad["Content-Type"] == "application/problem+json"


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_creates_make_one_incident(role_groups, token_for, playbook) -> None:
    # given: eight clients posting the same ticket at once
    from tests.factories import UserFactory

    token = token_for(UserFactory(role="responder"), ["incidents:write"])
    barrier, statuses, ids = threading.Barrier(8), [], []

    def post() -> None:
        try:
            barrier.wait()
            response = Client(HTTP_AUTHORIZATION=f"Bearer {token}").post(URL, JIRA, content_type="application/json")
            statuses.append(response.status_code)
            ids.append(response.json()["id"])
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then: one incident, one 201, the others 200 with the same id
    assert Incident.objects.count() == 1
    assert sorted(statuses) == [200] * 7 + [201] and len(set(ids)) == 1


def test_every_read_has_an_etag_that_answers_304(api, responder, incident) -> None:
    client = api(responder, ["incidents:read"])
    for path in (URL, f"{URL}{incident.pk}/timeline/", f"{URL}{incident.pk}/checklist/", "/api/v1/playbooks/"):
        first = client.get(path)
        assert first.status_code == 200 and first["ETag"], path
        assert client.get(path, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304, path


def test_a_manager_closes_over_open_items_with_a_reason(api, manager, incident) -> None:
    Incident.objects.filter(pk=incident.pk).update(phase=Phase.POST_INCIDENT)
    response = api(manager, ["incidents:write"]).patch(
        f"{URL}{incident.pk}/",
        {"phase": "closed", "resolution": "false_positive", "override_reason": "Scanner test, confirmed by owner"},
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json()["phase"] == "closed"
    incident.refresh_from_db()
    assert incident.close_override_by == manager and incident.resolution == "false_positive"
    assert TimelineEvent.objects.filter(incident=incident, kind="phase", data__to="closed").exists()
