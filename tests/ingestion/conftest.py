"""Helpers for the ingestion tests: fixture documents by name, and copies with changed fields."""

import copy
import json
from typing import Any

from tests.fixtures import GUARDDUTY, load_guardduty

WIRE_NAMES = sorted(path.stem for path in (GUARDDUTY / "wire").glob("*.json"))
ANONYMOUS = "Discovery_Kubernetes_SuccessfulAnonymousAccess"  # the DOMAIN.md §1.4 example, = versions/v2
PRIVATE_IP = "Execution_Kubernetes_ExecInKubeSystemPod"


def wire(name: str) -> dict[str, Any]:
    return load_guardduty(f"wire/{name}.json")  # type: ignore[no-any-return]


def version(number: int) -> dict[str, Any]:
    return load_guardduty(f"versions/v{number}.json")  # type: ignore[no-any-return]


def variant(document: dict[str, Any], *, count: int | None = None, **top: Any) -> dict[str, Any]:
    """A deep copy with top-level fields replaced (`id=…`, `type=…`) and optionally `service.count`."""
    changed = copy.deepcopy(document) | top
    if count is not None:
        changed["service"]["count"] = count
    return changed


def as_bytes(*documents: Any) -> bytes:
    """One document as JSON, several as a JSON list."""
    return json.dumps(documents[0] if len(documents) == 1 else list(documents)).encode()
