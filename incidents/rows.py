"""Multi-row INSERT from plain dicts, for the ingestion hot path only.

Ingesting one event writes a handful of rows, and building each statement through the ORM
(model instances, `bulk_create`'s compiler) cost about ten times the statement itself: ~0.6 ms of
Python per statement against ~0.06 ms for the same SQL sent as is (measured on the finding-key
lookup), most of an event's Python (P3). Here the statement comes from the model's meta and every
value still goes through its field's own `get_db_prep_save`, as the ORM sends it, and a value left
out takes what a model instance would hold (`auto_now`/`auto_now_add`, the field's default, "" for
text, else NULL, which a NOT NULL column refuses). Signals are not sent, as with `bulk_create`.

Everything else keeps using the ORM: this is for statements that run once or more per ingested event.
On PostgreSQL these statements are also prepared once per session (`prepared`), and their JSON values
are written by orjson (`json_text`).

Inside `writes_batched()`, a write whose result nobody reads waits and travels with the next statement:
several statements, one round trip. `atomic_batched()` is a whole transaction done that way, its BEGIN
travelling with its first statement and its COMMIT with its last. `commits_unflushed()` spares a
statement's own commit the wait for the disk where a later commit flushes it anyway.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.postgresql.psycopg_any import Jsonb, is_psycopg3
from django.utils import timezone

logger = logging.getLogger(__name__)

Row = Mapping[str, Any]  # attname (e.g. "incident_id") → value


_PER_ROW = object()  # a left-out field whose value is worked out when the row is written


@dataclass(frozen=True)
class _Column:
    """How one field's values are prepared, worked out once: per value, only its type is looked at."""

    field: Any
    attname: str
    as_is: frozenset[type]  # value types its preparation hands back unchanged (on PostgreSQL)
    aware_datetime_as_is: bool
    plain_json: bool  # a JSONField without an encoder of its own: its dicts and lists are written by orjson
    null: Any  # None, prepared
    left_out: Any  # the value a row that leaves the field out gets, prepared; or _PER_ROW


@cache  # per field and database: a field's hash is a Python method, so each value costs only its type
def _column(field: Any, vendor: str) -> _Column:
    db = connections[DEFAULT_DB_ALIAS]
    assert db.vendor == vendor
    column = _Column(
        field=field,
        attname=field.attname,
        as_is=_as_is(field),
        # With USE_TZ an aware datetime is not converted, and PostgreSQL's adapter takes it as it is.
        aware_datetime_as_is=type(field) is models.DateTimeField and settings.USE_TZ,
        plain_json=isinstance(field, models.JSONField) and field.encoder is None,
        null=None,
        left_out=_PER_ROW,
    )
    # A NULL, and a default that is a constant, prepare to the same value every time: once is enough
    # (most of a new incident's columns are one or the other). A callable default may give each row a
    # value of its own, and `auto_now` takes the statement's time.
    null = _value(column, None, db)
    constant = not (field.has_default() and callable(field.default)) and not _is_auto_now(field)
    left_out = _value(column, field.get_default(), db) if constant else _PER_ROW
    return replace(column, null=null, left_out=left_out)


def _is_auto_now(field: Any) -> bool:
    return bool(getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False))


@dataclass(frozen=True)
class _Table:
    """What every INSERT into one model's table repeats, worked out once per model."""

    fields: list[Any]  # the concrete fields (the primary key only when the rows bring it), in column order
    columns: list[_Column]  # the same, with how each prepares its values
    head: str  # INSERT INTO "table" ("col", …) VALUES
    row: str  # (%s, …, %s)
    returning: str  # RETURNING "id"


@cache
def _table(model: type[models.Model], vendor: str, with_pk: bool = False) -> _Table:
    ops = connections[DEFAULT_DB_ALIAS].ops
    fields = [field for field in model._meta.concrete_fields if with_pk or not field.primary_key]
    columns = ", ".join(ops.quote_name(_column_name(field)) for field in fields)
    # Only names from the model's meta are formatted in; every value is a bound parameter.
    head = f"INSERT INTO {ops.quote_name(model._meta.db_table)} ({columns}) VALUES "  # noqa: S608
    row = f"({', '.join(['%s'] * len(fields))})"
    returning = f" RETURNING {ops.quote_name(_column_name(model._meta.pk))}"
    return _Table(fields, [_column(field, vendor) for field in fields], head, row, returning)


