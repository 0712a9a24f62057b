"""docs/examples/webhook_receiver.py (the documented ten-line verification) against real deliveries:
it accepts them, refuses a tampered body, an old timestamp and a wrong secret, and spots a replay."""

import http.client
import importlib.util
import json
import threading
import time
from http.server import HTTPServer
from pathlib import Path

import pytest

from integrations import signing, webhooks
from integrations.models import WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "webhook_receiver.py"


@pytest.fixture
def example(settings):
    settings.WATCHPOST_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = HTTPServer(("127.0.0.1", 0), module.Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    module.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield module
    server.shutdown()
    server.server_close()


def _delivery(example) -> WebhookDelivery:
    subscription = WebhookSubscription.objects.create(name="jira", url=example.url, event_types=["note.added"])
    example.SECRET = subscription.secret.encode()
    body = {"id": "x", "type": "note.added", "data": {"incident": {"reference": "WP-1", "source": "jira",
            "external_ref": "SEC-1", "phase": "new"}, "actor": "responder"}}  # fmt: skip
    return WebhookDelivery.objects.create(
        uuid="00000000-0000-4000-8000-000000000003", subscription=subscription, event_type="note.added",
        body=json.dumps(body),
    )  # fmt: skip


def _post(url: str, body: bytes, signature: str) -> int:
    port = int(url.split(":")[2].split("/")[0])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"X-Watchpost-Signature": signature, "X-Watchpost-Delivery": "00000000-0000-4000-8000-00000000ffff"}
    connection.request("POST", "/hook", body=body, headers=headers)
    status = connection.getresponse().status
    connection.close()
    return status


def test_the_documented_receiver_accepts_a_delivery_and_spots_its_replay(example) -> None:
    delivery = _delivery(example)
    webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.last_status_code == 204
    # a replay (same delivery id, fresh signature) is acknowledged but not processed again
    webhooks.webhook_delivery_replay(delivery_id=delivery.pk)
    webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.last_status_code == 200 and len(example.seen) == 1


def test_the_documented_verify_refuses_tampering_old_timestamps_and_other_secrets(example) -> None:
    secret = _delivery(example).subscription.secret
    body = b'{"type":"note.added"}'
    good = signing.sign(secret=secret, body=body)
    assert example.verify(good, body, secret.encode())
    assert not example.verify(good, body + b" ", secret.encode())
    assert not example.verify(
        signing.sign(secret=secret, body=body, timestamp=int(time.time()) - 301), body, secret.encode()
    )
    assert not example.verify(good, body, b"another secret")
    assert _post(example.url, body + b" ", good) == 401
