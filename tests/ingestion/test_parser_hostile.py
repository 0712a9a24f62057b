"""Inputs that once escaped the parser as something other than FindingParseError (found while fuzzing,
fuzz/fuzz_guardduty.py): each must now be refused, or read, like any other bad or odd payload."""

import copy

import pytest

from integrations.aws.guardduty import FindingParseError, documents_from_bytes, parse_finding
from tests.ingestion.conftest import ANONYMOUS, wire


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
        (b"[" + b"7" * 5000 + b"]", "invalid JSON"),
        (b'{"Type": "Notification", "Message": "' + b"[" * 3000 + b'"}', "nested too deeply"),
    ],
)
def test_hostile_json_is_a_parse_error(body: bytes, reason: str) -> None:
    with pytest.raises(FindingParseError, match=reason):
        documents_from_bytes(body)


@pytest.mark.parametrize("value", ["7" * 5000, "[" * 5000])
def test_unreadable_additional_info_value_means_not_a_sample(value: str) -> None:
    document = copy.deepcopy(wire(ANONYMOUS))
    document["service"]["additionalInfo"] = {"value": value, "type": "default"}
    assert parse_finding(document).is_sample is False
