"""An ingested case's checklist rows are written on its first read, once, and every reader sees them."""

import pytest
from django.test import Client
from django.urls import reverse

from incidents.errors import CloseGateError
from incidents.models import InboundPayload, Incident, Phase, Resolution
from incidents.services import incident_change_phase
from incidents.services.findings import payload_receive
from integrations.services import api_token_create
from playbooks.checklists import checklist_items, checklist_materialise
from playbooks.models import ChecklistItem
from tests.conftest import PLAYBOOK_STEPS
from tests.ingestion.conftest import ANONYMOUS, as_bytes, variant, wire

pytestmark = pytest.mark.django_db

STEP_IDS = [step_id for step_id, *_ in PLAYBOOK_STEPS]


@pytest.fixture
def ingested(playbook) -> Incident:  # `playbook` (root conftest) is the fallback every type falls to
    payload_receive(source=InboundPayload.Source.WEBHOOK, body=as_bytes(wire(ANONYMOUS)))
    return Incident.objects.get()


def test_ingestion_writes_no_checklist_rows(ingested) -> None:
    assert not ChecklistItem.objects.filter(incident=ingested).exists()


def test_first_read_writes_the_pinned_steps_once_in_playbook_order(ingested) -> None:
    # when
    first = checklist_items(incident_id=ingested.pk)
    again = checklist_items(incident_id=ingested.pk)
    checklist_materialise(incident_ids=[ingested.pk])  # a concurrent first read, late

    # then
    assert [item.step.step_id for item in first] == STEP_IDS
    assert [item.pk for item in again] == [item.pk for item in first]
    assert ChecklistItem.objects.filter(incident=ingested).count() == len(STEP_IDS)
    assert {item.status for item in first} == {ChecklistItem.Status.TODO}


def test_materialising_leaves_worked_items_alone(ingested, responder) -> None:
    # given: one item worked
    item = checklist_items(incident_id=ingested.pk)[0]
    ChecklistItem.objects.filter(pk=item.pk).update(status=ChecklistItem.Status.DONE, comment="seen")

    # when
    checklist_materialise(incident_ids=[ingested.pk])

    # then
    stored = ChecklistItem.objects.get(pk=item.pk)
    assert (stored.status, stored.comment) == (ChecklistItem.Status.DONE, "seen")


def test_one_statement_writes_many_cases(playbook) -> None:
    # given: three ingested cases nobody opened
    documents = [variant(wire(ANONYMOUS), id=f"lazy-{n}") for n in range(3)]
    payload_receive(source=InboundPayload.Source.IMPORT, body=as_bytes(*documents))
    ids = list(Incident.objects.values_list("pk", flat=True))

    # when
    checklist_materialise(incident_ids=ids)

    # then
    assert ChecklistItem.objects.count() == 3 * len(STEP_IDS)


def test_close_gate_counts_the_steps_of_a_case_nobody_opened(ingested, manager) -> None:
    # given: an ingested case moved to post-incident without anyone reading its checklist
    Incident.objects.filter(pk=ingested.pk).update(phase=Phase.POST_INCIDENT, resolution=Resolution.TRUE_POSITIVE)

    # when
    with pytest.raises(CloseGateError) as caught:
        incident_change_phase(incident_id=ingested.pk, actor=manager, to=Phase.CLOSED)

    # then: every mandatory step is still to do
    mandatory = sum(1 for *_, is_mandatory in PLAYBOOK_STEPS if is_mandatory)
    assert len(caught.value.open_items) == mandatory
    assert Incident.objects.get(pk=ingested.pk).phase == Phase.POST_INCIDENT


def test_incident_page_shows_the_checklist_of_an_ingested_case(ingested, responder) -> None:
    client = Client()
    client.force_login(responder)

    response = client.get(reverse("incidents:detail", args=[ingested.pk]))

    assert response.status_code == 200
    body = response.content.decode()
    assert f"checklist 0/{len(STEP_IDS)} closed" in body
    assert "P1 confirm" in body and "P3 improve" in body


def test_api_lists_the_checklist_of_an_ingested_case(ingested, responder) -> None:
    token = api_token_create(user=responder, name="tests", scopes=["incidents:read"]).plaintext
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = client.get(f"/api/v1/incidents/{ingested.pk}/checklist/")

    assert response.status_code == 200
    assert [item["step_id"] for item in response.json()] == STEP_IDS
