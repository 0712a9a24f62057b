"""The same new finding delivered by 8 workers at once: one Finding, one incident, one occurrence event."""

import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from incidents import permissions
from incidents.models import Finding, InboundPayload, Incident, QuarantinedDocument, TimelineEvent
from incidents.services.findings import CREATED, DUPLICATE, REJECTED, IngestReport, payload_receive
from tests.ingestion.conftest import ANONYMOUS, as_bytes, variant, wire

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # SQLite (`make run`) lets one writer in at a time: a rival delivery waits for ours, so there is no
    # race to lose, and the threads time out on its lock instead. `make test` runs on PostgreSQL.
    pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL"),
]
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


def test_an_event_that_loses_the_insert_race_starts_over_and_reports_a_duplicate(playbook, monkeypatch) -> None:
    """A one-chunk payload inserts its new rows without a savepoint; losing the race costs its whole
    transaction, which is done again once: the same result as taking the finding after the winner."""
    from incidents.services import findings_batch

    # given: a payload of one bad document and one new finding, and a concurrent delivery of that
    # finding that commits between our key lookup (nothing stored yet) and our inserts
    document = wire(ANONYMOUS)
    bad = variant(document, id=None)
    lookups: list[int] = []
    real_lookup = findings_batch._stored_versions

    ours = threading.current_thread()

    def lookup_then_lose_the_race(found):
        stored = real_lookup(found)
        if threading.current_thread() is not ours:  # the rival's own lookup
            return stored
        lookups.append(len(stored[0]))
        if len(lookups) == 1:
            rival = threading.Thread(target=_deliver_elsewhere, args=(as_bytes(document),))
            rival.start()
            rival.join(timeout=30)
        return stored

    monkeypatch.setattr(findings_batch, "_stored_versions", lookup_then_lose_the_race)
    # when
    report = payload_receive(source=InboundPayload.Source.SQS, body=as_bytes(bad, document))
    # then: the first attempt found nothing and lost; the second found the winner's finding
    assert lookups == [0, 1]
    assert [result.status for result in report.results] == [REJECTED, DUPLICATE]
    assert report.counts == {"created": 0, "updated": 0, "duplicate": 1, "stale": 0, "rejected": 1}
    incident = Incident.objects.get()
    assert Finding.objects.get().incident == incident and report.results[1].incident_id == incident.pk
    assert TimelineEvent.objects.filter(kind=TimelineEvent.Kind.CREATED).count() == 1
    # and the lost attempt left nothing behind: the bad document is quarantined once, the payload closed
    (quarantined,) = QuarantinedDocument.objects.all()
    assert quarantined.payload_id == report.payload_id and quarantined.position == 0
    payload = InboundPayload.objects.get(pk=report.payload_id)
    assert payload.status == InboundPayload.Status.PARTIAL and payload.counts == report.counts


def _deliver_elsewhere(body: bytes) -> None:
    """Another worker's delivery, on its own connection, committed before it returns."""
    try:
        (result,) = payload_receive(source=InboundPayload.Source.WEBHOOK, body=body).results
        assert result.status == CREATED
    finally:
        connection.close()
