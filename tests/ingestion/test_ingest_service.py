"""finding_ingest / payload_receive: new, newer, older and identical versions; reopen; grouping; observables."""

import gc
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents.models import Finding, InboundPayload, Incident, Observable, Phase, Priority, Severity, TimelineEvent
from incidents.rows import UNFLUSHED
from incidents.services import findings
from incidents.services.findings import CREATED, DUPLICATE, STALE, UPDATED, finding_ingest, payload_receive
from integrations.aws.guardduty import parse_finding
from playbooks.checklists import checklist_items
from tests.factories import PlaybookFactory, PlaybookStepFactory
from tests.fixtures import load_guardduty
from tests.ingestion.conftest import ANONYMOUS, as_bytes, variant, version, wire

pytestmark = pytest.mark.django_db

ANONYMOUS_TYPE = "Discovery:Kubernetes/SuccessfulAnonymousAccess"


def ingest(document: dict) -> str:
    return finding_ingest(finding=parse_finding(document)).status


def finding_events(incident: Incident) -> list[TimelineEvent]:
    return list(incident.timeline.filter(kind=TimelineEvent.Kind.FINDING).order_by("id"))


@pytest.fixture
def anonymous_playbook(playbook):  # `playbook` (root conftest) is the fallback
    typed = PlaybookFactory(slug="anonymous-access", finding_types=[ANONYMOUS_TYPE])
    PlaybookStepFactory(playbook=typed, step_id="verify", position=1)
    PlaybookStepFactory(playbook=typed, step_id="contain", position=2)
    return typed


def test_a_new_finding_opens_an_incident_from_the_playbook_for_its_type(anonymous_playbook) -> None:
    # when
    report = payload_receive(source=InboundPayload.Source.WEBHOOK, body=as_bytes(wire(ANONYMOUS)))
    # then
    assert [r.status for r in report.results] == [CREATED]
    finding = Finding.objects.get()
    incident = finding.incident
    assert incident.playbook == anonymous_playbook
    assert incident.title == f"{ANONYMOUS_TYPE} on prod-eks"
    assert (incident.severity, incident.priority) == (Severity.MEDIUM, Priority.P3)
    assert (incident.source, incident.external_ref) == ("guardduty", "111122223333/us-east-1/" + finding.finding_id)
    assert [item.step.step_id for item in checklist_items(incident_id=incident.pk)] == ["verify", "contain"]
    assert set(incident.observables.values_list("kind", "value")) == {
        ("ip", "198.51.100.23"),
        ("asn", "AS64500"),
        ("k8s_user", "system:anonymous"),
        ("user_agent", "curl/8.5.0"),
        ("cluster", "arn:aws:eks:us-east-1:111122223333:cluster/prod-eks"),
    }
    (event,) = finding_events(incident)
    assert event.data["count"] == 3 and event.data["finding_id"] == finding.finding_id
    assert finding.last_payload_id == report.payload_id and finding.raw == wire(ANONYMOUS)
    assert InboundPayload.objects.get().status == InboundPayload.Status.ACCEPTED


def test_an_unknown_type_gets_the_fallback_playbook(anonymous_playbook, playbook) -> None:
    ingest(variant(wire(ANONYMOUS), type="Discovery:Kubernetes/SomethingNew"))
    assert Incident.objects.get().playbook == playbook


def test_a_sample_finding_opens_a_low_priority_sample_case(playbook) -> None:
    ingest(load_guardduty("sample_finding.json"))
    incident = Incident.objects.get()
    assert incident.title.startswith("[SAMPLE] ") and incident.priority == Priority.P4
    assert Finding.objects.get().is_sample


def test_each_newer_version_updates_the_finding_and_adds_one_occurrence_event(playbook) -> None:
    statuses = [ingest(version(n)) for n in (1, 2, 3)]
    assert statuses == [CREATED, UPDATED, UPDATED]
    finding = Finding.objects.get()
    assert finding.count == 7 and finding.raw == version(3)
    assert [e.data["count"] for e in finding_events(finding.incident)] == [1, 3, 7]
    assert Incident.objects.count() == 1


def test_an_older_version_after_a_newer_one_is_stale_and_changes_nothing(playbook) -> None:
    # given
    ingest(version(3))
    finding = Finding.objects.get()
    # when
    status = ingest(version(1))
    # then
    assert status == STALE
    after = Finding.objects.get()
    assert (after.count, after.finding_updated_at, after.raw) == (7, finding.finding_updated_at, version(3))
    assert len(finding_events(after.incident)) == 1


