"""GuardDuty findings API, read page by page for the poller (DOMAIN.md §1.7).

IAM permissions (in the polled account's role): guardduty:ListDetectors, guardduty:ListFindings,
guardduty:GetFindings.

Findings come back in the boto3 spelling (PascalCase); `integrations.aws.guardduty` reads it.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from integrations.aws.session import CLIENT_CONFIG, aws_errors

PAGE_SIZE = 50  # ListFindings MaxResults is 1–50
GET_CHUNK = 50  # GetFindings takes at most 50 ids; botocore does not check it, so we chunk ourselves


@dataclass(frozen=True)
class FindingPage:
    """One ListFindings page, fetched: the findings (boto3 spelling) and their greatest UpdatedAt."""

    findings: list[dict[str, Any]]
    max_updated_ms: int


def guardduty_client(*, session: boto3.session.Session, region: str) -> Any:
    return session.client("guardduty", region_name=region, config=CLIENT_CONFIG)


def detectors_list(*, session: boto3.session.Session, region: str) -> list[str]:
    """The region's detector ids (one per account and region when GuardDuty is on, none when off)."""
    client = guardduty_client(session=session, region=region)
    detector_ids: list[str] = []
    with aws_errors(f"GuardDuty ListDetectors in {region}"):
        for page in client.get_paginator("list_detectors").paginate():
            detector_ids.extend(page.get("DetectorIds", []))
    return detector_ids


def updated_ms(finding: dict[str, Any]) -> int:
    """A boto3 finding's UpdatedAt (an ISO-8601 string in this API's model) in epoch milliseconds."""
    value = finding.get("UpdatedAt")
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def finding_pages(
    *, session: boto3.session.Session, region: str, detector_id: str, since_ms: int, archived: bool = False
) -> Iterator[FindingPage]:
    """Findings with updatedAt ≥ since_ms, oldest first, one page at a time; archived ones only if asked.

    A page is fetched only when the caller asks for the next one, so a caller that commits each page
    before asking for the next never has more than one page in flight.

    Without `archived` the poller sees what EventBridge publishes: GuardDuty never publishes a finding a
    suppression rule archived (DOMAIN.md §1.6), and a first backfill would otherwise open a case for every
    finding the team had deliberately silenced.
    """
    client = guardduty_client(session=session, region=region)
    where = f"detector {detector_id} in {region}"
    criteria: dict[str, Any] = {"updatedAt": {"GreaterThanOrEqual": since_ms}}
    if not archived:
        criteria["service.archived"] = {"Equals": ["false"]}
    request: dict[str, Any] = {
        "DetectorId": detector_id,
        "FindingCriteria": {"Criterion": criteria},
        "SortCriteria": {"AttributeName": "updatedAt", "OrderBy": "ASC"},
        "MaxResults": PAGE_SIZE,
    }
    while True:
        with aws_errors(f"GuardDuty ListFindings, {where}"):
            listed = client.list_findings(**request)
        ids: list[str] = listed.get("FindingIds", [])
        if ids:
            findings = _findings_get(client, detector_id=detector_id, ids=ids, where=where)
            if findings:
                yield FindingPage(findings=findings, max_updated_ms=max(updated_ms(f) for f in findings))
        token = listed.get("NextToken")
        if not token:
            return
        request["NextToken"] = token


def _findings_get(client: Any, *, detector_id: str, ids: list[str], where: str) -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = []
    for start in range(0, len(ids), GET_CHUNK):
        with aws_errors(f"GuardDuty GetFindings, {where}"):
            response = client.get_findings(DetectorId=detector_id, FindingIds=ids[start : start + GET_CHUNK])
        findings.extend(response.get("Findings", []))
    return findings
