"""Tamper-evident records: one audit row per state-changing request, append-only tables, chains verified."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from incidents.models import AuditEvent, CustodyEvent
from incidents.services import evidence_add
from incidents.services.audit import chains_verify
from playbooks.models import ChecklistItem

pytestmark = pytest.mark.django_db


def _routes(resolver: URLResolver | None = None, prefix: str = "") -> list[str]:
    """Every URL pattern of the site as a path regex source, admin included."""
    out = []
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            out += _routes(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            out.append(prefix + str(entry.pattern))
    return out


def _concrete(route: str, number: int) -> str:
    path = re.sub(r"<int:\w+>", str(number), route)
    path = re.sub(r"<(?:slug|str|path):\w+>", "x", path)
    path = re.sub(r"<\w+>", "x", path)
    path = path.lstrip("^").rstrip("$").replace("\\Z", "").replace("\\", "")
    return "/" + re.sub(r"\(\?P<\w+>[^)]*\)", "1", path).lstrip("/")


def _tamper(sql: str, params: list[object]) -> None:
    """What a database superuser could do: run with user triggers off, change a row, turn them back on."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        try:
            cursor.execute(sql, params)
        finally:
            cursor.execute("SET session_replication_role = origin")


def test_every_state_changing_request_writes_exactly_one_audit_row(responder, incident) -> None:
    client = Client(raise_request_exception=False)
    routes = sorted(set(_routes()))
    assert len(routes) > 20  # the walk found the site, not an empty list
    for route in routes:
        client.force_login(responder)  # a logout route ends the session; every request starts logged in
        before = AuditEvent.objects.count()
        path = _concrete(route, incident.pk)
        response = client.post(path, {})
        assert AuditEvent.objects.count() == before + 1, f"POST {path} wrote {AuditEvent.objects.count() - before}"
        assert AuditEvent.objects.last().status_code == response.status_code  # type: ignore[union-attr]


def test_reads_are_not_audited(client: Client, responder, incident) -> None:
    client.force_login(responder)
    client.get(reverse("incidents:detail", args=[incident.pk]))
    assert not AuditEvent.objects.exists()


def test_a_checklist_tick_is_one_audit_row_naming_who_and_what(client: Client, responder, incident) -> None:
    item = ChecklistItem.objects.filter(incident=incident).first()
    assert item is not None
    client.force_login(responder)
    path = reverse("incidents:item-status", args=[incident.pk, item.pk])
    client.post(path, {"status": "done"}, REMOTE_ADDR="198.51.100.7")
    (row,) = AuditEvent.objects.all()
    assert (row.actor, row.via, row.method, row.path, row.address) == (
        responder,
        "session",
        "POST",
        path,
        "198.51.100.7",
    )
    assert row.status_code in (200, 303)


def test_an_anonymous_post_is_audited_as_anonymous(client: Client) -> None:
    client.post("/incidents/new/", {"title": "x"})
    (row,) = AuditEvent.objects.all()
    assert row.via == "anonymous" and row.actor is None and row.status_code == 302


@pytest.mark.parametrize("statement", ["UPDATE {table} SET {column} = %s", "DELETE FROM {table}"])
def test_the_database_refuses_to_change_audit_and_custody_rows(responder, incident, statement, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    evidence_add(incident_id=incident.pk, actor=responder, upload=SimpleUploadedFile("a.txt", b"a"))
    Client().post("/incidents/new/")
    for table, column in (("incidents_auditevent", "path"), ("incidents_custodyevent", "detail")):
        sql = statement.format(table=table, column=column)
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, ["changed"] if "%s" in sql else [])


@pytest.fixture
def audited(client: Client, responder, incident) -> list[AuditEvent]:
    client.force_login(responder)
    for _ in range(4):
        client.post(reverse("incidents:note-add", args=[incident.pk]), {"body": "seen"})
    return list(AuditEvent.objects.order_by("id"))


def test_intact_chains_verify(audited) -> None:
    assert chains_verify() == []
    call_command("verify_audit")


def test_an_edited_row_is_found(audited) -> None:
    _tamper("UPDATE incidents_auditevent SET path = %s WHERE id = %s", ["/", audited[1].pk])
    problems = chains_verify()
    assert [p.row_id for p in problems] == [audited[1].pk] and "edited" in problems[0].message
    with pytest.raises(CommandError, match="tampered"):
        call_command("verify_audit")


def test_a_removed_row_is_found(audited) -> None:
    _tamper("DELETE FROM incidents_auditevent WHERE id = %s", [audited[2].pk])
    problems = chains_verify()
    assert [p.row_id for p in problems] == [audited[3].pk] and "removed" in problems[0].message


def test_a_removed_tail_is_found(audited) -> None:
    _tamper("DELETE FROM incidents_auditevent WHERE id = %s", [audited[-1].pk])
    problems = chains_verify()
    assert len(problems) == 1 and "were removed" in problems[0].message


def test_a_custody_row_edited_behind_the_trigger_is_found(responder, incident, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path
    evidence = evidence_add(incident_id=incident.pk, actor=responder, upload=SimpleUploadedFile("a.txt", b"a"))
    (acquired,) = CustodyEvent.objects.filter(evidence=evidence)
    assert acquired.prev_hash and acquired.chain_hash and chains_verify() == []
    _tamper("UPDATE incidents_custodyevent SET sha256 = %s WHERE id = %s", ["0" * 64, acquired.pk])
    assert [p.chain for p in chains_verify()] == ["custody"]
