"""incidents.rows: the plain INSERT/UPDATE of the ingestion path stores what the ORM would store."""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.forms.models import model_to_dict

from incidents.models import InboundPayload, Incident, Observable, TimelineEvent
from incidents.rows import row_update, rows_insert

pytestmark = pytest.mark.django_db

MOMENT = datetime(2026, 11, 28, 12, 0, 30, 123456, tzinfo=UTC)


def _stored(model, pk: int, *, leave_out: tuple[str, ...] = ()) -> dict:
    row = model_to_dict(model.objects.get(pk=pk))
    return {name: value for name, value in row.items() if name not in ("id", *leave_out)}


def test_an_incident_row_is_the_one_the_orm_writes(playbook) -> None:
    fields = {
        "title": "Discovery on prod-eks",
        "summary": "quotes ' and \" and a backslash \\",
        "severity": 8,
        "priority": 2,
        "finding_type": "Discovery:Kubernetes/SuccessfulAnonymousAccess",
        "cluster_name": "prod-eks",
        "account_id": "111122223333",
        "region": "us-east-1",
        "source": "guardduty",
        "detected_at": MOMENT,
        "sla_due_at": MOMENT,
    }
    # when
    by_orm = Incident.objects.create(playbook=playbook, external_ref="a/b/orm", **fields)
    (pk,) = rows_insert(Incident, [fields | {"playbook_id": playbook.pk, "external_ref": "a/b/rows"}])
    # then: the same columns, defaults included; only the timestamps taken at insert differ
    leave_out = ("external_ref", "created_at", "updated_at")
    assert _stored(Incident, pk, leave_out=leave_out) == _stored(Incident, by_orm.pk, leave_out=leave_out)
    stored = Incident.objects.get(pk=pk)
    assert stored.created_at == stored.updated_at and stored.created_at is not None  # auto_now(_add)
    assert (stored.phase, stored.resolution, stored.close_override_reason) == ("new", "", "")


def test_json_and_binary_values_round_trip() -> None:
    body = b'\x00\xff{"id": 1}'
    meta = {"file": "findings.json.gz", "nested": {"list": [1, "two", None], "unicode": "café"}}
    # when
    (pk,) = rows_insert(
        InboundPayload, [{"source": "import", "body": body, "sha256": "0" * 64, "size": 9, "meta": meta}]
    )
    # then
    stored = InboundPayload.objects.get(pk=pk)
    assert (bytes(stored.body), stored.meta, stored.status, stored.counts) == (body, meta, "received", {})


def test_ids_come_back_in_row_order_across_batches(incident, monkeypatch) -> None:
    # given: the backend allows two rows per statement (as SQLite's parameter cap would)
    monkeypatch.setattr(connection.ops, "bulk_batch_size", lambda fields, objs: 2)
    rows = [
        {"incident_id": incident.pk, "kind": "note", "summary": f"row {n}", "data": {"n": n}, "occurred_at": MOMENT}
        for n in range(5)
    ]
    # when
    ids = rows_insert(TimelineEvent, rows)
    # then
    assert [TimelineEvent.objects.get(pk=pk).data["n"] for pk in ids] == [0, 1, 2, 3, 4]


def test_ignore_conflicts_skips_an_existing_row_and_returns_no_ids() -> None:
    Observable.objects.create(kind="ip", value="198.51.100.23")
    # when
    ids = rows_insert(Observable, [{"kind": "ip", "value": "198.51.100.23"}, {"kind": "asn", "value": "AS64500"}],
                      ignore_conflicts=True)  # fmt: skip
    # then
    assert ids == []
    assert sorted(Observable.objects.values_list("kind", "value")) == [("asn", "AS64500"), ("ip", "198.51.100.23")]


def test_a_not_null_column_left_out_is_refused_like_the_orm(playbook) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_insert(Incident, [{"title": "no detection time", "playbook_id": playbook.pk, "sla_due_at": MOMENT}])
    assert not Incident.objects.exists()


def test_row_update_changes_only_the_named_columns() -> None:
    (pk,) = rows_insert(InboundPayload, [{"source": "sqs", "body": b"{}", "sha256": "1" * 64, "size": 2}])
    # when
    changed = row_update(InboundPayload, pk, {"status": "accepted", "counts": {"created": 1}, "processed_at": MOMENT})
    # then
    stored = InboundPayload.objects.get(pk=pk)
    assert changed == 1
    assert (stored.status, stored.counts, stored.processed_at) == ("accepted", {"created": 1}, MOMENT)
    assert (stored.source, bytes(stored.body)) == ("sqs", b"{}")
    assert row_update(InboundPayload, pk + 1000, {"status": "rejected"}) == 0


def test_a_null_and_a_constant_default_are_shared_but_a_callable_default_is_called_per_row() -> None:
    from integrations.models import WebhookSubscription

    rows = [{"name": f"sink {n}", "url": "https://tickets.example.com/hook", "previous_secret_expires_at": None}
            for n in range(3)]  # fmt: skip
    # when: no secret given (its default is a callable: a new random secret), nor active (a constant)
    ids = rows_insert(WebhookSubscription, rows)
    # then: each row called the default for itself; the NULL and the constant are the same in every row
    stored = WebhookSubscription.objects.filter(pk__in=ids)
    assert len({sub.secret for sub in stored}) == 3 and all(len(sub.secret) >= 32 for sub in stored)
    assert [(sub.active, sub.previous_secret_expires_at, sub.event_types) for sub in stored] == [(True, None, [])] * 3
