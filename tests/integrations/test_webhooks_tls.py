"""HTTPS deliveries: connected to the address the SSRF guard approved, verified against the URL's name."""

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from integrations import webhooks
from integrations.models import WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def tls_receiver(tmp_path, settings) -> Iterator[tuple[int, list[str]]]:
    # given: a private CA, a certificate for tickets.example, a TLS receiver on loopback
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    settings.WATCHPOST_WEBHOOK_CA_BUNDLE = str(ca_file)
    settings.WATCHPOST_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hosts.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("tickets.example").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], hosts
    server.shutdown()
    server.server_close()


def _attempt(url: str, monkeypatch) -> WebhookDelivery:
    monkeypatch.setattr(webhooks, "resolver", lambda host, port: ["127.0.0.1"])
    subscription = WebhookSubscription.objects.create(name=url, url=url, event_types=["note.added"])
    delivery = WebhookDelivery.objects.create(
        uuid="00000000-0000-4000-8000-000000000004", subscription=subscription, event_type="note.added", body="{}"
    )
    webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


def test_https_delivery_verifies_the_certificate_of_the_urls_host(tls_receiver, monkeypatch) -> None:
    port, hosts = tls_receiver
    delivery = _attempt(f"https://tickets.example:{port}/hook", monkeypatch)
    assert delivery.status == "delivered" and hosts == [f"tickets.example:{port}"]


def test_a_certificate_for_another_name_is_not_trusted(tls_receiver, monkeypatch) -> None:
    port, hosts = tls_receiver
    delivery = _attempt(f"https://jira.example:{port}/hook", monkeypatch)
    assert delivery.status == "pending" and "doesn't match 'tickets.example'" in delivery.last_error and hosts == []
