"""A GuardDuty findings endpoint on loopback, for tests that need real boto3 over HTTP (DOMAIN.md §4.2 option 2).

moto has no ListFindings/GetFindings. This serves the two calls the poller makes, in the REST-JSON
shapes of botocore's service model, from a fixed list of findings (wire spelling), honouring the
updatedAt ≥ filter, the ascending sort and nextToken paging. Every request is logged; a `fault`
callable can answer any request with ThrottlingException, as AWS does when a caller goes too fast.
Point boto3 at it with AWS_ENDPOINT_URL_GUARDDUTY.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.reliability.fake_aws import LoopbackAws, sdk_attempt

LIST = re.compile(r"^/detector/(?P<detector>[^/]+)/findings$")
GET = re.compile(r"^/detector/(?P<detector>[^/]+)/findings/get$")


@dataclass
class Served:
    operation: str
    body: dict[str, Any]
    status: int
    ids: list[str] = field(default_factory=list)
    # botocore's `amz-sdk-request: attempt=N; max=M` header: which attempt of one call this was.
    attempt: int = 0
    max_attempts: int = 0


class FakeGuardDuty(LoopbackAws):
    def __init__(self, findings: list[dict[str, Any]], *, fault: Callable[[int, str], bool] | None = None) -> None:
        super().__init__()
        self.findings = sorted(findings, key=lambda f: (f["updatedAt"], f["id"]))
        self.by_id = {f["id"]: f for f in self.findings}
        self.fault = fault or (lambda number, operation: False)
        self.log: list[Served] = []

    def served_ids(self) -> list[str]:
        with self.lock:
            return [i for entry in self.log if entry.status == 200 for i in entry.ids]

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], str, list[str]]:
        with self.lock:
            number = len(self.log)
        if LIST.match(path):
            operation = "ListFindings"
        elif GET.match(path):
            operation = "GetFindings"
        else:
            return 404, {"message": f"not served here: {path}"}, "", []
        if self.fault(number, operation):
            return 429, {"message": "Rate exceeded"}, "ThrottlingException", []
        if operation == "GetFindings":
            ids = [i for i in body.get("findingIds", []) if i in self.by_id]
            return 200, {"findings": [self.by_id[i] for i in ids]}, "", ids
        since = body.get("findingCriteria", {}).get("criterion", {}).get("updatedAt", {}).get("greaterThanOrEqual", 0)
        start = int(body.get("nextToken") or 0)
        size = int(body.get("maxResults") or 50)
        matching = [f for f in self.findings if _ms(f["updatedAt"]) >= since]
        page = matching[start : start + size]
        reply: dict[str, Any] = {"findingIds": [f["id"] for f in page]}
        if start + size < len(matching):
            reply["nextToken"] = str(start + size)
        return 200, reply, "", []

    def respond(self, path: str, headers: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        status, reply, error, ids = self._answer(path, body)
        operation = "GetFindings" if path.endswith("/get") else "ListFindings"
        served = Served(operation, body, status, ids, *sdk_attempt(headers.get("amz-sdk-request", "")))
        with self.lock:
            self.log.append(served)
        return status, reply, {"x-amzn-ErrorType": error} if error else {}


def _ms(value: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
