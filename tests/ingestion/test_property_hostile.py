"""Property: whatever a finding document holds, ingesting it ends in a result, never in an exception.

Every value the database could not store once reached its INSERT as a server error (NaN, a 2^40 count,
a 13-digit account, a NUL, a time in the year 9999). Here any JSON value, at any place of a real
finding, goes through the whole service against PostgreSQL: the finding is ingested or quarantined
with a reason, and the transaction is still usable afterwards.
"""

import copy
import json
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incidents.models import Finding, InboundPayload, QuarantinedDocument
from incidents.services.findings import CREATED, REJECTED, payload_receive
from tests.fixtures import document_places, load_guardduty
from tests.ingestion.conftest import ANONYMOUS, wire

pytestmark = pytest.mark.django_db

# Both spellings: the wire's camelCase, and boto3's PascalCase, which is converted through the model first.
TEMPLATES = {"wire": wire(ANONYMOUS), "boto3": load_guardduty(f"boto3/{ANONYMOUS}.json")}


PATHS = {spelling: document_places(template) for spelling, template in TEMPLATES.items()}
TIMES = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00", "2026-02-30T00:00:00Z", "2026-11-28T00:00:00Z", ""]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=700)  # any code point: NUL and lone surrogates too
    | st.sampled_from(TIMES)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
)


def _finding(spelling: str, tag: int, **top: str) -> dict[str, Any]:
    """A copy of the template with its own id (and other top-level members, by wire name)."""
    document = copy.deepcopy(TEMPLATES[spelling])
    for name, value in {"id": f"hostile-{tag}", **top}.items():
        document[name if spelling == "wire" else name[0].upper() + name[1:]] = value
    return document


def _changed(document: dict[str, Any], replacements: list[tuple[tuple[Any, ...], Any]]) -> dict[str, Any]:
    """The document with each value replaced in turn (a replaced container hides what was inside)."""
    for path, value in replacements:
        parent: Any = document
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this place
    return document


# Most of a finding's values are strings: text three times in four keeps most documents readable, so
# that most examples reach the database rather than the type check.
REPLACEMENTS = st.one_of(st.text(max_size=700), st.text(max_size=700), st.text(max_size=700), VALUES)
CHANGES = st.sampled_from(sorted(TEMPLATES)).flatmap(
    lambda spelling: st.tuples(
        st.just(spelling),
        st.lists(st.tuples(st.sampled_from(PATHS[spelling]), REPLACEMENTS), min_size=1, max_size=4),
    )
)


@given(changes=CHANGES, tag=st.integers(0, 10**9))
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # no .hypothesis/ example store in the working tree
)
def test_any_value_anywhere_in_a_finding_is_ingested_or_quarantined_never_an_error(
    playbook, changes: tuple[str, list[tuple[tuple[Any, ...], Any]]], tag: int
) -> None:
    # given: a real finding with up to four values replaced
    spelling, replacements = changes
    body = json.dumps(
        _changed(_finding(spelling, tag), replacements)
    ).encode()  # writes NaN, Infinity and escaped surrogates as they are
    savepoint = transaction.savepoint()
    try:
        # when
        report = payload_receive(source=InboundPayload.Source.WEBHOOK, body=body)
        # then: one result, and a reason kept next to every refusal
        assert len(report.results) == 1 and report.results[0].status in (CREATED, REJECTED)
        reasons = list(
            QuarantinedDocument.objects.filter(payload_id=report.payload_id).values_list("reason", flat=True)
        )
        assert (report.results[0].status == REJECTED) == bool(reasons) and all(reasons)
        assert bytes(InboundPayload.objects.get(pk=report.payload_id).body) == body
    finally:
        transaction.savepoint_rollback(savepoint)


@given(changes=CHANGES, tag=st.integers(0, 10**9))
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
def test_any_value_anywhere_in_a_later_version_updates_or_is_quarantined_never_an_error(
    playbook, changes: tuple[str, list[tuple[tuple[Any, ...], Any]]], tag: int
) -> None:
    # given: the finding as first delivered, then a later version (the locked, one-at-a-time path) with
    # up to four values replaced
    spelling, replacements = changes
    first = _finding(spelling, tag)
    later = _changed(_finding(spelling, tag, updatedAt="2030-01-01T00:00:00.000Z"), replacements)
    savepoint = transaction.savepoint()
    try:
        assert payload_receive(source=InboundPayload.Source.WEBHOOK, body=json.dumps(first).encode()).counts[CREATED]
        # when
        report = payload_receive(source=InboundPayload.Source.WEBHOOK, body=json.dumps(later).encode())
        # then: a result for it, and a reason next to a refusal
        assert len(report.results) == 1
        status = report.results[0].status
        quarantined = QuarantinedDocument.objects.filter(payload_id=report.payload_id)
        assert (status == REJECTED) == quarantined.exists()
        assert status != CREATED or Finding.objects.count() == 2  # its key was replaced: a new finding
    finally:
        transaction.savepoint_rollback(savepoint)
