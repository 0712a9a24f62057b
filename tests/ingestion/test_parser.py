"""The parser: both spellings read the same, every container yields its findings, samples and private IPs."""

import dataclasses
import gzip
import json
from typing import Any

import pytest

from incidents.services.findings import finding_observables
from integrations.aws.guardduty import FindingParseError, documents_from_bytes, parse_finding
from tests.fixtures import GUARDDUTY, load_guardduty
from tests.ingestion.conftest import ANONYMOUS, PRIVATE_IP, WIRE_NAMES, wire


def test_every_eks_type_has_a_wire_and_a_boto3_fixture() -> None:
    assert len(WIRE_NAMES) == 39
    assert sorted(path.stem for path in (GUARDDUTY / "boto3").glob("*.json")) == WIRE_NAMES


@pytest.mark.parametrize("name", WIRE_NAMES)
def test_wire_and_boto3_spellings_parse_to_the_same_finding(name: str) -> None:
    from_wire = parse_finding(load_guardduty(f"wire/{name}.json"))
    from_boto3 = parse_finding(load_guardduty(f"boto3/{name}.json"))
    # NormalizedFinding compares every field except raw; list them so a failure names the field.
    fields = [f.name for f in dataclasses.fields(from_wire) if f.compare]
    assert {f: getattr(from_boto3, f) for f in fields} == {f: getattr(from_wire, f) for f in fields}
    assert from_wire.finding_type.replace(":", "_").replace("/", "_").replace(".", "_").replace("!", "_") == name


@pytest.mark.parametrize("name", WIRE_NAMES)
def test_parsing_only_the_read_fields_gives_the_same_finding_as_parsing_everything(name: str) -> None:
    document = load_guardduty(f"wire/{name}.json")
    assert parse_finding(document) == parse_finding(document, whole=True)
    # and the comparison can fail: a changed value that we read shows up
    document["resource"]["eksClusterDetails"]["name"] = "other"
    assert parse_finding(document).cluster_name == parse_finding(document, whole=True).cluster_name == "other"


def _restricted(view: Any, fields: Any) -> Any:
    """A boto3 view cut down to READ_FIELDS (True: the whole value)."""
    if fields is True or not isinstance(view, dict):
        return view
    return {name: _restricted(view[name], sub) for name, sub in fields.items() if name in view}


@pytest.mark.parametrize("name", WIRE_NAMES)
def test_the_read_fields_view_is_botocores_view_of_them(name: str) -> None:
    from integrations.aws.guardduty import READ_FIELDS, _boto3_view

    document = load_guardduty(f"wire/{name}.json")
    # values botocore converts or keeps: an integral severity (a double), nulls in a list and in members
    document["severity"] = 8
    document["resource"].setdefault("kubernetesDetails", {}).setdefault("kubernetesUserDetails", {})["groups"] = [
        "system:masters",
        None,
    ]
    document["service"]["eventFirstSeen"] = None
    # when
    view = _boto3_view(document)
    # then: member for member, what botocore's whole parse holds of the read fields
    assert view == _restricted(_boto3_view(document, whole=True), READ_FIELDS)
    assert view["Severity"] == 8.0 and isinstance(view["Severity"], float)
    assert "EventFirstSeen" not in view["Service"]


def test_the_domain_example_reads_as_documented() -> None:
    finding = parse_finding(wire(ANONYMOUS))
    assert (finding.account_id, finding.region, finding.finding_id) == (
        "111122223333",
        "us-east-1",
        "a4c7b5e91f0d2a6c8e3b1d5f7a9c0e12",
    )
    assert finding.cluster_name == "prod-eks" and finding.k8s_user == "system:anonymous"
    assert finding.source_ips == ("198.51.100.23",) and finding.asn == "64500"
    assert finding.count == 3 and finding.severity == 5.0 and not finding.is_sample
    assert finding.updated_at.isoformat() == "2024-05-02T16:27:05.118000+00:00"
    assert finding.raw == wire(ANONYMOUS)


def _sns(message: dict) -> bytes:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "5b3a4c2e-0000-4000-8000-000000000001",
            "TopicArn": "arn:aws:sns:us-east-1:111122223333:guardduty-findings",
            "Message": json.dumps(message),
            "Timestamp": "2024-05-02T16:27:06.000Z",
        }
    ).encode()


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("eventbridge/Discovery_Kubernetes_SuccessfulAnonymousAccess.json", 1),
        ("eventbridge/PrivilegeEscalation_Kubernetes_PrivilegedContainer.json", 1),
        ("cli_get_findings.json", 3),
        ("api_response.json", 2),
        ("list.json", 2),
        ("export.jsonl", 3),
        ("export.jsonl.gz", 3),
    ],
)
def test_each_bundle_yields_its_findings(relative: str, expected: int) -> None:
    documents = documents_from_bytes((GUARDDUTY / relative).read_bytes())
    findings = [parse_finding(document) for document in documents]
    assert len(findings) == expected
    assert len({f.finding_id for f in findings}) == expected


def test_an_sns_notification_wrapping_an_eventbridge_event_yields_its_finding() -> None:
    event = load_guardduty("eventbridge/Discovery_Kubernetes_SuccessfulAnonymousAccess.json")
    (document,) = documents_from_bytes(_sns(event))
    assert parse_finding(document) == parse_finding(wire(ANONYMOUS))


def test_a_gzipped_cli_output_reads_like_the_plain_one() -> None:
    plain = (GUARDDUTY / "cli_get_findings.json").read_bytes()
    assert documents_from_bytes(gzip.compress(plain)) == documents_from_bytes(plain)


def test_the_sample_finding_is_flagged() -> None:
    assert parse_finding(load_guardduty("sample_finding.json")).is_sample
    assert not any(parse_finding(wire(name)).is_sample for name in WIRE_NAMES)


def test_a_private_caller_ip_gives_no_asn_observable() -> None:
    finding = parse_finding(wire(PRIVATE_IP))
    assert finding.asn == "0" and finding.source_ips == ("10.20.3.41",)
    kinds = {kind for kind, _ in finding_observables(finding)}
    assert "asn" not in kinds and "ip" in kinds
    assert ("asn", "AS64500") in finding_observables(parse_finding(wire(ANONYMOUS)))


def test_an_eventbridge_event_of_another_type_is_refused_by_name() -> None:
    event = {"detail-type": "AWS API Call via CloudTrail", "source": "aws.s3", "detail": {}}
    with pytest.raises(FindingParseError, match="AWS API Call via CloudTrail"):
        documents_from_bytes(json.dumps(event).encode())


def test_a_cut_off_json_document_is_reported_where_it_breaks() -> None:
    # not_json.txt is one pretty-printed finding cut off inside a string on line 10.
    with pytest.raises(FindingParseError) as caught:
        documents_from_bytes((GUARDDUTY / "bad" / "not_json.txt").read_bytes())
    assert "line 10" in str(caught.value)
