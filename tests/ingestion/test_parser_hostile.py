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


@pytest.mark.parametrize(
    ("member", "value", "reason"),
    [
        ("Severity", float("inf"), "severity: expected a finite double"),
        ("Severity", float("nan"), "severity: expected a finite double"),
    ],
)
def test_non_finite_numbers_in_boto3_spelling_are_refused(member: str, value: float, reason: str) -> None:
    # boto3's spelling arrives as Python objects (the poller), where no JSON decoder saw the number.
    document = {"Id": "x", "AccountId": "111122223333", "Region": "us-east-1", "Type": "T",
                "UpdatedAt": "2026-11-28T00:00:00Z", member: value}  # fmt: skip
    with pytest.raises(FindingParseError, match=reason):
        parse_finding(document)


@pytest.mark.parametrize(("count", "ok"), [(2**31 - 1, True), (2**31, False), (-(2**31) - 1, False), (0, True)])
def test_an_integer_member_holds_32_bits(count: int, ok: bool) -> None:
    document = copy.deepcopy(wire(ANONYMOUS))
    document["service"]["count"] = count
    if ok:
        assert parse_finding(document).count == max(count, 1)
    else:
        with pytest.raises(FindingParseError, match="service.count"):
            parse_finding(document)


def test_nulls_in_the_lists_read_are_left_out() -> None:
    # Found by tests/ingestion/test_property_hostile.py: a null address reached the observables as None.
    document = copy.deepcopy(wire(ANONYMOUS))
    document["service"]["action"]["kubernetesApiCallAction"]["sourceIPs"] = [None, "198.51.100.23", ""]
    document["resource"]["kubernetesDetails"]["kubernetesUserDetails"]["groups"] = [None, "system:unauthenticated"]
    finding = parse_finding(document)
    assert finding.source_ips == ("198.51.100.23",) and finding.k8s_groups == ("system:unauthenticated",)