def test_the_same_version_twice_is_a_duplicate(playbook) -> None:
    assert [ingest(version(2)), ingest(version(2))] == [CREATED, DUPLICATE]
    assert len(finding_events(Finding.objects.get().incident)) == 1


def test_a_higher_count_with_the_same_updated_at_is_newer(playbook) -> None:
    ingest(version(2))
    assert ingest(variant(version(2), count=4)) == UPDATED
    assert Finding.objects.get().count == 4


def _close(incident: Incident, *, hours_ago: float) -> None:
    Incident.objects.filter(pk=incident.pk).update(
        phase=Phase.CLOSED, closed_at=timezone.now() - timedelta(hours=hours_ago)
    )


def test_a_newer_version_reopens_a_recently_closed_incident(playbook, settings) -> None:
    settings.WATCHPOST_REOPEN_WINDOW_HOURS = 72
    ingest(version(1))
    incident = Incident.objects.get()
    _close(incident, hours_ago=71)
    assert ingest(version(2)) == UPDATED
    incident.refresh_from_db()
    assert incident.phase == Phase.ANALYSIS and incident.reopened_at is not None
    assert incident.timeline.filter(kind=TimelineEvent.Kind.PHASE).count() == 1


def test_a_newer_version_leaves_an_incident_closed_past_the_window(playbook, settings) -> None:
    settings.WATCHPOST_REOPEN_WINDOW_HOURS = 72
    ingest(version(1))
    incident = Incident.objects.get()
    _close(incident, hours_ago=73)
    assert ingest(version(2)) == UPDATED
    incident.refresh_from_db()
    assert incident.phase == Phase.CLOSED and incident.reopened_at is None
    assert len(finding_events(incident)) == 2  # the occurrence is still on the timeline


def test_grouping_is_off_by_default(playbook) -> None:
    ingest(wire(ANONYMOUS))
    ingest(variant(wire(ANONYMOUS), id="b" * 32))
    assert Incident.objects.count() == 2


def test_with_a_group_window_the_same_type_on_the_same_cluster_shares_an_incident(playbook, settings) -> None:
    settings.WATCHPOST_GROUP_WINDOW_MINUTES = 60
    assert [ingest(wire(ANONYMOUS)), ingest(variant(wire(ANONYMOUS), id="b" * 32))] == [CREATED, CREATED]
    incident = Incident.objects.get()
    assert incident.findings.count() == 2
    first, attached = finding_events(incident)
    assert first.summary.startswith("GuardDuty finding") and attached.summary.startswith("Related finding attached")


def test_with_a_group_window_another_cluster_gets_its_own_incident(playbook, settings) -> None:
    settings.WATCHPOST_GROUP_WINDOW_MINUTES = 60
    ingest(wire(ANONYMOUS))
    other = variant(wire(ANONYMOUS), id="b" * 32)
    other["resource"]["eksClusterDetails"]["name"] = "staging-eks"
    ingest(other)
    assert Incident.objects.count() == 2


def test_an_anonymous_grant_then_its_use_on_the_same_cluster_share_an_incident(playbook, settings) -> None:
    settings.WATCHPOST_GROUP_WINDOW_MINUTES = 60
    ingest(wire("Policy_Kubernetes_AnonymousAccessGranted"))
    ingest(wire("Persistence_Kubernetes_SuccessfulAnonymousAccess"))  # prod-eks, same account
    incident = Incident.objects.get()
    assert sorted(incident.findings.values_list("finding_type", flat=True)) == [
        "Persistence:Kubernetes/SuccessfulAnonymousAccess",
        "Policy:Kubernetes/AnonymousAccessGranted",
    ]


def test_an_ip_seen_in_two_findings_is_one_observable_on_both_incidents(playbook) -> None:
    # both come from 203.0.113.201, on different clusters
    ingest(wire("CredentialAccess_Kubernetes_MaliciousIPCaller"))
    ingest(wire("DefenseEvasion_Kubernetes_MaliciousIPCaller"))
    observable = Observable.objects.get(kind="ip", value="203.0.113.201")
    assert observable.incidents.count() == 2 == Incident.objects.count()


