"""Headers of one outbound delivery. The signature is integrations.signing's `t=<unix>,v1=<hex>`:
HMAC-SHA256 over "<timestamp>.<raw body>", one v1 per secret while a rotation overlaps."""

import time

from integrations import signing

EVENT_HEADER = "X-Watchpost-Event"
DELIVERY_HEADER = "X-Watchpost-Delivery"
TIMESTAMP_HEADER = "X-Watchpost-Timestamp"


def delivery_headers(
    *, body: bytes, secrets: list[str], event_type: str, delivery_id: str, timestamp: int | None = None
) -> dict[str, str]:
    moment = int(time.time()) if timestamp is None else timestamp
    digests = [signing.sign(secret=s, body=body, timestamp=moment).split(",v1=", 1)[1] for s in secrets]
    return {
        "Content-Type": "application/json",
        "User-Agent": "Watchpost-Webhooks/1",
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: delivery_id,
        TIMESTAMP_HEADER: str(moment),
        signing.HEADER: ",".join([f"t={moment}", *(f"v1={d}" for d in digests)]),
    }
