"""Files imported several at a time (`import_findings --jobs N`), and what concurrent ingests can do to each other.

Real processes and real PostgreSQL sessions: the rows must be committed for another session to see them.
"""

import os
import threading
import time
from io import StringIO
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from incidents import permissions
from incidents.models import Finding, InboundPayload, Incident, Observable
from incidents.services import file_imports
from incidents.services.findings import CREATED, IngestReport, finding_observables, payload_receive
from integrations.aws.guardduty import parse_finding
from tests.ingestion.conftest import ANONYMOUS, PRIVATE_IP, as_bytes, variant, wire

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent sessions need PostgreSQL"),
]


# Only the table's name from the model's meta is formatted in; the values are bound parameters.
INSERT_OBSERVABLE = f'INSERT INTO "{Observable._meta.db_table}" (kind, value) VALUES (%s, %s)'  # noqa: S608


@pytest.fixture(autouse=True)
def roles(transactional_db) -> None:
    """Transactional tests flush the tables after each test, the migration-made role groups too."""
    for name in permissions.ROLES:
        Group.objects.get_or_create(name=name)


def _files(folder: Path, count: int, per_file: int) -> list[Path]:
    paths = []
    for i in range(count):
        documents = [variant(wire(ANONYMOUS if j % 2 else PRIVATE_IP), id=f"{i:016x}{j:016x}") for j in range(per_file)]
        paths.append(folder / f"file-{i:02d}.json")
        paths[-1].write_bytes(as_bytes(*documents) if per_file > 1 else as_bytes(documents[0]))
    return paths


@pytest.fixture
def importer_pids(monkeypatch) -> None:
    """Each stored payload records the process that imported it (forked children keep the patch)."""
    real_import = file_imports.file_import

    def recorded(*, meta: dict[str, Any] | None = None, **kwargs: Any) -> IngestReport:
        return real_import(meta={"pid": os.getpid()}, **kwargs)

    monkeypatch.setattr(file_imports, "file_import", recorded)


def _importer_pids() -> set[int]:
    return {payload.meta["pid"] for payload in InboundPayload.objects.all()}


def test_files_are_imported_in_processes_of_their_own_and_reported_in_order(playbook, tmp_path, importer_pids) -> None:
    # given: six files of three new findings, and a name that cannot be read among them
    paths = _files(tmp_path, 6, 3)
    missing = tmp_path / "file-03b.json"
    out = StringIO()
    # when
    with pytest.raises(CommandError) as failed:
        call_command("import_findings", *map(str, [*paths[:4], missing, *paths[4:]]), "--jobs", "3", stdout=out)
    # then: one line per file, in the order given; the unreadable one counted as rejected
    assert "1 of 7 file(s)" in str(failed.value)
    lines = out.getvalue().splitlines()
    expected = [f"{path}: created 3, updated 0, duplicate 0, stale 0, rejected 0" for path in paths]
    assert lines == [*expected[:4], f"{missing}: created 0, updated 0, duplicate 0, stale 0, rejected 1",
                     "  rejected payload: cannot read the file (No such file or directory)", *expected[4:]]  # fmt: skip
    assert Finding.objects.count() == 18 == Incident.objects.count()
    # and the work was done by other processes, more than one of them
    pids = _importer_pids()
    assert len(pids) > 1 and os.getpid() not in pids
    assert set(InboundPayload.objects.values_list("status", flat=True)) == {InboundPayload.Status.ACCEPTED}


def test_one_job_imports_in_this_process(playbook, tmp_path, importer_pids) -> None:
    imported = list(file_imports.paths_import(_files(tmp_path, 2, 1), jobs=1))
    assert [i.report.counts[CREATED] for i in imported if i.report] == [1, 1]
    assert _importer_pids() == {os.getpid()} and Finding.objects.count() == 2


def test_jobs_below_one_are_refused(playbook, tmp_path) -> None:
    with pytest.raises(CommandError, match="--jobs must be 1 or more"):
        call_command("import_findings", str(_files(tmp_path, 1, 1)[0]), "--jobs", "0", stdout=StringIO())
    assert not InboundPayload.objects.exists()


@pytest.mark.parametrize("chunk", [500, 1], ids=["one transaction", "chunk by chunk"])
def test_a_payload_chosen_as_a_deadlock_victim_is_done_again_and_loses_nothing(playbook, monkeypatch, chunk) -> None:
    """Two ingests that each hold a new observable the other wants: PostgreSQL ends one of them.

    A one-chunk payload starts its transaction over; a larger one takes the chunk's findings one at a time.
    """
    from incidents.services import findings_batch

    monkeypatch.setattr(findings_batch, "CHUNK", chunk)
    document = wire(ANONYMOUS)
    body = as_bytes(document, variant(document, id="f" * 32))  # the same observables twice
    wanted = sorted(finding_observables(parse_finding(document)))
    first, last = wanted[0], wanted[-1]  # our ingest inserts them in this order
    rival = psycopg2.connect(**connection.get_connection_params())
    reports: list[IngestReport] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            reports.append(payload_receive(source=InboundPayload.Source.SQS, body=body))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    try:
        with rival.cursor() as cursor:
            # given: a rival session holding the last observable, uncommitted; it waits long before it
            # looks for a deadlock, so ours (1 s) finds it first and is the one ended
            cursor.execute("SET deadlock_timeout = '30s'")
            deadlocks_before = _deadlocks(cursor)
            cursor.execute(INSERT_OBSERVABLE, last)
            ours = threading.Thread(target=deliver)
            ours.start()
            _wait_for_a_session_waiting_on_a_lock(cursor)  # ours, holding the first and waiting for the last
            # when: the rival wants the first: a deadlock; ours is ended, and starts over
            cursor.execute(INSERT_OBSERVABLE, first)
            rival.commit()
            ours.join(timeout=60)
            assert _deadlocks(cursor) == deadlocks_before + 1  # the deadlock did happen
    finally:
        rival.close()
    # then: the delivery went through on its second attempt
    assert errors == [] and len(reports) == 1
    assert [result.status for result in reports[0].results] == [CREATED, CREATED]
    for incident in Incident.objects.all():
        assert set(incident.observables.values_list("kind", "value")) == set(wanted)
    assert InboundPayload.objects.get().status == InboundPayload.Status.ACCEPTED


def _deadlocks(cursor: Any) -> int:
    cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    count = cursor.fetchone()[0]
    cursor.execute("SELECT pg_stat_clear_snapshot()")  # the next read sees fresh statistics
    return int(count)


def _wait_for_a_session_waiting_on_a_lock(cursor: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # the rival is in a transaction: no cached view
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if cursor.fetchone()[0]:
            return
        time.sleep(0.02)
    raise AssertionError("the ingest never waited for the rival's row")
