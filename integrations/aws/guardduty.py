"""GuardDuty findings: one parser for every spelling a finding arrives in.

A finding comes as the wire document (camelCase: EventBridge `detail`, S3 export, the REST body of
GetFindings) or as boto3 / CLI output (PascalCase, datetimes). Both are described by botocore's own
service model, so that model does the work: it validates field types, renames members between
spellings and turns the wire document into the boto3 view we read (botocore's parser walk, done here for
the plain members we read, by the model's names and types; the tests compare it with the parser's own).
Nothing here keeps a hand-written map of field names.

Containers accepted: one finding, an EventBridge event, an SNS notification wrapping either,
`{"Findings": [...]}` (CLI), `{"findings": [...]}` (API body), a JSON list, JSON lines; gzipped or not.

IAM permissions used by the poller (`finding_pages`, `findings_get`): guardduty:ListDetectors,
guardduty:ListFindings, guardduty:GetFindings, plus sts:AssumeRole (with ExternalId) per account.
"""

import gzip
import io
import json
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import botocore.session
from botocore.model import Shape, StructureShape
from botocore.parsers import create_parser
from botocore.utils import is_json_value_header

from integrations.errors import PermanentIntegrationError
from integrations.storable import UNSTORABLE_ESCAPE, storable

_MODEL = botocore.session.get_session().get_service_model("guardduty")
_GET_FINDINGS = _MODEL.operation_model("GetFindings")
FINDING_SHAPE: StructureShape = _GET_FINDINGS.output_shape.members["Findings"].member  # type: ignore[attr-defined]
# The fields a finding cannot be stored without (wire names): the key, and what orders versions.
KEY_FIELDS = ("id", "accountId", "region", "type", "updatedAt")
MAX_PAYLOAD_BYTES = 20 * 1024 * 1024  # after decompression; a 2 KB finding × 10k still fits


class FindingParseError(PermanentIntegrationError):
    """A payload or document that is not a usable finding; the message says what is wrong."""


@dataclass(frozen=True)
class NormalizedFinding:
    account_id: str
    region: str
    finding_id: str
    finding_type: str
    severity: float
    updated_at: datetime
    count: int
    title: str = ""
    description: str = ""
    created_at: datetime | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    is_sample: bool = False
    archived: bool = False
    cluster_name: str = ""
    cluster_arn: str = ""
    vpc_id: str = ""
    k8s_user: str = ""
    k8s_groups: tuple[str, ...] = ()
    impersonated_user: str = ""
    source_ips: tuple[str, ...] = ()
    asn: str = ""
    asn_org: str = ""
    isp: str = ""
    org: str = ""
    country: str = ""
    city: str = ""
    user_agent: str = ""
    verb: str = ""
    request_uri: str = ""
    resource: str = ""
    namespace: str = ""
    status_code: int | None = None
    workload_name: str = ""
    workload_namespace: str = ""
    workload_type: str = ""
    service_account: str = ""
    # The wire (camelCase) document, as stored: the one spelling we keep.
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


# --- bytes → documents ------------------------------------------------------------------------------


