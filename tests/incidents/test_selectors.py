"""Incident and timeline reads: who sees what, filters, and keyset pages (no OFFSET, no COUNT)."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from incidents import keyset
from incidents.models import Incident, Phase, Priority, Severity, TimelineEvent
from incidents.selectors import (
    INCIDENT_SORTS,
    TIMELINE_ORDER,
    IncidentFilters,
    TimelineFilters,
    incident_get_for_user,
    incident_list_for_user,
    timeline_page,
)
from incidents.services import analyst_event_add, incident_assign, incident_open, incident_set_restricted

User = get_user_model()
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _cursor(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def _all_pages(fetch, size: int) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        page = fetch(cursor=cursor, size=size)
        pages.append([item.id for item in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        assert len(pages) < 1000, "pagination does not end"


def _python_sorted(rows: list[dict], ordering: keyset.Ordering) -> list[int]:
    """The order the sort promises, computed independently of the queryset (stable sorts, last key first)."""
    result = list(rows)
    for field, desc in reversed(list(ordering)):
        result.sort(key=lambda row, f=field: row[f], reverse=desc)
    return [row["id"] for row in result]


# --- visibility -------------------------------------------------------------------------------------


@pytest.fixture
def cases(playbook, manager, responder, other_responder, viewer) -> dict[str, Incident]:
    """public: unrestricted; commanded: restricted, responder commands; assigned: restricted, other_responder
    is an assignee; sealed: restricted, nobody from the team."""
    result = {
        name: incident_open(title=f"{name} case", playbook=playbook, actor=manager)
        for name in ["public", "commanded", "assigned", "sealed"]
    }
    for name in ["commanded", "assigned", "sealed"]:
        incident_set_restricted(incident_id=result[name].pk, actor=manager, restricted=True)
    incident_assign(incident_id=result["commanded"].pk, actor=manager, commander_id=responder.pk, assignee_ids=[])
    incident_assign(
        incident_id=result["assigned"].pk, actor=manager, commander_id=None, assignee_ids=[other_responder.pk]
    )
    return result


VISIBILITY = {
    "viewer": {"public"},
    "responder": {"public", "commanded"},
    "other_responder": {"public", "assigned"},
    "manager": {"public", "commanded", "assigned", "sealed"},
    "admin": {"public", "commanded", "assigned", "sealed"},
    "superuser": {"public", "commanded", "assigned", "sealed"},
    "outsider": set(),
    "anonymous": set(),
}


@pytest.mark.parametrize(("who", "expected"), VISIBILITY.items(), ids=VISIBILITY.keys())
def test_visibility_matrix(request, cases, who, expected) -> None:
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)

    page = incident_list_for_user(user=user, filters=IncidentFilters(phase="all"), cursor=None, size=50)

    names = {name for name, case in cases.items() if case.pk in {item.pk for item in page.items}}
    assert names == expected
    for name, case in cases.items():
        if name in expected:
            assert incident_get_for_user(user=user, incident_id=case.pk).pk == case.pk
        else:
            with pytest.raises(Incident.DoesNotExist):
                incident_get_for_user(user=user, incident_id=case.pk)


def test_viewer_on_a_restricted_case_sees_it(cases, manager, viewer) -> None:
    incident_assign(incident_id=cases["sealed"].pk, actor=manager, commander_id=None, assignee_ids=[viewer.pk])

    assert incident_get_for_user(user=viewer, incident_id=cases["sealed"].pk).pk == cases["sealed"].pk


def test_list_has_no_duplicates_for_a_user_who_is_commander_and_assignee(cases, manager, responder) -> None:
    incident_assign(
        incident_id=cases["commanded"].pk, actor=manager, commander_id=responder.pk, assignee_ids=[responder.pk]
    )

    page = incident_list_for_user(user=responder, filters=IncidentFilters(phase="all"), cursor=None, size=50)

    ids = [item.pk for item in page.items]
    assert sorted(ids) == sorted({cases["public"].pk, cases["commanded"].pk})


# --- filters ----------------------------------------------------------------------------------------


@pytest.fixture
def varied(playbook, manager, responder) -> dict[str, Incident]:
    result = {
        "miner": incident_open(
            title="Crypto miner in batch", playbook=playbook, actor=manager, severity=Severity.HIGH,
            priority=Priority.P2, cluster_name="prod-eu",
        ),
        "exec": incident_open(
            title="Exec into payments", playbook=playbook, actor=manager, severity=Severity.CRITICAL,
            priority=Priority.P1, cluster_name="prod-us",
        ),
        "scan": incident_open(
            title="Port scan", playbook=playbook, actor=manager, severity=Severity.LOW, priority=Priority.P4,
            cluster_name="prod-eu",
        ),
        "old": incident_open(title="Old MINER alert", playbook=playbook, actor=manager, severity=Severity.HIGH),
    }  # fmt: skip
    Incident.objects.filter(pk=result["old"].pk).update(phase=Phase.CLOSED)
    Incident.objects.filter(pk=result["scan"].pk).update(phase=Phase.CONTAINMENT)
    incident_assign(incident_id=result["exec"].pk, actor=manager, commander_id=None, assignee_ids=[responder.pk])
    incident_assign(incident_id=result["scan"].pk, actor=manager, commander_id=responder.pk, assignee_ids=[])
    return result


FILTER_CASES = {
    "default-open": (IncidentFilters(), {"miner", "exec", "scan"}),
    "all": (IncidentFilters(phase="all"), {"miner", "exec", "scan", "old"}),
    "closed": (IncidentFilters(phase=Phase.CLOSED), {"old"}),
    "containment": (IncidentFilters(phase=Phase.CONTAINMENT), {"scan"}),
    "severity": (IncidentFilters(phase="all", severity=Severity.HIGH), {"miner", "old"}),
    "priority": (IncidentFilters(priority=Priority.P1), {"exec"}),
    "cluster": (IncidentFilters(cluster="prod-eu"), {"miner", "scan"}),
    "title-search": (IncidentFilters(phase="all", q="miner"), {"miner", "old"}),
    "combined": (IncidentFilters(cluster="prod-eu", severity=Severity.HIGH), {"miner"}),
}


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES.values(), ids=FILTER_CASES.keys())
def test_filters(varied, manager, filters, expected) -> None:
    page = incident_list_for_user(user=manager, filters=filters, cursor=None, size=50)

    assert {name for name, case in varied.items() if case.pk in {i.pk for i in page.items}} == expected


def test_assignee_filter_matches_commander_or_assignee(varied, manager, responder) -> None:
    filters = IncidentFilters(phase="all", assignee_id=responder.pk)

    page = incident_list_for_user(user=manager, filters=filters, cursor=None, size=50)

    assert {item.pk for item in page.items} == {varied["exec"].pk, varied["scan"].pk}


# --- keyset pagination ------------------------------------------------------------------------------


@pytest.fixture
def many(playbook) -> list[Incident]:
    """23 incidents with plenty of ties in every sort key (severity, timestamps, acknowledged)."""
    rows = []
    for i in range(23):
        rows.append(
            Incident(
                title=f"Case {i}",
                playbook=playbook,
                severity=Severity.values[i % 4],
                priority=Priority.values[i % 4],
                detected_at=T0,
                sla_due_at=T0 + timedelta(minutes=15 * (i % 5)),
                acknowledged=i % 3 == 0,
            )
        )
    created = Incident.objects.bulk_create(rows)
    # Force ties on the auto timestamps too: only `id` can break them.
    for index, incident in enumerate(created):
        Incident.objects.filter(pk=incident.pk).update(
            created_at=T0 + timedelta(seconds=index // 4), updated_at=T0 + timedelta(seconds=index % 3)
        )
    return created


@pytest.mark.parametrize("sort", INCIDENT_SORTS.keys())
@pytest.mark.parametrize("size", [1, 4, 7, 23, 50])
def test_keyset_pages_cover_every_incident_exactly_once_in_order(many, manager, sort, size) -> None:
    # given
    ordering = INCIDENT_SORTS[sort]
    filters = IncidentFilters(phase="all", sort=sort)
    expected = _python_sorted(list(Incident.objects.values()), ordering)

    # when
    pages = _all_pages(
        lambda cursor, size: incident_list_for_user(user=manager, filters=filters, cursor=cursor, size=size), size
    )

    # then
    flat = [pk for page in pages for pk in page]
    assert flat == expected
    assert len(flat) == len(set(flat)) == 23
    assert all(len(page) == size for page in pages[:-1])
    assert 1 <= len(pages[-1]) <= size


def test_keyset_pages_respect_visibility_and_filters(many, manager, responder) -> None:
    # given: the responder cannot see restricted high-severity cases
    Incident.objects.filter(severity=Severity.HIGH).update(restricted=True)
    filters = IncidentFilters(phase="all", sort="-severity")

    # when
    pages = _all_pages(
        lambda cursor, size: incident_list_for_user(user=responder, filters=filters, cursor=cursor, size=size), 4
    )

    # then
    flat = [pk for page in pages for pk in page]
    assert sorted(flat) == sorted(Incident.objects.exclude(severity=Severity.HIGH).values_list("pk", flat=True))


@pytest.fixture
def long_timeline(incident, responder) -> Incident:
    """The CREATED event plus 17 analyst events, many sharing an occurred_at."""
    for i in range(17):
        analyst_event_add(
            incident_id=incident.pk,
            actor=responder,
            occurred_at=T0 + timedelta(minutes=i % 4),
            summary=f"Observation {i}",
        )
    return incident


@pytest.mark.parametrize("order", TIMELINE_ORDER.keys())
@pytest.mark.parametrize("size", [1, 5, 18, 40])
def test_timeline_pages_cover_every_event_exactly_once_in_order(long_timeline, order, size) -> None:
    # given
    filters = TimelineFilters(order=order)
    expected = _python_sorted(
        list(TimelineEvent.objects.filter(incident=long_timeline).values()), TIMELINE_ORDER[order]
    )

    # when
    pages = _all_pages(
        lambda cursor, size: timeline_page(incident=long_timeline, filters=filters, cursor=cursor, size=size), size
    )

    # then
    flat = [pk for page in pages for pk in page]
    assert flat == expected
    assert len(flat) == len(set(flat)) == 18


def test_timeline_filters_by_kind_and_actor(long_timeline, manager, responder) -> None:
    incident_set_restricted(incident_id=long_timeline.pk, actor=manager, restricted=True)

    analyst_only = timeline_page(
        incident=long_timeline, filters=TimelineFilters(kinds=(TimelineEvent.Kind.ANALYST,)), cursor=None, size=100
    )
    by_manager = timeline_page(
        incident=long_timeline, filters=TimelineFilters(actor_id=manager.pk), cursor=None, size=100
    )

    assert len(analyst_only.items) == 17
    assert {event.kind for event in analyst_only.items} == {TimelineEvent.Kind.ANALYST}
    assert [(event.kind, event.actor__username) for event in by_manager.items] == [("field", "manager")]
    assert "Restricted" in by_manager.items[0].summary


# --- invalid cursors --------------------------------------------------------------------------------

MALFORMED_CURSORS = {
    "not-base64": "%%%not base64%%%",
    "not-json": base64.urlsafe_b64encode(b"{not json").decode(),
    "not-a-list": _cursor({"a": 1}),
    "too-short": _cursor([3]),
    "too-long": _cursor([3, 4, 5]),
    "bad-datetime": _cursor([{"t": "yesterday"}, 4]),
    "binary": base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),
}


@pytest.mark.parametrize("cursor", MALFORMED_CURSORS.values(), ids=MALFORMED_CURSORS.keys())
def test_malformed_cursor_raises_cursor_error(many, manager, cursor) -> None:
    with pytest.raises(keyset.CursorError):
        incident_list_for_user(user=manager, filters=IncidentFilters(sort="-severity"), cursor=cursor, size=5)


# Well-formed cursors (valid base64 JSON list of the right length) whose values have the wrong type for
# the sort's columns: a tampered URL must still be a CursorError (the list view answers 400 on it).
MISTYPED_CURSORS = {
    "text-for-severity-and-id": ("-severity", _cursor(["high", "abc"])),
    "datetime-for-severity": ("-severity", _cursor([{"t": "2025-03-01T12:00:00+00:00"}, 1])),
    "number-for-updated_at": ("-updated", _cursor([12, 1])),
    "list-for-id": ("-created", _cursor([{"t": "2025-03-01T12:00:00+00:00"}, [1, 2]])),
}


@pytest.mark.parametrize(("sort", "cursor"), MISTYPED_CURSORS.values(), ids=MISTYPED_CURSORS.keys())
def test_cursor_with_mistyped_values_raises_cursor_error(many, manager, sort, cursor) -> None:
    with pytest.raises(keyset.CursorError):
        page = incident_list_for_user(user=manager, filters=IncidentFilters(sort=sort), cursor=cursor, size=5)
        list(page.items)


def test_timeline_malformed_cursor_raises_cursor_error(long_timeline) -> None:
    with pytest.raises(keyset.CursorError):
        timeline_page(incident=long_timeline, filters=TimelineFilters(), cursor="garbage!", size=5)


# --- constant cost ----------------------------------------------------------------------------------


@pytest.fixture
def lots(playbook, manager) -> None:
    """120 incidents, half with a commander, so a missing select_related would show as N+1."""
    Incident.objects.bulk_create(
        Incident(
            title=f"Bulk {i}",
            playbook=playbook,
            detected_at=T0,
            sla_due_at=T0 + timedelta(minutes=i),
            commander=manager if i % 2 else None,
        )
        for i in range(120)
    )


LIST_QUERIES = 2  # the user's groups, then one page query


@pytest.mark.parametrize("size", [10, 100])
@pytest.mark.parametrize("sort", INCIDENT_SORTS.keys())
def test_list_costs_the_same_queries_at_any_page_size(lots, responder, django_assert_num_queries, size, sort) -> None:
    # given: a fresh user object (nothing cached) and a cursor into the middle of the list
    cursor = incident_list_for_user(user=responder, filters=IncidentFilters(sort=sort), cursor=None, size=5).next_cursor
    user = User.objects.get(pk=responder.pk)

    # when / then
    with django_assert_num_queries(LIST_QUERIES) as captured:
        page = incident_list_for_user(user=user, filters=IncidentFilters(sort=sort), cursor=cursor, size=size)
        commanders = [item.commander for item in page.items]
    assert len(page.items) == size
    assert len(commanders) == size
    for query in captured.captured_queries:
        sql = query["sql"].upper()
        assert " OFFSET " not in sql
        assert "COUNT(" not in sql


@pytest.mark.parametrize("size", [10, 100])
def test_timeline_page_costs_one_query_at_any_page_size(incident, responder, django_assert_num_queries, size) -> None:
    # given
    TimelineEvent.objects.bulk_create(
        TimelineEvent(incident=incident, kind=TimelineEvent.Kind.ANALYST, actor=responder, occurred_at=T0, summary="x")
        for _ in range(150)
    )
    cursor = timeline_page(incident=incident, filters=TimelineFilters(), cursor=None, size=3).next_cursor

    # when / then
    with django_assert_num_queries(1) as captured:
        page = timeline_page(incident=incident, filters=TimelineFilters(), cursor=cursor, size=size)
        actors = [event.actor__username for event in page.items]
    assert actors == [responder.username] * size
    sql = captured.captured_queries[0]["sql"].upper()
    assert " OFFSET " not in sql and "COUNT(" not in sql
