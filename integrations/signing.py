"""HMAC-SHA256 signatures for webhooks, both directions: `t=<unix time>,v1=<hex>` over "<t>.<body>".

The timestamp inside the signed text bounds replays to the tolerance window; several secrets may be
valid at once so a secret can be rotated without downtime.
"""

import hashlib
import hmac
import time
from dataclasses import dataclass

TOLERANCE_SECONDS = 300
HEADER = "X-Watchpost-Signature"


class SignatureError(Exception):
    """Why a signature was refused; safe to tell the sender."""


@dataclass(frozen=True)
class ParsedSignature:
    timestamp: int
    digests: tuple[str, ...]


def sign(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    moment = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{moment}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={moment},v1={digest}"


def parse(header: str) -> ParsedSignature:
    parts = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [value for key, value in parts if key.strip() == "t"]
    digests = tuple(value.strip() for key, value in parts if key.strip() == "v1")
    if len(timestamps) != 1 or not timestamps[0].strip().isdigit() or not digests:
        raise SignatureError(f"malformed {HEADER} header; expected t=<unix time>,v1=<hex HMAC-SHA256>")
    return ParsedSignature(timestamp=int(timestamps[0]), digests=digests)


def verify(*, header: str, body: bytes, secrets: list[str], now: float | None = None) -> ParsedSignature:
    """Raise SignatureError unless one v1 digest matches one secret within the time window."""
    if not secrets:
        raise SignatureError("signed delivery is not configured on this server")
    signature = parse(header)
    moment = time.time() if now is None else now
    if abs(moment - signature.timestamp) > TOLERANCE_SECONDS:
        raise SignatureError(f"timestamp outside the ±{TOLERANCE_SECONDS} s window; check the sender's clock")
    for secret in secrets:
        expected = sign(secret=secret, body=body, timestamp=signature.timestamp).split("v1=", 1)[1]
        if any(hmac.compare_digest(expected, digest) for digest in signature.digests):
            return signature
    raise SignatureError("signature does not match the body")
