"""Fuzz the GuardDuty normaliser: whatever the bytes, `documents_from_bytes` + `parse_finding` either
return findings or raise FindingParseError (which the ingest turns into a quarantine row). Anything
else escaping would fail a whole payload instead of quarantining one document.

Half the inputs are raw bytes (JSON, gzip, JSON lines …, mutated by libFuzzer from real fixtures);
the other half take a real finding and overwrite fields at fuzzer-chosen paths with fuzzer-chosen
values of any JSON type, which reaches the field-level checks that random bytes rarely do.
"""

import copy
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, django_setup, fuzz, instrumented  # noqa: E402

django_setup()  # puts the project root on sys.path
from tests.fixtures import document_places  # noqa: E402

guardduty = instrumented("integrations.aws.guardduty")
FindingParseError, documents_from_bytes, parse_finding = (
    guardduty.FindingParseError,
    guardduty.documents_from_bytes,
    guardduty.parse_finding,
)

FIXTURES = ROOT / "tests" / "fixtures" / "guardduty"
TEMPLATES = [json.loads(path.read_text()) for path in sorted((FIXTURES / "wire").glob("*.json"))]
TEMPLATES += [json.loads(path.read_text()) for path in sorted((FIXTURES / "boto3").glob("*.json"))]


PATHS = [[(), *document_places(template)] for template in TEMPLATES]  # () replaces the whole document


def _value(data: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    kind = data.ConsumeIntInRange(0, 8 if depth < 2 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return data.ConsumeBool()
    if kind == 2:
        return data.ConsumeInt(8)
    if kind == 3:
        return data.ConsumeFloat()  # NaN and ±Infinity too: json.dumps writes them, jsonb refuses them
    if kind == 4:
        return data.ConsumeUnicodeNoSurrogates(data.ConsumeIntInRange(0, 40))
    if kind == 5:
        return data.ConsumeUnicode(data.ConsumeIntInRange(0, 40))  # NUL and lone surrogates too
    if kind == 6:
        return data.PickValueInList(
            ["2024-05-02T16:27:05.118Z", "2024-13-45T99:00:00Z", "0", "", "1e400", "-1", "7" * 4400, "[" * 1200,
             '{"sample": true}', "NaN"]
        )  # fmt: skip
    if kind == 7:
        return [_value(data, depth + 1) for _ in range(data.ConsumeIntInRange(0, 3))]
    return {data.ConsumeUnicodeNoSurrogates(8): _value(data, depth + 1) for _ in range(data.ConsumeIntInRange(0, 3))}


def _has(target: Any, step: Any) -> bool:
    if isinstance(target, dict):
        return step in target
    return isinstance(target, list) and isinstance(step, int) and step < len(target)


def _set(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    """The document with the value at path; unchanged when an earlier mutation removed the path."""
    if not path:
        return value
    target = document
    for step in path[:-1]:
        if not _has(target, step):
            return document
        target = target[step]
    if _has(target, path[-1]):
        target[path[-1]] = value
    return document


def _check(body: bytes) -> None:
    try:
        documents = documents_from_bytes(body)
    except FindingParseError:
        return
    for document in documents:
        try:
            finding = parse_finding(document)
        except FindingParseError:
            continue
        # A finding that parsed has its key, as the ingest's unique constraint needs.
        assert finding.account_id and finding.region and finding.finding_id and finding.finding_type
        # And its document can be stored: jsonb takes strict JSON (no NaN) in UTF-8 (no lone surrogate),
        # and no NUL anywhere, in a key or a value.
        json.dumps(finding.raw, allow_nan=False, ensure_ascii=False).encode("utf-8")
        assert not any("\x00" in text for text in _texts(finding.raw))


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _texts(item)


def test_one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    if data.ConsumeBool():
        _check(data.ConsumeBytes(data.remaining_bytes()))
        return
    index = data.ConsumeIntInRange(0, len(TEMPLATES) - 1)
    document = copy.deepcopy(TEMPLATES[index])
    for _ in range(data.ConsumeIntInRange(1, 4)):
        document = _set(document, data.PickValueInList(PATHS[index]), _value(data))
        if not isinstance(document, dict):
            break
    _check(json.dumps(document, default=str).encode())


if __name__ == "__main__":
    seeds = [path.read_bytes() for path in sorted(FIXTURES.rglob("*")) if path.is_file() and path.suffix != ".py"]
    # Shapes that broke the parser before (RecursionError, int-digit ValueError): kept as regression seeds.
    seeds += [b"[" * 1200, b'{"a":' * 1200, b"[" + b"7" * 4400 + b"]", b'{"Type": "Notification", "Message": "[[[["}']
    fuzz(test_one_input, seeds=seeds, name="guardduty")
