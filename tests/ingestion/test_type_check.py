"""The finding type check's quick pass (`_check`) and its full one (`_type_errors`) agree on every document.

The quick pass decides alone whenever it accepts a document, so a value it let through that the
full check refuses would reach the database unchecked: any JSON value, at any place of a real
finding, must get the same verdict from both.
"""

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.aws.guardduty import FINDING_SHAPE, FindingParseError, _check, _type_errors, to_wire_document
from tests.fixtures import document_places
from tests.ingestion.conftest import ANONYMOUS, wire
from tests.ingestion.test_property_hostile import VALUES, _changed

TEMPLATE = wire(ANONYMOUS)
PLACES = document_places(TEMPLATE)


def _errors(document: Any) -> list[str]:
    errors: list[str] = []
    _type_errors(document, FINDING_SHAPE, "", errors)
    return errors


@given(replacements=st.lists(st.tuples(st.sampled_from(PLACES), VALUES), min_size=1, max_size=4))
@settings(max_examples=600, deadline=None)
def test_the_quick_check_accepts_exactly_what_the_full_check_finds_no_error_in(replacements) -> None:
    document = _changed(copy.deepcopy(TEMPLATE), replacements)
    assert _check(FINDING_SHAPE)(document) is (not _errors(document))


@pytest.mark.parametrize(
    ("place", "value", "message"),
    [
        (("service", "count"), "3", "service.count: expected integer"),
        (("service", "count"), 2**40, "service.count: 1099511627776 is out of range for integer"),
        (("service", "count"), True, "service.count: expected integer, got true"),
        (("resource",), [], "resource: expected an object, got list"),
        (("title",), {"a": 1}, "title: expected string"),
        (("service", "somethingNew"), 7, ""),  # (a member the model does not know: left alone)
    ],
)
def test_a_refused_document_still_names_the_place_and_the_reason(place, value, message) -> None:
    document = copy.deepcopy(TEMPLATE)
    _changed(document, [(place, value)])
    if not message:
        assert to_wire_document(document) is document
        return
    with pytest.raises(FindingParseError, match="^wrong type: ") as raised:
        to_wire_document(document)
    assert message in str(raised.value)
    assert not _check(FINDING_SHAPE)(document)
