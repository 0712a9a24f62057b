"""Property: any interleaving of duplicates, replays and out-of-order versions converges on the latest one."""

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents.models import Finding, Incident, TimelineEvent
from incidents.services.findings import CREATED, DUPLICATE, STALE, UPDATED, finding_ingest
from integrations.aws.guardduty import parse_finding
from tests.ingestion.conftest import variant, version

pytestmark = pytest.mark.django_db

# v1 < v2 < v2 with a higher count at the same UpdatedAt < v3, ordered by (UpdatedAt, Count).
VERSIONS = [version(1), version(2), variant(version(2), count=4), version(3)]
ORDER = [(doc["updatedAt"], doc["service"]["count"]) for doc in VERSIONS]
assert ORDER == sorted(ORDER) and len(set(ORDER)) == len(ORDER)


def expected_statuses(sequence: list[int]) -> list[str]:
    """What each arrival should report: the first creates, a new record updates, the rest change nothing."""
    statuses, best = [], -1
    for index in sequence:
        statuses.append(CREATED if best < 0 else UPDATED if index > best else DUPLICATE if index == best else STALE)
        best = max(best, index)
    return statuses


@given(sequence=st.lists(st.integers(min_value=0, max_value=len(VERSIONS) - 1), min_size=1, max_size=12))
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,  # no .hypothesis/ example store in the working tree
)
def test_any_delivery_order_ends_with_the_latest_version_one_incident_and_one_event_per_record(
    playbook, sequence: list[int]
) -> None:
    savepoint = transaction.savepoint()  # each example starts from the same empty tables
    try:
        # when
        statuses = [finding_ingest(finding=parse_finding(VERSIONS[index])).status for index in sequence]
        # then
        latest = VERSIONS[max(sequence)]
        stored = Finding.objects.get()
        assert (stored.count, stored.raw) == (latest["service"]["count"], latest)
        assert stored.finding_updated_at == parse_finding(latest).updated_at
        assert Incident.objects.count() == 1
        assert statuses == expected_statuses(sequence)
        # one occurrence event per arrival that beat everything before it: 1 + the strict record increases
        records = [index for n, index in enumerate(sequence) if index > max(sequence[:n], default=-1)]
        events = TimelineEvent.objects.filter(kind=TimelineEvent.Kind.FINDING, incident=stored.incident)
        assert list(events.order_by("id").values_list("data__count", flat=True)) == [
            VERSIONS[index]["service"]["count"] for index in records
        ]
    finally:
        transaction.savepoint_rollback(savepoint)
