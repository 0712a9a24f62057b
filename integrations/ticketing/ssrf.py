"""SSRF guard: resolve the webhook host first, refuse internal destinations before connecting.

Every address the name resolves to must be public (ASVS 13.2.4–13.2.5): loopback, private,
link-local (169.254.169.254, the EC2/ECS metadata service), shared (100.64.0.0/10), multicast,
reserved and the cloud metadata addresses are refused, unless an admin allow-listed the network
(WATCHPOST_WEBHOOK_ALLOWED_NETWORKS) for an on-premises ticketing system. Metadata addresses are
refused even then. The caller connects to the approved address itself, so a second DNS answer
(rebinding) cannot redirect the request.
"""

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from integrations.errors import PermanentIntegrationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Instance metadata endpoints: AWS (IPv4 and IPv6), GCP/Azure share 169.254.169.254, Alibaba, Oracle.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)


class DestinationRefusedError(PermanentIntegrationError):
    """The URL may not be contacted; nothing was sent."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    address: str  # the approved IP address to connect to
    target: str  # path and query


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DestinationRefusedError(f"cannot resolve {host}: {exc.strerror}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _internal(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _internal(address.ipv4_mapped)
    return not address.is_global or address.is_multicast or address.is_reserved or address.is_unspecified


def address_allowed(address: IPAddress, allowed_networks: Sequence[str]) -> bool:
    if address in METADATA_ADDRESSES:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in ipaddress.ip_network(net, strict=False) for net in allowed_networks):
        return True
    return not _internal(address)


def destination_check(
    url: str, *, allowed_networks: Sequence[str], resolver: Resolver = system_resolver
) -> Destination:
    """The address to connect to for `url`, or DestinationRefusedError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DestinationRefusedError(f"only http and https URLs are allowed, not {parts.scheme or 'none'!r}")
    if parts.username or parts.password:
        raise DestinationRefusedError("credentials in the URL are not allowed; use the signature to authenticate")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise DestinationRefusedError("invalid port in the URL") from exc
    host = parts.hostname
    if not host:
        raise DestinationRefusedError("the URL has no host")
    resolved = resolver(host, port)
    if not resolved:
        raise DestinationRefusedError(f"{host} resolves to no address")
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolved]
    refused = [a for a in addresses if not address_allowed(a, allowed_networks)]
    if refused:
        # One internal answer refuses the whole name: a mixed answer is how rebinding tricks start.
        raise DestinationRefusedError(
            f"{host} resolves to {refused[0]}, an internal address (loopback, private, link-local or metadata); "
            "allow-list the network in WATCHPOST_WEBHOOK_ALLOWED_NETWORKS if this is an on-premises system"
        )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(scheme=parts.scheme, host=host, port=port, address=str(addresses[0]), target=target)
