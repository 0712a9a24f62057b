"""Schemathesis against the generated OpenAPI schema, in-process (WSGI), with two users' tokens.

Every operation gets WATCHPOST_FUZZ_EXAMPLES generated requests (20 in `make test`, 100+ in
`make test-api-fuzz`), each sent with a responder's and a manager's token; path ids point at a case
inside the responder's reach, one outside it, or a random id. Checks: no 5xx, every status code and
body as documented (problem+json included), content types as documented.
"""

import itertools
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from incidents.models import Finding, Incident
from incidents.services import evidence_add, incident_open
from integrations.services import api_token_create
from playbooks.models import ChecklistItem
from tests.conftest import build_playbook
from tests.factories import UserFactory

STATUSES: Counter[str] = Counter()
EXAMPLES = int(os.environ.get("WATCHPOST_FUZZ_EXAMPLES", "20"))


def _schema() -> dict[str, Any]:
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(_schema())
schema.app = WSGIHandler()  # type: ignore[misc]
CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


@pytest.fixture
def in_test_transaction() -> Iterator[None]:
    """The WSGI handler closes the database connection after each request, which would end the
    test's transaction; Django's test client switches that off the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(db, settings, tmp_path, in_test_transaction) -> dict[str, Any]:
    settings.MEDIA_ROOT = tmp_path
    playbook = build_playbook()
    responder = UserFactory(username="fuzz-responder", role="responder")
    manager = UserFactory(username="fuzz-manager", role="manager")
    targets = []
    for restricted in (False, True):
        incident = incident_open(
            title="fuzzed", playbook=playbook, actor=manager, source="jira", external_ref=f"F-{int(restricted)}"
        )
        Incident.objects.filter(pk=incident.pk).update(restricted=restricted)
        evidence = evidence_add(incident_id=incident.pk, actor=manager, upload=SimpleUploadedFile("e.txt", b"x"))
        finding = Finding.objects.create(
            incident=incident, account_id="123456789012", region="eu-west-1", finding_id=f"fuzz-{restricted}",
            finding_type="Discovery:Kubernetes/SuccessfulAnonymousAccess", severity=5.0,
            finding_updated_at=timezone.now(), raw={"id": "x"},
        )  # fmt: skip
        items = list(ChecklistItem.objects.filter(incident=incident).values_list("pk", flat=True))
        for item in items:
            targets.append(
                {"incident_id": incident.pk, "item_id": item, "evidence_id": evidence.pk, "finding_id": finding.pk}
            )
    targets.append({"slug": playbook.slug})
    scopes = ["incidents:read", "incidents:write", "evidence:read", "evidence:write", "remediation:execute"]
    tokens = [api_token_create(user=user, name="fuzz", scopes=scopes).plaintext for user in (responder, manager)]
    return {"tokens": tokens, "targets": itertools.cycle([*targets, None])}


def _steer(case: Any, world: dict[str, Any]) -> None:
    """Point most cases at real objects (inside and outside the responder's reach); the rest stay random."""
    target = next(world["targets"])
    if target is None or not case.path_parameters:
        return
    for name, value in target.items():
        if name in case.path_parameters:
            case.path_parameters[name] = value


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case: Any, fuzz_world: dict[str, Any]) -> None:
    _steer(case, fuzz_world)
    for token in fuzz_world["tokens"]:
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        STATUSES[f"{case.method} {case.path} {response.status_code}"] += 1
        case.validate_response(response, checks=CHECKS)


def teardown_module() -> None:
    if os.environ.get("WATCHPOST_FUZZ_REPORT"):
        for key, count in sorted(STATUSES.items()):
            print(f"{count:6} {key}")
