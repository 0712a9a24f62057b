"""incidents.rows: the plain INSERT/UPDATE of the ingestion path stores what the ORM would store."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from incidents.models import Finding, InboundPayload, Incident, Observable, QuarantinedDocument, TimelineEvent
from incidents.rows import (
    _PER_ROW,
    UNFLUSHED,
    _column,
    _db_value,
    atomic_batched,
    commits_unflushed,
    id_drawn_sql,
    prepared,
    row_update,
    rows_insert,
    statement_send,
    writes_batched,
)

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
    row_update(InboundPayload, pk, {"status": "accepted", "counts": {"created": 1}, "processed_at": MOMENT})
    row_update(InboundPayload, pk + 1000, {"status": "rejected"})  # no such row: nothing changes
    # then
    stored = InboundPayload.objects.get(pk=pk)
    assert (stored.status, stored.counts, stored.processed_at) == ("accepted", {"created": 1}, MOMENT)
    assert (stored.source, bytes(stored.body)) == ("sqs", b"{}")
    assert InboundPayload.objects.count() == 1


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


# --- writes_batched -----------------------------------------------------------------------------------

postgresql_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs statements one by one")


_VALUES = ["text", 7, 2.5, True, MOMENT]  # a str, an int, a float, a bool, an aware datetime


@postgresql_only
@pytest.mark.parametrize("model", [Incident, Finding, TimelineEvent, InboundPayload, Observable,
                                   Observable.incidents.through, QuarantinedDocument])  # fmt: skip
def test_a_value_sent_as_it_is_is_what_its_field_would_send(model) -> None:
    passed = 0
    for field in model._meta.concrete_fields:
        for value in _VALUES:
            try:
                ours = _db_value(field, value, connection)
            except (TypeError, ValueError, ValidationError):
                continue  # refused by the field itself, as the ORM would
            if ours is not value:
                continue  # prepared by the field itself: nothing to compare
            passed += 1
            djangos = field.get_db_prep_save(value, connection)
            assert (type(djangos), djangos) == (type(value), value), (field, value)
    assert passed >= 3  # (every model here has text, integer or date columns that go as they are)


def _comparable(value):
    return type(value), getattr(value, "adapted", value)  # (a Jsonb wrapper: the value it holds)


@pytest.mark.parametrize("model", [Incident, Finding, TimelineEvent, InboundPayload, Observable,
                                   Observable.incidents.through, QuarantinedDocument])  # fmt: skip
def test_a_null_and_a_constant_default_prepared_once_are_what_the_field_would_send(model) -> None:
    constants = 0
    for field in model._meta.concrete_fields:
        column = _column(field, connection.vendor)
        assert _comparable(column.null) == _comparable(field.get_db_prep_save(None, connection)), field
        if column.left_out is _PER_ROW:
            assert callable(field.default) or getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
            continue
        constants += 1
        djangos = field.get_db_prep_save(field.get_default(), connection)
        assert _comparable(column.left_out) == _comparable(djangos), field
    assert constants >= 1


@pytest.fixture
def plain_statements(settings) -> None:
    """Statements sent as they are, not prepared (incidents.rows.prepared): these tests read their text."""
    settings.WATCHPOST_DB_PREPARED_STATEMENTS = False


def _observable_rows(*values: str) -> list[dict]:
    return [{"kind": "ip", "value": value} for value in values]


@postgresql_only
@pytest.mark.usefixtures("plain_statements")
def test_batched_writes_travel_with_the_next_statement_in_order() -> None:
    with CaptureQueriesContext(connection) as sent, writes_batched():
        rows_insert(Observable, _observable_rows("198.51.100.1"), returning=False)
        statement_send(
            'UPDATE "incidents_observable" SET "value" = %s WHERE "value" = %s', ["198.51.100.2", "198.51.100.1"]
        )
        assert len(sent) == 0  # queued, not sent
        # when: a statement with an answer follows (here the ORM's)
        values = list(Observable.objects.values_list("value", flat=True))
    # then: one round trip carried all three, and the query saw both writes, in their order
    assert values == ["198.51.100.2"]
    assert len(sent) == 1 and sent[0]["sql"].count(";") == 2


@postgresql_only
@pytest.mark.usefixtures("plain_statements")
def test_what_is_still_queued_goes_at_the_end_of_the_block_in_one_round_trip() -> None:
    # (a test runs inside a transaction: the outer block begins in it)
    with CaptureQueriesContext(connection) as sent:
        with writes_batched():
            rows_insert(Observable, _observable_rows("198.51.100.3"), ignore_conflicts=True)
            with writes_batched():  # nested in the same transaction: its queue waits for the outer end
                rows_insert(Observable, _observable_rows("198.51.100.4"), returning=False)
            assert len(sent) == 0
            rows_insert(Observable, _observable_rows("198.51.100.5"), returning=False)
        # then
        assert len(sent) == 1 and sent[0]["sql"].count(";") == 2
    assert sorted(Observable.objects.values_list("value", flat=True)) == [
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
    ]


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("plain_statements")
def test_a_block_begun_outside_a_transaction_sends_a_nested_transactions_writes_before_its_commit() -> None:
    with CaptureQueriesContext(connection) as sent, writes_batched():
        rows_insert(Observable, _observable_rows("198.51.100.14"), returning=False)  # autocommit: sent now
        with transaction.atomic(), writes_batched():
            rows_insert(Observable, _observable_rows("198.51.100.15"), returning=False)
            rows_insert(Observable, _observable_rows("198.51.100.16"), returning=False)
        # then: the transaction's two went together, before its COMMIT
        statements = [query["sql"].split(" VALUES ")[-1] for query in sent]
    assert statements == ["('ip', '198.51.100.14')", "BEGIN", "('ip', '198.51.100.16')", "COMMIT"]
    assert sent[2]["sql"].count(";") == 1
    assert Observable.objects.count() == 3


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_block_begun_outside_a_transaction_queues_nothing_of_a_transaction_without_its_own_block() -> None:
    # when: a write inside a transaction that is rolled back, under a block begun before it
    with pytest.raises(ValueError, match="give up"), writes_batched():
        with transaction.atomic():
            rows_insert(Observable, _observable_rows("198.51.100.17"), returning=False)
            raise ValueError("give up")
    # then: it went, and went back, with its transaction; the block's end did not send it after
    assert not Observable.objects.exists()


@postgresql_only
def test_an_error_in_a_queued_write_is_raised_inside_its_savepoint() -> None:
    Observable.objects.create(kind="ip", value="198.51.100.6")
    # when: a duplicate waits, and the savepoint's release carries it
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(), writes_batched():
            rows_insert(Observable, _observable_rows("198.51.100.7"), returning=False)
            rows_insert(Observable, _observable_rows("198.51.100.6"), returning=False)
        # then: rolled back to the savepoint; the transaction goes on
        assert list(Observable.objects.values_list("value", flat=True)) == ["198.51.100.6"]
        rows_insert(Observable, _observable_rows("198.51.100.8"), returning=False)
    assert Observable.objects.count() == 2


@postgresql_only
def test_a_database_error_drops_the_queue_and_any_other_error_sends_it_first() -> None:
    # when: a database error leaves the block (its transaction is being rolled back)
    with pytest.raises(DatabaseError, match="the server went away"), writes_batched():
        rows_insert(Observable, _observable_rows("198.51.100.9"), returning=False)
        raise DatabaseError("the server went away")
    # then: the queued write was not sent
    assert not Observable.objects.exists()
    # when: an application error leaves the block
    with pytest.raises(ValueError, match="not the database"), writes_batched():
        rows_insert(Observable, _observable_rows("198.51.100.10"), returning=False)
        raise ValueError("not the database")
    # then: the write was sent, as it would have been without the block
    assert list(Observable.objects.values_list("value", flat=True)) == ["198.51.100.10"]


@postgresql_only
def test_an_error_that_dooms_the_transaction_drops_the_queue_and_is_the_error_raised() -> None:
    # (a test runs inside a transaction: the block and the atomic without a savepoint are nested in it)
    with transaction.atomic():
        # when: an application error leaves a block without a savepoint, which dooms the transaction
        with pytest.raises(TypeError, match="not a string"), writes_batched():
            rows_insert(Observable, _observable_rows("198.51.100.18"), returning=False)
            with transaction.atomic(savepoint=False):
                raise TypeError("not a string")
        # then: the error raised is the application's (sending the queue raised TransactionManagementError)
        assert connection.needs_rollback
        transaction.set_rollback(False)  # only to look: nothing was sent
        assert not Observable.objects.filter(value="198.51.100.18").exists()


@postgresql_only
def test_a_statement_without_parameters_keeps_its_percent_signs_when_it_carries_the_queue() -> None:
    with writes_batched():
        rows_insert(Observable, _observable_rows("198.51.100.11"), returning=False)
        with connection.cursor() as cursor:
            cursor.execute("SELECT '100%' AS share, (SELECT count(*) FROM \"incidents_observable\")")
            row = cursor.fetchone()
    assert row == ("100%", 1)


@pytest.mark.usefixtures("plain_statements")
def test_outside_postgresql_or_outside_a_block_every_write_is_sent_at_once() -> None:
    with CaptureQueriesContext(connection) as sent:
        rows_insert(Observable, _observable_rows("198.51.100.12"), returning=False)
        assert len(sent) == 1
        with writes_batched():
            rows_insert(Observable, _observable_rows("198.51.100.13"), returning=False)
            assert len(sent) == (1 if connection.vendor == "postgresql" else 2)
    assert Observable.objects.count() == 2


@postgresql_only
def test_ids_drawn_from_a_tables_sequence_are_its_own_next_ids(playbook) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {id_drawn_sql(Finding)} FROM generate_series(1, 3)")  # noqa: S608 - our own SQL
        drawn = [pk for (pk,) in cursor.fetchall()]
    incident = Incident.objects.create(title="t", playbook=playbook, detected_at=MOMENT, sla_due_at=MOMENT)
    finding = {"account_id": "111122223333", "region": "us-east-1", "finding_type": "T", "severity": 5.0,
               "count": 1, "finding_updated_at": MOMENT, "raw": {}, "incident_id": incident.pk}  # fmt: skip
    # when: rows go in with the drawn ids, then one through the ORM
    rows_insert(Finding, [finding | {"id": pk, "finding_id": f"f{pk}"} for pk in drawn], returning=False)
    later = Finding.objects.create(finding_id="later", **finding)
    # then: three distinct ids, stored as given, and the sequence went on past them
    assert len(set(drawn)) == 3
    assert sorted(Finding.objects.values_list("id", flat=True)) == sorted([*drawn, later.pk])
    assert later.pk > max(drawn)


# --- one transaction, BEGIN and COMMIT riding on its first and last round trips -------------------------


class _Sent:
    """Every statement that reaches the driver from the block on, each one round trip (an execute wrapper)."""

    def __init__(self) -> None:
        self.sql: list[str] = []

    def __call__(self, execute, sql, params, many, context):
        self.sql.append(sql)
        return execute(sql, params, many, context)


def _server_transaction() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid_current()")
        return cursor.fetchone()[0]


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("plain_statements")
def test_an_outermost_block_sends_begin_with_its_first_statement_and_commit_with_its_last() -> None:
    connection.ensure_connection()
    connection.connection.notices.clear()
    committed: list[int] = []
    # when: a write with an answer, one that waits, a read (twice), one more write that waits
    with CaptureQueriesContext(connection) as captured, atomic_batched():
        (first,) = rows_insert(Observable, _observable_rows("198.51.100.40"))
        rows_insert(Observable, _observable_rows("198.51.100.41"), returning=False)
        transaction.on_commit(lambda: committed.append(Observable.objects.count()))
        inside = [_server_transaction(), _server_transaction()]
        rows_insert(Observable, _observable_rows("198.51.100.42"), returning=False)
        assert connection.connection.get_transaction_status() == psycopg2_in_transaction()
    # then: four round trips (each entry is what the driver sent), the first opening the transaction and
    # the last closing it; Django still logs its own BEGIN and COMMIT, for which the driver sent nothing
    *sent, callback = [query["sql"] for query in captured]
    assert callback.startswith("SELECT COUNT(*)")  # the on_commit callback's, after the commit
    assert sent[0] == "BEGIN" and sent[-1] == "COMMIT"
    assert [sql.split(" ")[0] for sql in sent[1:-1]] == ["BEGIN;", "INSERT", "SELECT", "INSERT"]
    assert sent[2].endswith("; SELECT txid_current()") and sent[-2].endswith("; COMMIT")
    # and one transaction held it all: the server never warned of a second BEGIN or a COMMIT too many
    assert inside[0] == inside[1] and connection.connection.notices == []
    assert committed == [3]  # on_commit callbacks ran after our COMMIT, and saw every row
    assert Observable.objects.filter(pk=first).exists() and _server_transaction() != inside[0]


@postgresql_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("plain_statements")
def test_an_outermost_block_of_queued_writes_only_is_one_round_trip() -> None:
    with CaptureQueriesContext(connection) as captured, atomic_batched():
        rows_insert(Observable, _observable_rows("198.51.100.53"), returning=False)
        rows_insert(Observable, _observable_rows("198.51.100.54"), returning=False)
    sent = [query["sql"] for query in captured][1:-1]  # (Django's own BEGIN and COMMIT log lines left out)
    assert len(sent) == 1 and sent[0].startswith("BEGIN; INSERT") and sent[0].endswith("; COMMIT")
    assert Observable.objects.count() == 2


def psycopg2_in_transaction() -> int:
    from psycopg2 import extensions

    return extensions.TRANSACTION_STATUS_INTRANS


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_an_error_in_an_outermost_block_rolls_all_of_it_back_and_the_connection_goes_on() -> None:
    connection.ensure_connection()
    connection.connection.notices.clear()
    # when: an application error, after a write went and one waits
    with pytest.raises(ValueError, match="give up"), atomic_batched():
        rows_insert(Observable, _observable_rows("198.51.100.43"))
        rows_insert(Observable, _observable_rows("198.51.100.44"), returning=False)
        raise ValueError("give up")
    # then
    assert not Observable.objects.exists()
    # when: a queued write fails at the end, in the round trip that carries the COMMIT
    Observable.objects.create(kind="ip", value="198.51.100.45")
    with pytest.raises(IntegrityError), atomic_batched():
        rows_insert(Observable, _observable_rows("198.51.100.46"))
        rows_insert(Observable, _observable_rows("198.51.100.45"), returning=False)
    # then: nothing of the block stayed, and the session is back in autocommit, with no transaction open
    assert list(Observable.objects.values_list("value", flat=True)) == ["198.51.100.45"]
    assert connection.get_autocommit() and connection.connection.autocommit
    assert connection.connection.notices == []
    with atomic_batched():
        rows_insert(Observable, _observable_rows("198.51.100.47"), returning=False)
    assert Observable.objects.count() == 2


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_savepoint_inside_an_outermost_block_rolls_back_alone() -> None:
    Observable.objects.create(kind="ip", value="198.51.100.48")
    with atomic_batched():
        rows_insert(Observable, _observable_rows("198.51.100.49"), returning=False)
        with pytest.raises(IntegrityError), transaction.atomic():
            rows_insert(Observable, _observable_rows("198.51.100.48"))
        rows_insert(Observable, _observable_rows("198.51.100.50"), returning=False)
    assert sorted(Observable.objects.values_list("value", flat=True)) == [f"198.51.100.{n}" for n in (48, 49, 50)]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_an_outermost_block_that_sends_nothing_costs_no_round_trip() -> None:
    connection.ensure_connection()
    connection.connection.notices.clear()
    with CaptureQueriesContext(connection) as captured, atomic_batched():
        pass
    assert [query["sql"] for query in captured] == ["BEGIN", "COMMIT"]  # Django's log lines only
    assert connection.connection.notices == []  # (a COMMIT sent outside a transaction would warn)


@postgresql_only
@pytest.mark.usefixtures("plain_statements")
def test_a_block_inside_a_transaction_leaves_begin_and_commit_to_it() -> None:
    # (a test runs inside a transaction: the block is nested in it)
    sent = _Sent()
    with connection.execute_wrapper(sent):
        with atomic_batched():
            rows_insert(Observable, _observable_rows("198.51.100.51"), returning=False)
        with atomic_batched(savepoint=False):
            rows_insert(Observable, _observable_rows("198.51.100.52"), returning=False)
    # then: each block's writes went at its end, inside its savepoint for the first, and no BEGIN or COMMIT
    assert [sql.split(" ")[0] for sql in sent.sql] == ["SAVEPOINT", "INSERT", "RELEASE", "INSERT"]
    assert not any("BEGIN" in sql or "COMMIT" in sql for sql in sent.sql)
    assert Observable.objects.count() == 2


# --- commits that do not wait for the disk ------------------------------------------------------------


def _setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_each_statement_commits_unflushed_and_the_session_keeps_its_setting() -> None:
    from psycopg2 import extensions

    connection.ensure_connection()
    connection.connection.notices.clear()
    before = _setting("synchronous_commit")
    # when
    with commits_unflushed(), CaptureQueriesContext(connection) as captured:
        inside = _setting("synchronous_commit")
        (pk,) = rows_insert(Observable, _observable_rows("198.51.100.60"))
    # then: each statement carried the setting for its own transaction, which it ended: the insert is
    # committed, its id came back (the last statement's answer), and the session's setting never moved
    assert before == "on" and inside == "off" and _setting("synchronous_commit") == "on"
    assert all(query["sql"].startswith(f"{UNFLUSHED}; ") for query in captured)
    assert connection.connection.get_transaction_status() == extensions.TRANSACTION_STATUS_IDLE
    assert Observable.objects.filter(pk=pk).exists()
    assert connection.connection.notices == []  # (SET LOCAL outside a transaction block would warn)


@postgresql_only
def test_inside_a_transaction_commits_unflushed_changes_nothing() -> None:
    # (a test runs inside a transaction): SET LOCAL would spare the flush of all the transaction writes
    with commits_unflushed(), CaptureQueriesContext(connection) as captured:
        inside = _setting("synchronous_commit")
        rows_insert(Observable, _observable_rows("198.51.100.61"), returning=False)
    assert inside == "on" and not any(UNFLUSHED in query["sql"] for query in captured)
    assert Observable.objects.count() == 1


# --- prepared statements -------------------------------------------------------------------------------


def _prepared_in_session() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'watchpost%%'")
        return dict(cursor.fetchall())


def _insert_two_observables(*values: str) -> list[str]:
    """Two rows of one shape through rows_insert (without ids: through statement_send); the SQL each sent."""
    with CaptureQueriesContext(connection) as sent:
        for value in values:
            rows_insert(Observable, _observable_rows(value), returning=False)
    return [query["sql"] for query in sent]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_statement_is_prepared_once_per_session_then_sent_by_name_with_its_values() -> None:
    connection.close()  # a session of its own: other tests prepare the same statement
    # when: the same statement twice, with different values
    sent = _insert_two_observables("198.51.100.30", "198.51.100.31")
    # then: prepared once, then only its name and values went
    executes = [sql for sql in sent if sql.startswith("EXECUTE ")]
    assert executes == [executes[0].split("(")[0] + "('ip', '198.51.100.30')",
                        executes[0].split("(")[0] + "('ip', '198.51.100.31')"]  # fmt: skip
    name = executes[0].removeprefix("EXECUTE ").split("(")[0]
    assert [sql for sql in sent if sql.startswith("PREPARE ")] == [
        f'PREPARE {name} AS INSERT INTO "incidents_observable" ("kind", "value") VALUES ($1, $2)'  # noqa: S608 - compared, not sent
    ]
    assert _prepared_in_session()[name].endswith('INSERT INTO "incidents_observable" ("kind", "value") VALUES ($1, $2)')
    assert sorted(Observable.objects.values_list("value", flat=True)) == ["198.51.100.30", "198.51.100.31"]
    # when: again, later in the session
    again = _insert_two_observables("198.51.100.32", "198.51.100.33")
    # then: nothing is prepared twice
    assert [sql.split("(")[0] for sql in again] == [f"EXECUTE {name}"] * 2


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_new_session_prepares_its_own_statements() -> None:
    _insert_two_observables("198.51.100.34", "198.51.100.35")
    assert _prepared_in_session()
    # when: the connection closes (a worker's recycling, a server restart) and a new session begins
    connection.close()
    sent = _insert_two_observables("198.51.100.36", "198.51.100.37")
    # then: the new session prepared the statement before using its name
    assert sent[0].startswith("PREPARE ") and sent[-1].startswith("EXECUTE ")
    assert Observable.objects.count() == 4


@postgresql_only
def test_a_statement_postgresql_cannot_prepare_is_sent_as_it_is_and_the_transaction_goes_on(caplog) -> None:
    Observable.objects.create(kind="ip", value="198.51.100.38")
    # a parameter whose type nothing in the statement tells: PREPARE refuses it
    sql = 'UPDATE "incidents_observable" SET "value" = %s WHERE %s IS NULL'
    # when
    with CaptureQueriesContext(connection) as sent:
        statement_send(sql, ["198.51.100.39", None])
        statement_send(sql, ["198.51.100.40", "not null"])
    # then: the refusal was tried once, in a savepoint rolled back alone, and each went as it is
    assert [query["sql"].split()[0] for query in sent] == ["SAVEPOINT", "PREPARE", "ROLLBACK", "RELEASE", "UPDATE",
                                                           "UPDATE"]  # fmt: skip
    assert [query["sql"] for query in sent[-2:]] == [
        """UPDATE "incidents_observable" SET "value" = '198.51.100.39' WHERE NULL IS NULL""",
        """UPDATE "incidents_observable" SET "value" = '198.51.100.40' WHERE 'not null' IS NULL""",
    ]
    assert "not prepared, sent as it is" in caplog.text
    assert list(Observable.objects.values_list("value", flat=True)) == ["198.51.100.39"]
    assert prepared(sql) == sql


@postgresql_only
def test_a_write_queued_before_a_statement_is_prepared_goes_first_and_its_error_is_its_own() -> None:
    Observable.objects.create(kind="ip", value="198.51.100.41")
    with transaction.atomic():
        # when: a duplicate waits, and the next statement is one the session has not prepared yet
        with pytest.raises(IntegrityError), transaction.atomic(), writes_batched():
            rows_insert(Observable, _observable_rows("198.51.100.41"), returning=False)
            statement_send('UPDATE "incidents_observable" SET "kind" = %s WHERE "value" = %s', ["asn", "none"])
        # then: the duplicate's error, in its savepoint; the statement after it was never sent
        assert Observable.objects.count() == 1
    # and the session still prepares that statement when it comes
    with CaptureQueriesContext(connection) as sent:
        statement_send('UPDATE "incidents_observable" SET "kind" = %s WHERE "value" = %s', ["asn", "198.51.100.41"])
    assert sent[-1]["sql"].startswith("EXECUTE ")
    assert Observable.objects.get().kind == "asn"


@postgresql_only
def test_big_statements_and_the_setting_off_are_sent_as_they_are(settings) -> None:
    # a bulk chunk's statement: its row count seldom repeats, so it is not worth a name in the session
    big = _observable_rows(*(f"198.51.101.{n}" for n in range(200)))
    with CaptureQueriesContext(connection) as sent:
        rows_insert(Observable, big, returning=False)
    assert [query["sql"][:34] for query in sent] == ['INSERT INTO "incidents_observable"']
    # when: prepared statements are off (behind PgBouncer in transaction mode)
    settings.WATCHPOST_DB_PREPARED_STATEMENTS = False
    sent = _insert_two_observables("198.51.100.42", "198.51.100.43")
    assert [sql[:34] for sql in sent] == ['INSERT INTO "incidents_observable"'] * 2
    assert Observable.objects.count() == 202


def test_outside_postgresql_a_statement_is_never_prepared(monkeypatch) -> None:
    monkeypatch.setattr(connection, "vendor", "sqlite")
    sql = 'INSERT INTO "incidents_observable" ("kind", "value") VALUES (%s, %s)'
    assert prepared(sql) == sql


# --- JSON for jsonb ------------------------------------------------------------------------------------


def _nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        {"nested": {"list": [1, 2.5, -0.0, None, True, "two"], "unicode": "café ✓ 🚨", "quote": '"\\'}},
        {"control": "\x00\x01\n\t", "long": 2**63 - 1, "small": -(2**63)},
        [{"a": 1e-7}, {"b": 1.7976931348623157e308}],
        "a bare string",
        {"big": 2**64, "bigger": -(2**70)},  # beyond orjson: json.dumps writes them
        {1: "an int key", None: "a None key"},  # json.dumps turns them into strings
        _nested(300),  # deeper than orjson goes (254 levels): json.dumps writes it
    ],
)
def test_json_text_is_the_json_json_dumps_writes(value) -> None:
    import json

    from incidents.rows import json_text

    assert json.loads(json_text(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize("value", [{"when": MOMENT}, {"what": object()}, {"lone": "\udc80"}])
def test_json_text_refuses_or_writes_what_json_dumps_refuses_or_writes(value) -> None:
    import json

    from incidents.rows import json_text

    try:
        expected = json.dumps(value)
    except TypeError:
        with pytest.raises(TypeError):
            json_text(value)
    else:
        assert json_text(value) == expected  # the lone surrogate: escaped, as json.dumps does
