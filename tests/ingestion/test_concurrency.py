"""The same new finding delivered by 8 workers at once: one Finding, one incident, one occurrence event."""

import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from incidents import permissions
from incidents.models import Finding, InboundPayload, Incident, TimelineEvent
from incidents.services.findings import CREATED, DUPLICATE, IngestReport, payload_receive
from tests.ingestion.conftest import ANONYMOUS, as_bytes, wire

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 8


@pytest.fixture(autouse=True)
def roles(transactional_db) -> None:
    """Transactional tests flush the tables after each test, the migration-made role groups too."""
    for name in permissions.ROLES:
        Group.objects.get_or_create(name=name)


def test_eight_simultaneous_deliveries_of_a_new_finding_open_one_incident(playbook) -> None:
    # given
    body = as_bytes(wire(ANONYMOUS))
    barrier = threading.Barrier(THREADS)
    reports: list[IngestReport] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            barrier.wait(timeout=30)
            reports.append(payload_receive(source=InboundPayload.Source.SQS, body=body))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    # when
    threads = [threading.Thread(target=deliver) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    # then
    assert errors == [] and len(reports) == THREADS
    statuses = sorted(result.status for report in reports for result in report.results)
    assert statuses == [CREATED] + [DUPLICATE] * (THREADS - 1)
    finding = Finding.objects.get()
    incident = Incident.objects.get()
    assert finding.incident == incident
    assert {result.incident_id for report in reports for result in report.results} == {incident.pk}
    (event,) = TimelineEvent.objects.filter(kind=TimelineEvent.Kind.FINDING)
    assert event.incident == incident and event.summary.startswith("GuardDuty finding")
    assert TimelineEvent.objects.filter(kind=TimelineEvent.Kind.CREATED).count() == 1
    assert InboundPayload.objects.filter(status=InboundPayload.Status.ACCEPTED).count() == THREADS