def test_a_finding_whose_row_was_purged_but_whose_incident_remains_is_ingested_again(playbook) -> None:
    # given: the finding row is gone (a retention purge, say); its incident keeps the external reference
    ingest(version(1))
    incident = Incident.objects.get()
    Finding.objects.all().delete()
    # when
    report = payload_receive(source=InboundPayload.Source.SQS, body=as_bytes(version(2)))
    # then: the finding comes back on its incident (or at worst is quarantined), never an exception
    assert [r.status for r in report.results] == [CREATED]
    assert Finding.objects.get().incident == incident


@pytest.mark.parametrize("on_before", [True, False])
def test_the_collector_is_off_while_a_payload_is_parsed_and_as_it_was_after(monkeypatch, playbook, on_before) -> None:
    # given: a probe on the parser, which runs inside the payload's processing
    seen: list[bool] = []
    real = findings.parse_finding
    monkeypatch.setattr(findings, "parse_finding", lambda document: seen.append(gc.isenabled()) or real(document))
    body = as_bytes(variant(wire(ANONYMOUS), id="gc-one"), variant(wire(ANONYMOUS), id="gc-two"))
    if not on_before:
        gc.disable()
    try:
        # when
        report = payload_receive(source=InboundPayload.Source.IMPORT, body=body)
        after = gc.isenabled()
    finally:
        gc.enable()
    # then
    assert report.counts[CREATED] == 2
    assert seen == [False, False] and after is on_before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs statements one by one")
@pytest.mark.django_db(transaction=True)
def test_an_event_opening_a_case_costs_three_round_trips(playbook, settings) -> None:
    """Store the payload (not waiting for the disk); look the key up (BEGIN riding along); write the case
    (COMMIT riding along, waiting for the disk for both). P3."""
    settings.WATCHPOST_DB_PREPARED_STATEMENTS = False  # (else the session's first event also PREPAREs)
    document = wire(ANONYMOUS)
    payload_receive(source=InboundPayload.Source.SQS, body=as_bytes(variant(document, id="a" * 32)))  # warm caches
    connection.connection.notices.clear()
    # when
    with CaptureQueriesContext(connection) as captured:
        report = payload_receive(source=InboundPayload.Source.SQS, body=as_bytes(document))
    # then: each entry is what the driver sent in one round trip (Django's own BEGIN and COMMIT log lines,
    # for which it sent nothing, left out)
    sent = [query["sql"] for query in captured if query["sql"] not in ("BEGIN", "COMMIT")]
    assert report.counts["created"] == 1 and Incident.objects.count() == 2
    assert len(sent) == 3, sent
    assert sent[0].startswith(f'{UNFLUSHED}; INSERT INTO "incidents_inboundpayload"')
    assert sent[0].endswith('RETURNING "id"')
    assert sent[1].startswith("BEGIN; SELECT p.library_last") and "nextval(" in sent[1]
    assert sent[2].startswith('INSERT INTO "incidents_incident"') and sent[2].endswith("; COMMIT")
    assert not any(UNFLUSHED in sql for sql in sent[1:])  # the case's COMMIT waits for the disk, as ever
    # the new case's observable links need no conflict check (no link to it can exist); new observables do
    assert sent[2].count("ON CONFLICT DO NOTHING") == 1 and 'INTO "incidents_observable" ' in sent[2]
    # no BEGIN or COMMIT went twice, and the SET LOCAL was inside the payload's own (implicit) transaction
    assert connection.connection.notices == []
    assert InboundPayload.objects.get(pk=report.payload_id).status == InboundPayload.Status.ACCEPTED


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL setting")
@pytest.mark.django_db(transaction=True)
def test_a_payload_stored_for_later_commits_waiting_for_the_disk(settings) -> None:
    # given: nothing processes it next (the reconcile sweep will)
    settings.WATCHPOST_DB_PREPARED_STATEMENTS = False  # (one statement, not a PREPARE first)
    with CaptureQueriesContext(connection) as captured:
        payload = findings.payload_store(source=InboundPayload.Source.SQS, body=as_bytes(wire(ANONYMOUS)))
    # then
    assert len(captured) == 1 and UNFLUSHED not in captured[0]["sql"]
    assert InboundPayload.objects.get(pk=payload.pk).status == InboundPayload.Status.RECEIVED
