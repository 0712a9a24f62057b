"""The list page's named rows walk the same cases, in the same order, as the model selector."""

import pytest

from incidents.models import Incident
from incidents.selectors import INCIDENT_SORTS, IncidentFilters, incident_list_for_user, incident_list_rows_for_user
from incidents.services import incident_open

pytestmark = pytest.mark.django_db


def _walk(selector, user, sort: str) -> list[int]:
    seen, cursor = [], None
    while True:
        page = selector(user=user, filters=IncidentFilters(sort=sort, phase="all"), cursor=cursor, size=3)
        seen += [row.id for row in page.items]
        if not page.next_cursor:
            return seen
        cursor = page.next_cursor


@pytest.mark.parametrize("sort", list(INCIDENT_SORTS))
def test_rows_and_models_paginate_identically(playbook, responder, manager, sort: str) -> None:
    for n in range(10):
        incident = incident_open(title=f"case {n}", playbook=playbook, actor=responder, severity=1 + n % 4)
        if n % 3 == 0:
            Incident.objects.filter(pk=incident.pk).update(acknowledged=True, commander=manager)
    rows = _walk(incident_list_rows_for_user, manager, sort)
    assert rows == _walk(incident_list_for_user, manager, sort)
    assert sorted(rows) == sorted(Incident.objects.values_list("id", flat=True))


def test_rows_carry_the_commander_name(playbook, responder, manager) -> None:
    incident = incident_open(title="x", playbook=playbook, actor=responder)
    Incident.objects.filter(pk=incident.pk).update(commander=manager)
    page = incident_list_rows_for_user(user=manager, filters=IncidentFilters(), cursor=None, size=10)
    assert page.items[0].commander__username == "manager"
