"""One HTTP POST to an approved webhook destination, connected by address (no second DNS lookup).

Redirects are not followed (a 3xx could point inside the network) and count as permanent failures.
2xx: delivered. 408, 425, 429 and 5xx, timeouts and connection errors: TransientIntegrationError
(retry with backoff). Any other answer: PermanentIntegrationError (a 4xx is not retried).
"""

import time
from dataclasses import dataclass

import urllib3

from integrations.errors import PermanentIntegrationError, TransientIntegrationError
from integrations.ticketing.ssrf import Destination

RETRYABLE = frozenset({408, 425, 429})
EXCERPT = 500


@dataclass(frozen=True)
class HttpResult:
    status: int
    excerpt: str
    elapsed_ms: int


class HttpStatusError(PermanentIntegrationError):
    def __init__(self, message: str, result: HttpResult) -> None:
        super().__init__(message)
        self.result = result


class HttpTransientError(TransientIntegrationError):
    def __init__(self, message: str, result: HttpResult | None = None) -> None:
        super().__init__(message)
        self.result = result


def _pool(destination: Destination, timeout: float, ca_bundle: str) -> urllib3.HTTPConnectionPool:
    kwargs = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False, "maxsize": 1}
    if destination.scheme == "https":
        # Connected by address, verified by name: SNI and the certificate check use the URL's host.
        return urllib3.HTTPSConnectionPool(
            destination.address,
            destination.port,
            server_hostname=destination.host,
            assert_hostname=destination.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_bundle or None,
            **kwargs,  # type: ignore[arg-type]
        )
    return urllib3.HTTPConnectionPool(destination.address, destination.port, **kwargs)  # type: ignore[arg-type]


def post(
    *, destination: Destination, body: bytes, headers: dict[str, str], timeout: float, ca_bundle: str = ""
) -> HttpResult:
    """`ca_bundle`: a PEM file of the CAs to trust instead of the system's (an on-premises CA)."""
    default_port = 443 if destination.scheme == "https" else 80
    host = destination.host if destination.port == default_port else f"{destination.host}:{destination.port}"
    started = time.monotonic()
    try:
        with _pool(destination, timeout, ca_bundle) as pool:
            response = pool.urlopen(
                "POST",
                destination.target,
                body=body,
                headers={**headers, "Host": host},
                redirect=False,
                preload_content=False,
            )
            excerpt = response.read(EXCERPT, decode_content=False).decode("utf-8", "replace")
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise HttpTransientError(f"{type(exc).__name__}: {exc}") from exc
    result = HttpResult(status=response.status, excerpt=excerpt, elapsed_ms=int((time.monotonic() - started) * 1000))
    if 200 <= response.status < 300:
        return result
    if response.status >= 500 or response.status in RETRYABLE:
        raise HttpTransientError(f"HTTP {response.status}", result)
    raise HttpStatusError(f"HTTP {response.status}", result)