def _decompress(body: bytes) -> bytes:
    if body[:2] != b"\x1f\x8b":
        return body
    try:
        # A bounded read: a small gzip can expand to gigabytes.
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
            data = stream.read(MAX_PAYLOAD_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise FindingParseError(f"the gzip stream is damaged or truncated ({exc})") from exc
    if len(data) > MAX_PAYLOAD_BYTES:
        raise FindingParseError(f"the payload expands beyond {MAX_PAYLOAD_BYTES // 1024 // 1024} MiB")
    return data


def _decode_json(text: str) -> Any:
    """The JSON value (or JSON lines) of a text, made storable.

    GuardDuty copies text an attacker chooses into a finding (a user agent, a request URI, a user
    name): refusing a finding with a NUL or a lone surrogate in it would let the attacker keep their
    own activity out of the case list, so those characters become U+FFFD (integrations.storable). The
    payload row keeps the bytes as received. Only a text that spells one of them is walked.
    """
    value = _decode_document_or_lines(text)
    return storable(value) if UNSTORABLE_ESCAPE.search(text) else value


def _decode_document_or_lines(text: str) -> Any:
    try:
        return _loads(text)
    except json.JSONDecodeError as first:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) < 2 or not _parses(lines[0]):
            # Not JSON lines (whose first line is a document by itself): report where the JSON breaks.
            raise FindingParseError(f"invalid JSON: {first.msg} (line {first.lineno}, column {first.colno})") from first
        documents = []
        for number, line in enumerate(lines, start=1):
            try:
                documents.append(_loads(line))
            except json.JSONDecodeError as exc:
                raise FindingParseError(f"invalid JSON on line {number}: {exc.msg} (column {exc.colno})") from exc
        return documents


def _parses(line: str) -> bool:
    try:
        _loads(line)
    except json.JSONDecodeError:
        return False
    return True


def _loads(text: str) -> Any:
    """`json.loads` without what Python accepts and JSON (RFC 8259) does not: NaN, ±Infinity, and a
    number too large for a float (Python reads 1e400 as infinity). PostgreSQL's jsonb refuses all three,
    so a document holding one failed at its INSERT, after parsing, as a server error."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


def _no_constant(name: str) -> Any:
    raise FindingParseError(f"invalid JSON: {name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise FindingParseError(f"invalid JSON: the number {text[:40]} is too large")
    return value


def documents_from_bytes(body: bytes) -> list[Any]:
    """Every finding document in a payload (still unvalidated), in order."""
    data = _decompress(body)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise FindingParseError(f"the payload is larger than {MAX_PAYLOAD_BYTES // 1024 // 1024} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FindingParseError(f"the payload is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not text.strip():
        raise FindingParseError("the payload is empty")
    try:
        documents = list(_unwrap(_decode_json(text), depth=0))
    except RecursionError as exc:  # "[[[[…" beyond the decoder's stack (fuzzing; now a seed of fuzz_guardduty.py)
        raise FindingParseError("the JSON is nested too deeply") from exc
    except ValueError as exc:  # JSON the decoder accepts but Python refuses, e.g. an integer over 4300 digits
        raise FindingParseError(f"invalid JSON: {exc}") from exc
    if not documents:
        raise FindingParseError("the payload holds no findings")
    return documents


def _unwrap(value: Any, *, depth: int) -> Iterator[Any]:
    if depth > 3:
        raise FindingParseError("findings are nested too deeply")
    if isinstance(value, list):
        for item in value:
            yield from _unwrap(item, depth=depth + 1)
    elif not isinstance(value, dict):
        yield value  # reported as "not a finding" by the per-document check
    elif "detail-type" in value:
        if value.get("detail-type") != "GuardDuty Finding" or not isinstance(value.get("detail"), dict):
            raise FindingParseError(
                f"an EventBridge event of type {value.get('detail-type')!r}, not 'GuardDuty Finding'"
            )
        yield value["detail"]
    elif value.get("Type") == "Notification" and isinstance(value.get("Message"), str):
        yield from _unwrap(_decode_json(value["Message"]), depth=depth + 1)  # SNS
    elif isinstance(value.get("Findings"), list) and not _looks_like_finding(value):
        yield from _unwrap(value["Findings"], depth=depth + 1)
    elif isinstance(value.get("findings"), list) and not _looks_like_finding(value):
        yield from _unwrap(value["findings"], depth=depth + 1)
    else:
        yield value


def _looks_like_finding(value: dict[str, Any]) -> bool:
    return any(key in value for key in ("id", "Id", "accountId", "AccountId", "type", "Type"))


# --- spellings ---------------------------------------------------------------------------------------


def _is_boto3_spelling(document: dict[str, Any]) -> bool:
    return "Id" in document or "AccountId" in document or "UpdatedAt" in document


def _wire_name(name: str, shape: Shape) -> str:
    return str(shape.serialization.get("name", name))


def _to_wire(value: Any, shape: Shape) -> Any:
    """boto3/CLI spelling → wire spelling, walking botocore's model (names and timestamp formats)."""
    if value is None:
        return None
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        return {
            (_wire_name(k, members[k]) if k in members else k): (_to_wire(v, members[k]) if k in members else v)
            for k, v in value.items()
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [_to_wire(item, shape.member) for item in value]  # type: ignore[attr-defined]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _to_wire(v, shape.value) for k, v in value.items()}  # type: ignore[attr-defined]
    if shape.type_name == "timestamp":
        # On the wire GuardDuty's timestamp members (e.g. eksClusterDetails.createdAt) are epoch seconds.
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return value  # left for the type check to report
    return value


# JSON types each botocore shape type accepts on the wire (also used by the fixtures' drift check).
WIRE_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "double": (int, float),
    "float": (int, float),
    "boolean": (bool,),
    "timestamp": (int, float, str),
}