def _column_name(field: Any) -> str:
    assert field.column is not None  # concrete fields all have one
    return str(field.column)


def rows_insert(
    model: type[models.Model], rows: Sequence[Row], *, ignore_conflicts: bool = False, returning: bool = True
) -> list[int]:
    """INSERT the rows in as few statements as the backend allows; their new ids, in order.

    With `ignore_conflicts` a row that breaks a unique constraint is skipped and no ids are returned;
    without `returning` no ids are returned either. Either way the statement may wait (writes_batched).
    """
    if not rows:
        return []
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.…` is a context-local lookup
    table = _table(model, db.vendor, model._meta.pk.attname in rows[0])  # ids drawn beforehand (id_drawn_sql)
    now = timezone.now()
    values = _prepared(table.columns, rows, db, now)
    batch = max(db.ops.bulk_batch_size(table.fields, values), 1)  # SQLite caps the number of parameters
    ids: list[int] = []
    for start in range(0, len(values), batch):
        ids += _insert(db, table, values[start : start + batch], ignore_conflicts, returning)
    return ids


_LEFT_OUT = object()


def _prepared(columns: list[_Column], rows: Sequence[Row], db: BaseDatabaseWrapper, now: datetime) -> list[list[Any]]:
    """Each row's values, prepared by their fields (`get_db_prep_save`, or what it would give: `_value`).

    Only a value of a type its field may hand back unchanged costs no more than a look at its type; a
    NULL, and a left-out field's constant default, were prepared once (`_column`). Preparing an
    event's ~80 values took ~0.28 ms when each went through `_value`, or through `get_db_prep_save`
    (~0.3 ms more), row by row (P1, P3).
    """
    postgresql = db.vendor == "postgresql"
    prepared = []
    for row in rows:
        values: list[Any] = []
        append = values.append
        for column in columns:
            value = row.get(column.attname, _LEFT_OUT)
            if postgresql and type(value) in column.as_is:
                append(value)
            elif value is None:
                append(column.null)
            elif value is not _LEFT_OUT:
                append(_value(column, value, db))
            elif column.left_out is not _PER_ROW:
                append(column.left_out)
            else:
                append(_value(column, _default(column.field, now), db))
        prepared.append(values)
    return prepared


def _db_value(field: Any, value: Any, db: BaseDatabaseWrapper) -> Any:
    """`field.get_db_prep_save(value, db)`, or what it would give, found faster (`_value`)."""
    return _value(_column(field, db.vendor), value, db)


def _value(column: _Column, value: Any, db: BaseDatabaseWrapper) -> Any:
    """`get_db_prep_save`, with JSON written by orjson where that changes nothing stored.

    On PostgreSQL a str, int, float or bool for a field of one of Django's own plain classes, and an
    aware datetime for its DateTimeField, come out of `get_db_prep_save` unchanged, at 1–4 µs each
    through its layers of calls (the ~80 values of an ingested event: ~0.3 ms, P3); they go as they are.
    `tests/incidents/test_rows.py` compares both for every field of the ingest's models.
    """
    if db.vendor == "postgresql":
        kind = type(value)
        if kind in column.as_is or (kind is datetime and value.tzinfo is not None and column.aware_datetime_as_is):
            return value
        if (kind is dict or kind is list) and column.plain_json:
            return Jsonb(value, dumps=json_text)
    return column.field.get_db_prep_save(value, db)


# Django's own field classes whose preparation hands a value of these exact types back unchanged on
# PostgreSQL (a subclass, ours or a library's, may prepare its values otherwise: it is not here).
_PLAIN: dict[type, frozenset[type]] = {
    **dict.fromkeys((models.CharField, models.TextField), frozenset({str})),
    **dict.fromkeys(
        (
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveBigIntegerField,
            models.PositiveSmallIntegerField,
            models.AutoField,
            models.BigAutoField,
            models.SmallAutoField,
        ),
        frozenset({int}),
    ),  # fmt: skip
    models.FloatField: frozenset({float}),
    models.BooleanField: frozenset({bool}),
}


def _as_is(field: Any) -> frozenset[type]:
    """The value types `field` passes through unchanged (a foreign key: its target field's)."""
    if type(field) is models.ForeignKey:
        return _as_is(field.target_field)
    return _PLAIN.get(type(field), frozenset())


# What orjson would write that `json.dumps` refuses (a datetime, a dataclass) goes to `json.dumps`, to be
# refused as before.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def json_text(value: Any) -> str:
    """JSON text for a jsonb column: the value `json.dumps` would give PostgreSQL, in about a tenth of the time.

    A finding's document is ~3 KB of JSON, and writing it out with `json.dumps` was the biggest single
    piece of Python CPU per ingested event (P1, P3). Anything orjson will not write as `json.dumps` does
    (an integer beyond 64 bits, a key that is not a string, a string that is not valid Unicode, nesting
    deeper than 254, a datetime) falls back to `json.dumps`, refusals included. Differences that stay:
    a NaN or an infinity becomes null, where `json.dumps` wrote what jsonb refuses (no document gets that
    far: the parser refuses them), and a UUID or an Enum member is written, where `json.dumps` refused it
    (the ingest path's values are what JSON parsing and our own code make: neither ever holds one).
    """
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value)


def _default(field: Any, now: datetime) -> Any:
    if _is_auto_now(field):
        return now
    return field.get_default()  # as Model() does: the default, "" for text, else None


def id_drawn_sql(model: type[models.Model]) -> str:
    """SQL for one new id from the model's identity sequence (PostgreSQL): a row INSERTed with it needs no
    RETURNING, so it can wait (writes_batched) instead of costing a round trip of its own.

    The sequence is named in the SQL: a prepared statement resolves the name once, when it is prepared.
    Looking it up in the statement (`pg_get_serial_sequence(…)::regclass`) ran the lookup and the name's
    parsing on every event, ~5% of PostgreSQL's CPU per ingested event (P3).
    """
    name = _sequence_name(model._meta.db_table, _column_name(model._meta.pk))
    return "nextval('{}'::regclass)".format(name.replace("'", "''"))


@cache  # per process: a sequence keeps its name (a migration that renames the table renames it too)
def _sequence_name(table: str, column: str) -> str:
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [db.ops.quote_name(table), column])
        (name,) = cursor.fetchone()
    assert name, f"{table}.{column} has no sequence"  # every model here has an auto id (identity column)
    return str(name)


def _insert(
    db: BaseDatabaseWrapper, table: _Table, values: list[list[Any]], ignore_conflicts: bool, returning: bool
) -> list[int]:
    sql, params = _values_statement(table, values)
    if ignore_conflicts or not returning:
        statement_send(sql + (" ON CONFLICT DO NOTHING" if ignore_conflicts else ""), params, db)
        return []
    with db.cursor() as cursor:
        cursor.execute(prepared(sql + table.returning, db), params)
        return [pk for (pk,) in cursor.fetchall()]


def _values_statement(table: _Table, values: list[list[Any]]) -> tuple[str, list[Any]]:
    """`INSERT … VALUES (…), (…)` for these prepared rows, and its parameters in order."""
    return table.head + ", ".join([table.row] * len(values)), [value for row in values for value in row]


def row_update(model: type[models.Model], pk: int, values: Row) -> None:
    """UPDATE one row's columns by primary key, values prepared by their fields (it may wait: writes_batched)."""
    db = connections[DEFAULT_DB_ALIAS]
    sql, columns = _update(model, tuple(values), db.vendor)
    params = [_value(column, values[name], db) for name, column in zip(values, columns, strict=True)]
    statement_send(sql, [*params, pk], db)


@cache  # once per event (a payload's status): the statement and its columns are worked out once
def _update(model: type[models.Model], names: tuple[str, ...], vendor: str) -> tuple[str, list[_Column]]:
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    fields: list[Any] = [model._meta.get_field(name) for name in names]
    assignments = ", ".join(f"{quote(_column_name(field))} = %s" for field in fields)
    # Only names from the model's meta are formatted in; every value is a bound parameter.
    sql = (
        f"UPDATE {quote(model._meta.db_table)} SET {assignments} "  # noqa: S608
        f"WHERE {quote(_column_name(model._meta.pk))} = %s"
    )
    return sql, [_column(field, vendor) for field in fields]


# --- writes that wait ---------------------------------------------------------------------------------


def statement_send(sql: str, params: Sequence[Any], db: BaseDatabaseWrapper | None = None) -> None:
    """Run a statement whose result nobody reads: now, or, inside `writes_batched()`, with the next one."""
    db = db or connections[DEFAULT_DB_ALIAS]  # (a caller that has it saves a context-local lookup)
    sql = prepared(sql, db)
    waiting = _waiting(db)
    if waiting is not None:  # (a queue exists only in a block begun inside the current transaction)
        waiting.add(sql, params)
        return
    with db.cursor() as cursor:
        cursor.execute(sql, params)


@contextmanager
def writes_batched() -> Iterator[None]:
    """Hold back the block's writes that return nothing, and send them with the statement that follows.

    A round trip costs more than a small INSERT does: a `SELECT 1` added ~0.15 ms of wall time and
    ~0.1 ms of CPU per ingested event (client and server), and one event was eleven round trips (P3).
    Here `statement_send` (and `rows_insert` without ids, `row_update`) only queue their statement;
    the next statement on the connection, whatever issues it (an INSERT … RETURNING, the ORM, a
    savepoint's SAVEPOINT or RELEASE), goes to PostgreSQL in the same round trip, after the queued ones
    and in order, as one multi-statement query. What is still queued at the block's end is sent then.
    Outside a transaction (autocommit) nothing waits.

    So an error in a queued statement is raised by the statement it travels with, in the transaction
    and savepoint it was issued in: the release of a savepoint carries what was issued under it.
    End the block inside the transaction it writes to (`with transaction.atomic(), writes_batched():`):
    COMMIT does not go through the cursor. A block nested in one begun inside the same transaction
    leaves its queue to the outer block's end; a block begun outside any transaction queues nothing,
    and one nested in it inside a transaction has its own queue, sent at its end, before that
    transaction's COMMIT. Leaving a block on a database error, or with its transaction marked for
    rollback, drops what is queued (none of it could take effect); on any other exception it is sent
    first, as it would have been. SQLite (`make run`) runs one statement at a time: there the block
    changes nothing.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or not db.in_atomic_block:
        # Outside a transaction nothing waits: in autocommit each statement is a transaction of its own
        # (a multi-statement query would make them one), and a queue begun here would be sent after
        # the COMMIT of a transaction opened inside the block.
        yield
        return
    waiting = _waiting(db)
    if waiting is not None:
        # Nested in a block begun inside this same transaction: that block's end (or a savepoint's
        # release) sends the queue, so what this block queues can share the round trip of what follows.
        with _dropped_on_error(waiting):
            yield
        return
    waiting = _Waiting()
    with _sent_at_end(db, waiting), db.execute_wrapper(waiting):
        yield


@contextmanager
def atomic_batched(*, savepoint: bool = True) -> Iterator[None]:
    """`transaction.atomic()` with `writes_batched()` to its very end; outermost, one round trip fewer at each end.

    psycopg2 sends a transaction's BEGIN in a round trip of its own before the first statement, and
    Django's commit sends COMMIT in another: two of the six round trips an ingested event had, each
    costing both sides a wake-up and a system call pair (P3). In the outermost block on PostgreSQL the
    driver is left in autocommit, BEGIN waits at the head of the block's queue and goes with its first
    statement, and COMMIT goes at the end with the last queued writes; Django's own commit then finds
    nothing to send, and runs the `on_commit` callbacks after our COMMIT, as usual. Any exception, or a
    transaction marked for rollback, sends ROLLBACK instead. Nested in a transaction, or on another
    database or driver, it is `transaction.atomic(savepoint=…)` and `writes_batched()`.

    Only for a block that is the whole transaction: the COMMIT goes when it ends, so nothing may follow
    inside the same `atomic`, which is why this is one context manager and not a flag of `writes_batched`.
    """
    db = connections[DEFAULT_DB_ALIAS]
    outermost = not db.in_atomic_block
    with transaction.atomic(using=db.alias, savepoint=savepoint):
        if not (outermost and db.vendor == "postgresql" and not is_psycopg3):
            with writes_batched():
                yield
            return
        waiting = _Waiting(begin=True)
        with _begun_and_ended_inline(db, waiting), db.execute_wrapper(waiting):
            yield


@contextmanager
def _begun_and_ended_inline(db: BaseDatabaseWrapper, waiting: _Waiting) -> Iterator[None]:
    # Django's atomic has set the driver out of autocommit and sent nothing yet: psycopg2 would send
    # BEGIN before the next statement. In autocommit it sends only what it is given.
    db.connection.autocommit = True
    try:
        try:
            yield
        except BaseException:
            _rolled_back(db, waiting)
            raise
        if db.needs_rollback:
            _rolled_back(db, waiting)
            return
        if not waiting.begun and waiting.sql == ["BEGIN"]:
            return  # the block sent nothing and holds nothing: no transaction to end
        waiting.add("COMMIT", [])
        try:
            waiting.send(db)
        except BaseException:
            _rolled_back(db, waiting)  # a queued write failed: the rest, COMMIT too, was not run
            raise
    finally:
        if db.connection is not None and not db.connection.closed:
            db.connection.autocommit = False  # as Django's atomic left it: its commit or rollback sends nothing


UNFLUSHED = "SET LOCAL synchronous_commit TO OFF"


@contextmanager
def commits_unflushed() -> Iterator[None]:
    """Outside a transaction on PostgreSQL, each statement of the block commits without waiting for the disk.

    For a row whose caller commits again, synchronously, before it tells anyone the row is kept: an
    inbound payload is stored on its own before it is parsed, and its sender is answered (the SQS
    message deleted, the webhook answered, the poller's cursor moved) only after the processing's own
    COMMIT. PostgreSQL writes its log in order and that COMMIT waits until the log is on disk up to
    its own record, so the payload's row is on disk by then too. Until then the row is visible to
    every session at once, as any committed row; only a crash of the server (not of our process) in
    that interval could lose it, and then no answer had been given and the sender delivers again.
    The flush it spares was ~0.45 ms of waiting per event, one of the two an event had (P3).

    The setting travels with each statement (`SET LOCAL` in the same query: one implicit transaction)
    and ends with it. Inside a transaction the block changes nothing: `SET LOCAL` would also spare the
    flush of everything else that transaction writes.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        yield
        return
    with db.execute_wrapper(_unflushed(db)):
        yield


def _unflushed(db: BaseDatabaseWrapper) -> Callable[..., Any]:
    def execute(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if many or db.in_atomic_block:
            return execute(sql, params, many, context)
        if params is None:  # psycopg2 leaves a statement without parameters as it is; here it will not
            sql, params = sql.replace("%", "%%"), []
        return execute(f"{UNFLUSHED}; {sql}", params, many, context)

    return execute


def _rolled_back(db: BaseDatabaseWrapper, waiting: _Waiting) -> None:
    begun = waiting.begun
    waiting.begun = True
    waiting.drop()
    if not begun:
        return
    try:
        # On the driver's own cursor: Django refuses any statement, this one too, once an inner block
        # has marked its transaction for rollback. After a failed COMMIT, PostgreSQL answers it with a
        # warning only.
        with db.wrap_database_errors, db.connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except DatabaseError:
        # The connection is gone (the error being raised says why); the server ended the transaction.
        logger.warning("ROLLBACK not sent: the connection is unusable", exc_info=True)


@contextmanager
def _dropped_on_error(waiting: _Waiting) -> Iterator[None]:
    try:
        yield
    except DatabaseError:
        waiting.drop()  # the transaction (or the savepoint) they were issued in is being rolled back
        raise


@contextmanager
def _sent_at_end(db: BaseDatabaseWrapper, waiting: _Waiting) -> Iterator[None]:
    try:
        with _dropped_on_error(waiting):
            yield
    finally:
        if db.needs_rollback:  # a block inside without a savepoint failed: the whole transaction is lost
            waiting.drop()
        waiting.send(db)  # (nothing is left after a database error)


class _Waiting:
    """The statements `writes_batched` holds back; installed as the connection's execute wrapper.

    With `begin`, the queue starts with the transaction's BEGIN (`atomic_batched`), which no drop removes
    until it has gone to the server with the first statement.
    """

    def __init__(self, *, begin: bool = False) -> None:
        self.begun = not begin  # whether the server has had this transaction's BEGIN
        self.sql: list[str] = [] if self.begun else ["BEGIN"]
        self.params: list[Any] = []

    def add(self, sql: str, params: Sequence[Any]) -> None:
        self.sql.append(sql)
        self.params.extend(params)

    def drop(self) -> None:
        self.sql, self.params = ([] if self.begun else ["BEGIN"]), []

    def take(self) -> tuple[str, list[Any]]:
        sql, params = "; ".join(self.sql), self.params
        self.begun = True  # (a queue's BEGIN goes first, with everything else in it)
        self.drop()  # before sending: a failed send must not send them again
        return sql, params

    def send(self, db: BaseDatabaseWrapper) -> None:
        if self.sql:
            sql, params = self.take()
            with db.cursor() as cursor:
                cursor.execute(sql, params)

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if not self.sql:
            return execute(sql, params, many, context)
        queued, queued_params = self.take()
        if many:  # executemany repeats its statement: the queued ones go first, on their own
            execute(queued, queued_params, False, context)
            return execute(sql, params, many, context)
        if params is None:  # psycopg2 leaves a statement without parameters as it is; here it will not
            sql, params = sql.replace("%", "%%"), []
        return execute(f"{queued}; {sql}", [*queued_params, *params], False, context)


def _waiting(db: BaseDatabaseWrapper) -> _Waiting | None:
    for wrapper in reversed(db.execute_wrappers):
        if isinstance(wrapper, _Waiting):
            return wrapper
    return None


# --- prepared statements ------------------------------------------------------------------------------

PREPARE_MAX_PARAMS = 256  # a bigger statement is a bulk chunk's, whose row counts seldom repeat
PREPARE_MAX_STATEMENTS = 256  # per session: the event path's shapes are a few dozen


@dataclass
class _Session:
    """The statements prepared in one PostgreSQL session (a DB-API connection: a new one starts empty)."""

    connection: Any
    # statement → what to send for it: `EXECUTE <name>(%s, …)`, or the statement itself (not preparable)
    sent: dict[str, str] = dataclass_field(default_factory=dict)


def prepared(sql: str, db: BaseDatabaseWrapper | None = None) -> str:
    """The statement to send for `sql`: `EXECUTE <name>(%s, …)` (same parameters, same order) once the
    session has it prepared; else `sql` itself.

    A statement the event path sends for every event is parsed, rewritten and planned by PostgreSQL
    every time: about a third of the server's CPU per event, ~1 ms (P3). Prepared once per session,
    each event sends only its values. Values are still bound by the driver, as for `sql`. PostgreSQL
    keeps a prepared statement for the session whatever happens to the transaction that prepared it, so
    a name, once prepared, stays valid until the connection closes. Off (WATCHPOST_DB_PREPARED_STATEMENTS)
    behind a pooler that hands one client's transactions to different sessions (PgBouncer's transaction
    mode): there another session would not know the name.
    """
    db = db or connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql" or not settings.WATCHPOST_DB_PREPARED_STATEMENTS:
        return sql
    session = _session(db)
    sent = session.sent.get(sql)
    if sent is not None:
        return sent
    count = sql.count("%s")
    if count > PREPARE_MAX_PARAMS or len(session.sent) >= PREPARE_MAX_STATEMENTS or db.needs_rollback:
        return sql  # (a doomed transaction refuses every statement: this one will say so itself)
    name = _prepare(db, sql, f"watchpost_{len(session.sent) + 1}")
    if name is None:
        sent = sql
    else:
        sent = f"EXECUTE {name}({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}"
    session.sent[sql] = sent
    return sent


def _session(db: BaseDatabaseWrapper) -> _Session:
    if db.connection is None:
        db.ensure_connection()
    session: _Session | None = getattr(db, "_watchpost_prepared", None)
    if session is None or session.connection is not db.connection:
        session = _Session(db.connection)
        db._watchpost_prepared = session  # type: ignore[attr-defined]
    return session


def _prepare(db: BaseDatabaseWrapper, sql: str, name: str) -> str | None:
    """PREPARE `sql` as `name` in this session; None (the statement is sent as it is) if PostgreSQL refuses."""
    waiting = _waiting(db)
    if waiting is not None:
        waiting.send(db)  # the queued writes first: an error of theirs is theirs, not the PREPARE's
    try:
        # A savepoint in a transaction: a refused PREPARE must not take the caller's transaction with it.
        with transaction.atomic(using=db.alias) if db.in_atomic_block else nullcontext(), db.cursor() as cursor:
            cursor.execute(f"PREPARE {name} AS {_numbered(sql)}")
    except DatabaseError as exc:
        logger.warning("not prepared, sent as it is: %s (%s)", sql[:120], exc)
        return None
    return name


def _numbered(sql: str) -> str:
    """`%s` placeholders as PostgreSQL's `$1`, `$2`, …; `%%` back to `%` (the text is sent without parameters)."""
    numbers = iter(range(1, sql.count("%s") + 1))
    return re.sub(r"%%|%s", lambda m: "%" if m.group() == "%%" else f"${next(numbers)}", sql)
