"""Bad input: every payload is stored byte for byte first; what cannot be read is quarantined with a reason."""

import gzip
import hashlib
import json

import pytest

from incidents.models import Finding, InboundPayload, Incident, QuarantinedDocument
from incidents.services.findings import CREATED, REJECTED, payload_receive
from tests.fixtures import GUARDDUTY
from tests.ingestion.conftest import ANONYMOUS, as_bytes, variant, wire

pytestmark = pytest.mark.django_db

# file in bad/ → (words the reason must contain, position: None = the whole payload, 0 = its document)
BAD_INPUTS = {
    "not_json.txt": ("invalid JSON", None),
    "not_a_finding.json": ("not a finding", 0),
    "wrong_type.json": ("service.count", 0),
    "missing_id.json": ("missing id", 0),
    "missing_account.json": ("missing accountId", 0),
    "missing_region.json": ("missing region", 0),
    "empty_list.json": ("no findings", None),
    "truncated.json.gz": ("gzip", None),
}


def test_every_bad_fixture_is_covered() -> None:
    on_disk = {path.name for path in (GUARDDUTY / "bad").iterdir() if path.name != "README.md"}
    assert on_disk == set(BAD_INPUTS)


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_a_bad_file_is_stored_and_quarantined_with_a_reason_that_names_the_problem(name: str, playbook) -> None:
    # given
    body = (GUARDDUTY / "bad" / name).read_bytes()
    words, position = BAD_INPUTS[name]
    # when
    report = payload_receive(source=InboundPayload.Source.IMPORT, body=body, meta={"file": name})
    # then
    payload = InboundPayload.objects.get(pk=report.payload_id)
    assert bytes(payload.body) == body and payload.sha256 == hashlib.sha256(body).hexdigest()
    assert payload.status == InboundPayload.Status.REJECTED and payload.counts[REJECTED] == 1
    quarantined = QuarantinedDocument.objects.get(payload=payload)
    assert words in quarantined.reason and quarantined.position == position and quarantined.resolved_at is None
    if position is not None:  # the document that failed is kept next to its reason
        assert quarantined.document == json.loads(body)
    assert [(r.status, r.reason) for r in report.results] == [(REJECTED, quarantined.reason)]
    assert not Finding.objects.exists() and not Incident.objects.exists()


def test_wrong_types_name_every_bad_field() -> None:
    body = (GUARDDUTY / "bad" / "wrong_type.json").read_bytes()
    reason = payload_receive(source=InboundPayload.Source.WEBHOOK, body=body).results[0].reason
    assert "service.count" in reason and "severity" in reason and "three" in reason


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"\xff\xfe{\x00}", "not UTF-8"),
        (b"[1, 2]", "not a finding"),
        (json.dumps({"detail-type": "Object Created", "detail": {}}).encode(), "not 'GuardDuty Finding'"),
    ],
)
def test_other_unreadable_bodies_are_quarantined_too(body: bytes, words: str) -> None:
    report = payload_receive(source=InboundPayload.Source.WEBHOOK, body=body)
    assert report.counts[REJECTED] >= 1 and not report.fully_accepted
    assert all(words in row.reason for row in QuarantinedDocument.objects.filter(payload_id=report.payload_id))
    assert bytes(InboundPayload.objects.get(pk=report.payload_id).body) == body


def test_an_oversized_body_is_stored_and_quarantined() -> None:
    body = b" " * (20 * 1024 * 1024 + 1)
    report = payload_receive(source=InboundPayload.Source.WEBHOOK, body=body)
    assert "larger than 20 MiB" in QuarantinedDocument.objects.get(payload_id=report.payload_id).reason
    assert InboundPayload.objects.get(pk=report.payload_id).size == len(body)


def test_a_gzip_that_expands_beyond_the_limit_is_quarantined_unexpanded() -> None:
    body = gzip.compress(b" " * (21 * 1024 * 1024))
    report = payload_receive(source=InboundPayload.Source.IMPORT, body=body)
    assert "expands beyond 20 MiB" in QuarantinedDocument.objects.get(payload_id=report.payload_id).reason


def test_two_good_findings_and_one_bad_give_a_partial_payload(playbook) -> None:
    # given
    bad = variant(wire(ANONYMOUS), id="")
    body = as_bytes(wire(ANONYMOUS), bad, wire("Policy_Kubernetes_AnonymousAccessGranted"))
    # when
    report = payload_receive(source=InboundPayload.Source.IMPORT, body=body)
    # then
    assert [r.status for r in report.results] == [CREATED, REJECTED, CREATED]
    assert report.counts == {"created": 2, "updated": 0, "duplicate": 0, "stale": 0, "rejected": 1}
    payload = InboundPayload.objects.get()
    assert payload.status == InboundPayload.Status.PARTIAL and payload.counts == report.counts
    quarantined = QuarantinedDocument.objects.get()
    assert (quarantined.position, quarantined.reason, quarantined.document) == (1, "missing id", bad)
    assert Finding.objects.count() == 2