# The AWS models' integer is 32 bits and long 64 (Smithy): a larger number is no GuardDuty value, and
# PostgreSQL refused one in an integer column (the finding's count) at INSERT, as a server error.
INTEGER_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


# Structure shape name → {wire name: member shape}, built once per shape: the type check looks up the
# keys a document has, rather than walking every member the model knows (most are absent).
_WIRE_MEMBERS: dict[str, dict[str, Shape]] = {}


def _wire_members(shape: Shape) -> dict[str, Shape]:
    members = _WIRE_MEMBERS.get(shape.name)
    if members is None:
        items = shape.members.items()  # type: ignore[attr-defined]
        members = _WIRE_MEMBERS[shape.name] = {_wire_name(name, member): member for name, member in items}
    return members


def _type_errors(value: Any, shape: Shape, path: str, errors: list[str]) -> None:
    """Wire-document type check against the model, naming the field (`service.count`) in `errors`.

    Appends rather than yields: it runs on every node of every ingested finding (P1, P3).
    """
    if value is None:
        return
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            errors.append(f"{path or 'the finding'}: expected an object, got {type(value).__name__}")
            return
        members = _wire_members(shape)
        for wire, item in value.items():
            member = members.get(wire)
            if member is not None:
                _type_errors(item, member, f"{path}.{wire}" if path else wire, errors)
    elif kind == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _type_errors(item, shape.member, f"{path}[{i}]", errors)  # type: ignore[attr-defined]
    elif kind == "map":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected an object, got {type(value).__name__}")
    elif kind in WIRE_TYPES and (problem := _scalar_problem(kind, value)):
        errors.append(f"{path}: {problem}")


