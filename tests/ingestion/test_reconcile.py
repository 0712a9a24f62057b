"""The reconcile sweep's selection (the re-enqueue itself runs against a real broker in
tests/reliability/test_broker_loss.py) and the queued payload path it feeds."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.models import Finding, InboundPayload, QuarantinedDocument
from incidents.services.findings import payload_process_pending, payload_store
from incidents.services.reconcile import action_run_ids_unclaimed, payload_ids_pending, payloads_take_pending
from playbooks.models import ActionRun
from tests.ingestion.conftest import ANONYMOUS, as_bytes, wire

pytestmark = pytest.mark.django_db


def _aged(payload: InboundPayload, minutes: int) -> None:
    InboundPayload.objects.filter(pk=payload.pk).update(received_at=timezone.now() - timedelta(minutes=minutes))


def test_only_payloads_left_unprocessed_past_the_grace_period_are_pending(playbook) -> None:
    # given: an old unprocessed payload, a fresh one, and an old one already processed
    old = payload_store(source=InboundPayload.Source.SQS, body=as_bytes(wire(ANONYMOUS)))
    fresh = payload_store(source=InboundPayload.Source.SQS, body=b"{}")
    done = payload_store(source=InboundPayload.Source.SQS, body=b"{}")
    payload_process_pending(payload_id=done.pk)
    for payload in (old, done):
        _aged(payload, 30)
    # then
    assert payload_ids_pending(older_than=timedelta(minutes=10)) == [old.pk]
    assert fresh.pk in payload_ids_pending(older_than=timedelta(0))


def test_a_queued_payload_is_processed_once_and_a_second_delivery_is_a_no_op(playbook) -> None:
    payload = payload_store(source=InboundPayload.Source.SQS, body=as_bytes(wire(ANONYMOUS)))
    first = payload_process_pending(payload_id=payload.pk)
    second = payload_process_pending(payload_id=payload.pk)
    assert first is not None and first.counts["created"] == 1
    assert second is None
    assert Finding.objects.count() == 1
    assert InboundPayload.objects.get(pk=payload.pk).status == InboundPayload.Status.ACCEPTED


def test_only_queued_runs_never_claimed_past_the_grace_period_are_requeued(incident) -> None:
    old = ActionRun.objects.create(incident=incident, action="rbac.inspect", status=ActionRun.Status.QUEUED)
    claimed = ActionRun.objects.create(
        incident=incident, action="rbac.inspect", status=ActionRun.Status.QUEUED, claimed_at=timezone.now()
    )
    proposed = ActionRun.objects.create(incident=incident, action="rbac.remediate", status=ActionRun.Status.PROPOSED)
    ActionRun.objects.filter(pk__in=[old.pk, claimed.pk, proposed.pk]).update(
        created_at=timezone.now() - timedelta(minutes=30)
    )
    fresh = ActionRun.objects.create(incident=incident, action="rbac.inspect", status=ActionRun.Status.QUEUED)
    assert action_run_ids_unclaimed(older_than=timedelta(minutes=10)) == [old.pk]
    assert fresh.pk in action_run_ids_unclaimed(older_than=timedelta(0))


def test_a_payload_that_keeps_failing_is_quarantined_after_the_cap(playbook) -> None:
    # given: an unprocessed payload the sweep has already re-enqueued twice
    payload = payload_store(source=InboundPayload.Source.SQS, body=as_bytes(wire(ANONYMOUS)))
    _aged(payload, 30)
    grace = timedelta(minutes=10)
    # when / then: two more sweeps re-enqueue it and count; the third gives up
    assert payloads_take_pending(older_than=grace, max_attempts=2) == ([payload.pk], [])
    assert payloads_take_pending(older_than=grace, max_attempts=2) == ([payload.pk], [])
    assert InboundPayload.objects.get(pk=payload.pk).meta["reconcile_attempts"] == 2
    assert payloads_take_pending(older_than=grace, max_attempts=2) == ([], [payload.pk])
    payload.refresh_from_db()
    assert payload.status == InboundPayload.Status.REJECTED
    assert "2 re-enqueues" in QuarantinedDocument.objects.get(payload=payload).reason
    assert payloads_take_pending(older_than=grace, max_attempts=2) == ([], [])
