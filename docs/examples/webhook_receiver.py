"""A webhook receiver for trying Watchpost's outbound events: verifies each delivery and prints it.

    WATCHPOST_WEBHOOK_SECRET=<secret printed by create_webhook_subscription> python docs/examples/webhook_receiver.py

Standard library only. In production this is your Jira automation / ServiceNow scripted REST endpoint.
"""

import hashlib
import hmac
import json
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ.get("WATCHPOST_WEBHOOK_SECRET", "").encode()
seen: set[str] = set()  # delivery ids already processed (replays)


def verify(header: str, body: bytes, secret: bytes, tolerance: int = 300) -> bool:
    fields = [item.split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [value for key, value in fields if key == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit() or abs(time.time() - int(timestamps[0])) > tolerance:
        return False
    expected = hmac.new(secret, timestamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for key, value in fields if key == "v1")


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not verify(self.headers.get("X-Watchpost-Signature", ""), body, SECRET):
            self.send_response(401)
        elif self.headers["X-Watchpost-Delivery"] in seen:
            self.send_response(200)  # a replay of something already handled: acknowledge, do nothing
        else:
            seen.add(self.headers["X-Watchpost-Delivery"])
            event = json.loads(body)
            incident = event["data"]["incident"]
            print(f"{event['type']:28} {incident['reference']} [{incident['source']} {incident['external_ref']}] "
                  f"phase={incident['phase']} by {event['data']['actor']}", flush=True)  # fmt: skip
            self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    if not SECRET:
        raise SystemExit("Set WATCHPOST_WEBHOOK_SECRET to the subscription's secret.")
    HTTPServer(("127.0.0.1", 9000), Handler).serve_forever()
