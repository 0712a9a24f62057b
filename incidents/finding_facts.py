"""The facts the seed's Part 1 asks a responder to dig for, read from a stored finding.

Reads the wire (camelCase) spelling kept in `Finding.raw`. Every level may be missing or null
(DOMAIN.md §1.1), so each lookup falls back to an empty value instead of raising.
"""

from dataclasses import dataclass, field
from typing import Any


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


@dataclass(frozen=True)
class FindingFacts:
    cluster: str = ""
    cluster_arn: str = ""
    account: str = ""
    region: str = ""
    user: str = ""
    groups: list[str] = field(default_factory=list)
    verb: str = ""
    request_uri: str = ""
    status_code: int | None = None
    source_ips: list[str] = field(default_factory=list)
    asn: str = ""
    asn_org: str = ""
    country: str = ""
    city: str = ""
    user_agent: str = ""
    workload: str = ""


def finding_facts(raw: dict[str, Any]) -> FindingFacts:
    call = _dig(raw, "service", "action", "kubernetesApiCallAction") or {}
    remote = call.get("remoteIpDetails") or {}
    workload = _dig(raw, "resource", "kubernetesDetails", "kubernetesWorkloadDetails") or {}
    return FindingFacts(
        cluster=_dig(raw, "resource", "eksClusterDetails", "name") or "",
        cluster_arn=_dig(raw, "resource", "eksClusterDetails", "arn") or "",
        account=raw.get("accountId") or "",
        region=raw.get("region") or "",
        user=_dig(raw, "resource", "kubernetesDetails", "kubernetesUserDetails", "username") or "",
        groups=_dig(raw, "resource", "kubernetesDetails", "kubernetesUserDetails", "groups") or [],
        verb=call.get("verb") or "",
        request_uri=call.get("requestUri") or "",
        status_code=call.get("statusCode"),
        source_ips=call.get("sourceIPs") or [],
        asn=_dig(remote, "organization", "asn") or "",
        asn_org=_dig(remote, "organization", "asnOrg") or "",
        country=_dig(remote, "country", "countryName") or "",
        city=_dig(remote, "city", "cityName") or "",
        user_agent=call.get("userAgent") or "",
        workload="/".join(filter(None, [workload.get("namespace"), workload.get("name")])),
    )
