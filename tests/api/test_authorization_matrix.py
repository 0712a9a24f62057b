"""Every API endpoint × every scope × an incident inside and outside the token's reach: 0 leaks.

Inside: an unrestricted case. Outside: a restricted case the token's user does not work on. A token
without the operation's scope gets 403 before any lookup (no existence oracle); with the scope, the
outside case is 404, exactly like a case that does not exist.
"""

from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from incidents.models import Finding, Incident
from incidents.services import evidence_add, incident_open
from integrations.models import ApiToken
from playbooks import actions
from playbooks.actions import ActionSpec
from playbooks.models import ChecklistItem

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {i}: incident, {item}, {ev}, {f}: its checklist item, evidence and finding
    scope: str
    body: Any = None
    multipart: bool = False


ENDPOINTS = [
    Endpoint("get", "/api/v1/incidents/{i}/", "incidents:read"),
    Endpoint("patch", "/api/v1/incidents/{i}/", "incidents:write", {"summary": "changed"}),
    Endpoint("get", "/api/v1/incidents/{i}/checklist/", "incidents:read"),
    Endpoint("post", "/api/v1/incidents/{i}/checklist/{item}/tick/", "incidents:write", {"comment": "done"}),
    Endpoint("post", "/api/v1/incidents/{i}/checklist/{item}/skip/", "incidents:write", {"comment": "n/a here"}),
    Endpoint("get", "/api/v1/incidents/{i}/notes/", "incidents:read"),
    Endpoint("post", "/api/v1/incidents/{i}/notes/", "incidents:write", {"body": "a note"}),
    Endpoint("get", "/api/v1/incidents/{i}/evidence/", "evidence:read"),
    Endpoint("post", "/api/v1/incidents/{i}/evidence/", "evidence:write", "upload", multipart=True),
    Endpoint("get", "/api/v1/incidents/{i}/evidence/{ev}/download/", "evidence:read"),
    Endpoint("get", "/api/v1/incidents/{i}/timeline/", "incidents:read"),
    Endpoint("get", "/api/v1/incidents/{i}/observables/", "incidents:read"),
    Endpoint("get", "/api/v1/incidents/{i}/findings/", "incidents:read"),
    Endpoint("get", "/api/v1/incidents/{i}/findings/{f}/", "incidents:read"),
    Endpoint("get", "/api/v1/incidents/{i}/action-runs/", "incidents:read"),
    Endpoint("post", "/api/v1/incidents/{i}/action-runs/", "remediation:execute", {"action": "test.echo"}),
    Endpoint("post", "/api/v1/incidents/{i}/action-runs/{run}/cancel/", "remediation:execute", {}),
    Endpoint(
        "post",
        "/api/v1/incidents/{i}/ticket-events/",
        "incidents:write",
        {"event": "comment_added", "system": "Jira", "ticket": "SEC-1", "body": "from the ticket"},
    ),
]
COLLECTIONS = [
    Endpoint("get", "/api/v1/incidents/", "incidents:read"),
    Endpoint("get", "/api/v1/playbooks/", "incidents:read"),
    Endpoint("get", "/api/v1/playbooks/{slug}/", "incidents:read"),
]
SCOPE_SETS = [[scope] for scope in ApiToken.SCOPES]


@pytest.fixture
def world(playbook, responder, manager, settings, tmp_path, monkeypatch) -> dict[str, dict[str, Any]]:
    settings.MEDIA_ROOT = tmp_path
    spec = ActionSpec("test.echo", "Echo", "tests.playbooks.action_handlers.echo")
    monkeypatch.setitem(actions.ACTIONS, spec.name, spec)
    cases = {}
    for reach, restricted in (("inside", False), ("outside", True)):
        incident = incident_open(title=f"{reach} case", playbook=playbook, actor=manager)
        Incident.objects.filter(pk=incident.pk).update(restricted=restricted)
        evidence = evidence_add(incident_id=incident.pk, actor=manager, upload=SimpleUploadedFile("a.txt", b"x"))
        finding = Finding.objects.create(
            incident=incident, account_id="123456789012", region="eu-west-1", finding_id=f"f-{reach}",
            finding_type="Discovery:Kubernetes/SuccessfulAnonymousAccess", severity=5.0,
            finding_updated_at=timezone.now(),
        )  # fmt: skip
        item = ChecklistItem.objects.get(incident=incident, step__step_id="p1-confirm")
        run = actions.action_run_request(incident_id=incident.pk, action="test.echo", actor=manager)
        cases[reach] = {"i": incident.pk, "item": item.pk, "ev": evidence.pk, "f": finding.pk, "run": run.pk}
        cases[reach]["title"] = incident.title
    return cases


def _call(client: Client, endpoint: Endpoint, ids: dict[str, Any]) -> Any:
    path = endpoint.path.format(**ids)
    if endpoint.multipart:
        return client.post(path, {"file": SimpleUploadedFile("b.txt", b"evidence bytes")})
    if endpoint.body is None:
        return getattr(client, endpoint.method)(path)
    return getattr(client, endpoint.method)(path, endpoint.body, content_type="application/json")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_scope_and_reach(endpoint: Endpoint, world, api, responder) -> None:
    for scopes in SCOPE_SETS:
        client = api(responder, scopes)
        for reach, ids in world.items():
            response = _call(client, endpoint, ids)
            label = f"{scopes} {reach}: {response.status_code}"
            if endpoint.scope not in scopes:
                assert response.status_code == 403, label
                assert response["Content-Type"] == "application/problem+json", label
            elif reach == "outside":
                assert response.status_code == 404, label
            else:
                assert 200 <= response.status_code < 300, f"{label} {response.content[:300]!r}"
            if response.status_code >= 400 or reach == "outside":
                assert world["outside"]["title"].encode() not in response.content, label


@pytest.mark.parametrize("endpoint", COLLECTIONS, ids=lambda e: f"{e.method} {e.path}")
def test_collections_by_scope_never_list_what_is_out_of_reach(endpoint: Endpoint, world, api, responder) -> None:
    for scopes in SCOPE_SETS:
        response = _call(api(responder, scopes), endpoint, {"slug": "unauthorized-access"})
        if endpoint.scope not in scopes:
            assert response.status_code == 403, scopes
            continue
        assert response.status_code == 200 and world["outside"]["title"].encode() not in response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS + COLLECTIONS, ids=lambda e: f"{e.method} {e.path}")
def test_no_credentials_is_401_without_data(endpoint: Endpoint, world) -> None:
    ids = world["inside"] | {"slug": "unauthorized-access"}
    response = _call(Client(), endpoint, ids)
    assert response.status_code == 401 and response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert world["inside"]["title"].encode() not in response.content


def test_manager_token_reaches_the_restricted_case(world, api, manager) -> None:
    assert api(manager, ["incidents:read"]).get(f"/api/v1/incidents/{world['outside']['i']}/").status_code == 200


def test_viewer_token_with_write_scope_still_cannot_write(world, api, viewer) -> None:
    response = api(viewer, ["incidents:write"]).post(
        f"/api/v1/incidents/{world['inside']['i']}/notes/", {"body": "x"}, content_type="application/json"
    )
    assert response.status_code == 403 and "Viewers" in response.json()["detail"]


def test_outsider_token_sees_nothing(world, api, outsider) -> None:
    client = api(outsider, ["incidents:read"])
    assert client.get("/api/v1/incidents/").json()["results"] == []
    assert client.get(f"/api/v1/incidents/{world['inside']['i']}/").status_code == 404
    assert client.get("/api/v1/playbooks/").status_code == 403