def _text_with(replace: str, by: str) -> bytes:
    """The anonymous-access finding as JSON text, one piece of it replaced (values json.dumps cannot write)."""
    text = json.dumps(wire(ANONYMOUS))
    assert replace in text
    return text.replace(replace, by, 1).encode()


def _with(path: tuple[str, ...], value: object, **top: str) -> bytes:
    document = variant(wire(ANONYMOUS), **top)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if path:
        parent[path[-1]] = value
    return as_bytes(document)


# Bodies PostgreSQL refused at INSERT, after parsing: each was a server error and a payload left
# "received", until it was checked on the way in. (body, words of the reason, position: None = the
# whole payload, 0 = its document)
UNSTORABLE = {
    "NaN": (_text_with('"severity": ', '"severity": NaN, "x": '), "NaN is not a number JSON allows", None),
    "Infinity": (_text_with('"severity": ', '"severity": -Infinity, "x": '), "Infinity is not a number", None),
    "a float beyond double": (_text_with('"severity": ', '"severity": 1e400, "x": '), "1e400 is too large", None),
    "NaN in a member the model lacks": (_text_with('"service": {', '"service": {"extra": [NaN], '), "NaN", None),
    "count beyond 32 bits": (_with(("service", "count"), 2**40), "service.count: 1099511627776 is out of range", 0),
    "negative count": (_with(("service", "count"), -3), "service.count: -3 is negative", 0),
    "13-digit account": (_with((), None, accountId="1" * 13), "accountId: 13 characters long", 0),
    "long region": (_with((), None, region="r" * 31), "region: 31 characters long", 0),
    "long id": (_with((), None, id="f" * 101), "id: 101 characters long", 0),
    "long type": (_with((), None, type="T" * 101), "type: 101 characters long", 0),
    "the calendar's last day": (
        _with(("service", "eventFirstSeen"), "9999-12-31T23:59:59Z"),
        "not a time a finding can hold: '9999-12-31T23:59:59Z'",
        0,
    ),
}


@pytest.mark.parametrize("case", sorted(UNSTORABLE))
def test_values_the_database_cannot_store_are_quarantined_not_a_server_error(case: str, playbook) -> None:
    # given
    body, words, position = UNSTORABLE[case]
    # when
    report = payload_receive(source=InboundPayload.Source.WEBHOOK, body=body)
    # then
    payload = InboundPayload.objects.get(pk=report.payload_id)
    assert bytes(payload.body) == body and payload.status == InboundPayload.Status.REJECTED
    quarantined = QuarantinedDocument.objects.get(payload=payload)
    assert words in quarantined.reason and quarantined.position == position
    assert [r.status for r in report.results] == [REJECTED]
    assert not Finding.objects.exists() and not Incident.objects.exists()


def test_nul_and_half_surrogates_an_attacker_can_put_in_a_finding_are_replaced_not_refused(playbook) -> None:
    """GuardDuty copies attacker-chosen text (a user agent) into the finding: refusing the finding would
    hide the attacker's activity, so what PostgreSQL cannot store becomes U+FFFD; an emoji stays."""
    # given
    document = wire(ANONYMOUS)
    call = document["service"]["action"]["kubernetesApiCallAction"]
    call["userAgent"] = "curl/8\x00\ud800 \U0001f600"
    document["service"]["additionalInfo"] = {"value": "{}", "type": "default", "key\x00": "v\udfff"}
    body = as_bytes(document)
    assert b"\\u0000" in body and b"\\ud800" in body  # json.dumps escapes them: valid JSON text
    # when
    report = payload_receive(source=InboundPayload.Source.WEBHOOK, body=body)
    # then
    assert [r.status for r in report.results] == [CREATED]
    raw = Finding.objects.get().raw
    assert raw["service"]["action"]["kubernetesApiCallAction"]["userAgent"] == "curl/8\ufffd\ufffd \U0001f600"
    assert raw["service"]["additionalInfo"]["key\ufffd"] == "v\ufffd"
    assert Incident.objects.get().observables.filter(kind="user_agent", value="curl/8\ufffd\ufffd \U0001f600").exists()
    assert bytes(InboundPayload.objects.get().body) == body  # the delivery is kept as it came


def test_an_overlong_source_address_is_cut_to_the_observable_column_not_a_server_error(playbook) -> None:
    document = wire(ANONYMOUS)
    document["service"]["action"]["kubernetesApiCallAction"]["sourceIPs"] = ["9" * 600]
    report = payload_receive(source=InboundPayload.Source.WEBHOOK, body=as_bytes(document))
    assert [r.status for r in report.results] == [CREATED]
    assert Incident.objects.get().observables.filter(kind="ip", value="9" * 500).exists()