def _scalar_problem(kind: str, value: Any) -> str | None:
    """What is wrong with a scalar (not None) of one of the WIRE_TYPES kinds, or None: the rule both
    checks apply (`_type_errors` and the quick `_check`)."""
    if not isinstance(value, WIRE_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
        return f"expected {kind}, got {json.dumps(value)[:40]}"
    bounds = INTEGER_RANGES.get(kind)
    if bounds is not None and not bounds[0] <= cast(int, value) <= bounds[1]:  # (integer kinds take ints only)
        return f"{str(value)[:40]} is out of range for {kind}"
    if isinstance(value, float) and not math.isfinite(value):  # from boto3's spelling (JSON has none)
        return f"expected a finite {kind}, got {value}"
    return None


Check = Callable[[Any], bool]
# Shape name → its check (`_check`), made once per shape.
_CHECKS: dict[str, Check] = {}


def _check(shape: Shape) -> Check:
    """Whether a value passes `_type_errors` without an error, said without naming each node on the way.

    Every ingested finding goes through the type check (~300 values), and building each node's path
    was most of its cost, ~0.14 ms a finding (P3): a document is checked here first, and only one that
    fails goes through `_type_errors`, for the messages. The two agree on every document
    (tests/ingestion/test_type_check.py).
    """
    check = _CHECKS.get(shape.name)
    if check is None:
        check = _CHECKS[shape.name] = _check_made(shape)
    return check


def _check_made(shape: Shape) -> Check:
    kind = shape.type_name
    if kind == "structure":
        return _structure_check(shape)
    if kind == "list":
        return _list_check(shape)
    if kind == "map":
        return lambda value: value is None or isinstance(value, dict)
    if kind in WIRE_TYPES:
        return _scalar_check(kind)
    return lambda value: True  # (a type the wire check leaves alone)


def _structure_check(shape: Shape) -> Check:
    # Filled on first use (a shape may contain itself). Most members are strings: checked here, not
    # by a call each.
    members: dict[str, Check] = {}
    strings: set[str] = set()

    def check(value: Any) -> bool:
        if value is None:
            return True
        if not isinstance(value, dict):
            return False
        if not members:
            wire_members = _wire_members(shape)
            strings.update(wire for wire, member in wire_members.items() if member.type_name == "string")
            members.update({wire: _check(member) for wire, member in wire_members.items()})
        for wire, item in value.items():
            if wire in strings:
                if item is not None and not isinstance(item, str):
                    return False
                continue
            member = members.get(wire)
            if member is not None and not member(item):
                return False
        return True

    return check


def _list_check(shape: Shape) -> Check:
    def check(value: Any) -> bool:
        if value is None:
            return True
        if not isinstance(value, list):
            return False
        member = _check(shape.member)  # type: ignore[attr-defined]
        return all(member(item) for item in value)

    return check


def _scalar_check(kind: str) -> Check:
    return lambda value: value is None or _scalar_problem(kind, value) is None


def to_wire_document(document: Any) -> dict[str, Any]:
    """Check a document and return it in the wire spelling, or raise FindingParseError saying why."""
    if not isinstance(document, dict):
        raise FindingParseError(f"not a finding: a JSON {type(document).__name__}, expected an object")
    if _is_boto3_spelling(document):
        document = _to_wire(document, FINDING_SHAPE)
    missing = [name for name in KEY_FIELDS if not document.get(name)]
    if len(missing) == len(KEY_FIELDS):
        raise FindingParseError("not a finding: none of id, accountId, region, type, updatedAt is present")
    if missing:
        raise FindingParseError(f"missing {', '.join(missing)}")
    if _check(FINDING_SHAPE)(document):
        return document
    errors: list[str] = []
    _type_errors(document, FINDING_SHAPE, "", errors)  # what is wrong, and where (it has the last word)
    if errors:
        raise FindingParseError("wrong type: " + "; ".join(errors[:5]))
    return document


# --- wire → NormalizedFinding ------------------------------------------------------------------------


# What NormalizedFinding reads, in the boto3 spelling (True: the whole value). Only these members go
# through botocore's parser: a finding carries ~300 values and we read ~40, and parsing the rest was
# most of the ingest's CPU time (P1). Wire names still come from the model, never from a second map.
READ_FIELDS: dict[str, Any] = {
    **dict.fromkeys(("AccountId", "Region", "Id", "Type", "Severity", "UpdatedAt", "CreatedAt"), True),
    **dict.fromkeys(("Title", "Description"), True),
    "Service": {
        **dict.fromkeys(("Count", "EventFirstSeen", "EventLastSeen", "Archived"), True),
        "Action": {
            "KubernetesApiCallAction": {
                **dict.fromkeys(("SourceIps", "UserAgent", "Verb", "RequestUri", "Resource", "Namespace"), True),
                "StatusCode": True,
                "RemoteIpDetails": {
                    "Organization": dict.fromkeys(("Asn", "AsnOrg", "Isp", "Org"), True),
                    "Country": {"CountryName": True},
                    "City": {"CityName": True},
                },
            }
        },
    },
    "Resource": {
        "EksClusterDetails": dict.fromkeys(("Name", "Arn", "VpcId"), True),
        "KubernetesDetails": {
            "KubernetesUserDetails": {"Username": True, "Groups": True, "ImpersonatedUser": {"Username": True}},
            "KubernetesWorkloadDetails": dict.fromkeys(("Name", "Namespace", "Type", "ServiceAccountName"), True),
        },
    },
}


@dataclass(frozen=True)
class _Read:
    """One member NormalizedFinding reads: its wire and boto3 names, its shape, and what of it (None: all)."""

    wire: str
    name: str
    shape: Shape
    plan: tuple["_Read", ...] | None
    as_is: bool  # a plain string, which botocore's walk hands back as it is: no call per value


def _read_plan(shape: Shape, fields: dict[str, Any]) -> tuple[_Read, ...]:
    """READ_FIELDS turned into the model's members, once."""
    plan = []
    for name, sub in fields.items():
        member = shape.members.get(name)  # type: ignore[attr-defined]
        if member is not None:
            as_is = sub is True and member.type_name == "string" and not is_json_value_header(member)
            sub_plan = None if sub is True else _read_plan(member, sub)
            plan.append(_Read(_wire_name(name, member), name, member, sub_plan, as_is))
    return tuple(plan)


_READ_PLAN = _read_plan(FINDING_SHAPE, READ_FIELDS)

# One parser for the process: botocore's parsers keep no state between calls.
_PARSER = create_parser("rest-json")


def _boto3_view(wire: dict[str, Any], *, whole: bool = False) -> dict[str, Any]:
    """The boto3 view of a checked wire document: what botocore's parser makes of it.

    Only READ_FIELDS are read. `whole` takes botocore's public route with every member (the tests
    compare the two).
    """
    if not whole:
        return _read(wire, FINDING_SHAPE, _READ_PLAN)  # type: ignore[no-any-return]
    response = {"status_code": 200, "headers": {}, "body": json.dumps({"findings": [wire]}).encode()}
    parsed = _PARSER.parse(response, _GET_FINDINGS.output_shape)
    return parsed["Findings"][0]  # type: ignore[no-any-return]


def _read(value: Any, shape: Shape, plan: tuple[_Read, ...] | None) -> Any:
    """botocore's rest-json shape walk (`_parse_shape`) over the plan's members only.

    The walk itself, for the shapes READ_FIELDS names: a structure keeps its members that are not null,
    renamed; a list keeps its nulls; a string is itself, an integer `int`, a float `float`. Any other
    shape, and a value of the wrong kind, goes to botocore's own handler. botocore's structure handler
    looks at every member the model knows (the finding's, its service's, its resource's: most absent),
    and ran at ~0.3 ms per finding, as much as the rest of the parse (P1, P3).
    """
    kind = shape.type_name
    if plan is not None:
        if not isinstance(value, dict) or shape.is_tagged_union:  # type: ignore[attr-defined]
            return _PARSER._parse_shape(shape, value)  # (None stays None; the rest, as botocore reads it)
        return {
            read.name: item if read.as_is else _read(item, read.shape, read.plan)
            for read in plan
            if (item := value.get(read.wire)) is not None
        }
    if kind == "string" and not is_json_value_header(shape):
        return value
    if kind in ("integer", "long") and isinstance(value, int):
        return int(value)
    if kind in ("float", "double") and isinstance(value, int | float):
        return float(value)
    if kind == "list" and isinstance(value, list):
        member = shape.member  # type: ignore[attr-defined]
        return [None if item is None else _read(item, member, None) for item in value]
    return _PARSER._parse_shape(shape, value)


# A time near the end of Python's calendar (9999-12-31) is no finding's, and the arithmetic done on a
# finding's times (its incident's deadline is hours after it was first seen) overflowed as a server error.
LATEST_TIME = datetime(9000, 1, 1, tzinfo=UTC)


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FindingParseError(f"not an ISO-8601 time: {value!r}") from exc
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment >= LATEST_TIME:
        raise FindingParseError(f"not a time a finding can hold: {value!r} (the year 9000 or later)")
    return moment


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _is_sample(wire: dict[str, Any]) -> bool:
    # Sample findings carry additionalInfo.sample (EventBridge/export) or {"sample":true} in its value.
    info = _dig(wire, "service", "additionalInfo") or {}
    if info.get("sample") is True:
        return True
    try:
        value = json.loads(info.get("value") or "{}")
    except (TypeError, ValueError, RecursionError):  # not JSON, an over-long integer, or nested too deep
        return False
    return isinstance(value, dict) and value.get("sample") is True


def _texts(values: list[str | None] | None) -> tuple[str, ...]:
    """A list of strings without its nulls and empty strings (the type check lets a null through)."""
    return tuple(value for value in values or () if value)


def _count(value: int | None) -> int:
    """How many times GuardDuty saw the activity: at least once (a missing or zero count reads as 1)."""
    if value is not None and value < 0:
        raise FindingParseError(f"service.count: {value} is negative")
    return int(value or 1)


def parse_finding(document: Any, *, whole: bool = False) -> NormalizedFinding:
    """One document in either spelling → NormalizedFinding (raises FindingParseError).

    `whole` parses every member rather than only READ_FIELDS (the tests compare the two).
    """
    wire = to_wire_document(document)
    try:
        view = _boto3_view(wire, whole=whole)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # botocore met a value it cannot read
        raise FindingParseError(f"a field cannot be read: {exc}") from exc
    updated_at = _time(view["UpdatedAt"])
    assert updated_at is not None  # KEY_FIELDS made sure
    resource, service = view.get("Resource") or {}, view.get("Service") or {}
    cluster = resource.get("EksClusterDetails") or {}
    k8s = resource.get("KubernetesDetails") or {}
    user = k8s.get("KubernetesUserDetails") or {}
    workload = k8s.get("KubernetesWorkloadDetails") or {}
    call = _dig(service, "Action", "KubernetesApiCallAction") or {}
    remote = call.get("RemoteIpDetails") or {}
    organization = remote.get("Organization") or {}
    return NormalizedFinding(
        account_id=view["AccountId"],
        region=view["Region"],
        finding_id=view["Id"],
        finding_type=view["Type"],
        severity=float(view.get("Severity") or 0),
        updated_at=updated_at,
        count=_count(service.get("Count")),
        title=view.get("Title") or "",
        description=view.get("Description") or "",
        created_at=_time(view.get("CreatedAt")),
        first_seen=_time(service.get("EventFirstSeen")),
        last_seen=_time(service.get("EventLastSeen")),
        is_sample=_is_sample(wire),
        archived=bool(service.get("Archived")),
        cluster_name=cluster.get("Name") or "",
        cluster_arn=cluster.get("Arn") or "",
        vpc_id=cluster.get("VpcId") or "",
        k8s_user=user.get("Username") or "",
        k8s_groups=_texts(user.get("Groups")),
        impersonated_user=_dig(user, "ImpersonatedUser", "Username") or "",
        source_ips=_texts(call.get("SourceIps")),
        asn=organization.get("Asn") or "",
        asn_org=organization.get("AsnOrg") or "",
        isp=organization.get("Isp") or "",
        org=organization.get("Org") or "",
        country=_dig(remote, "Country", "CountryName") or "",
        city=_dig(remote, "City", "CityName") or "",
        user_agent=call.get("UserAgent") or "",
        verb=call.get("Verb") or "",
        request_uri=call.get("RequestUri") or "",
        resource=call.get("Resource") or "",
        namespace=call.get("Namespace") or "",
        status_code=call.get("StatusCode"),
        workload_name=workload.get("Name") or "",
        workload_namespace=workload.get("Namespace") or "",
        workload_type=workload.get("Type") or "",
        service_account=workload.get("ServiceAccountName") or "",
        raw=wire,
    )
