"""What the loopback AWS fakes share: a threaded HTTP server that real boto3 talks to, and a log of
every request with botocore's `amz-sdk-request: attempt=N; max=M` header (which attempt of one call)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


def sdk_attempt(header: str) -> tuple[int, int]:
    """(attempt, max attempts) from botocore's `amz-sdk-request` header; (0, 0) when absent."""
    fields = dict(part.strip().split("=", 1) for part in header.split(";") if "=" in part)
    return int(fields.get("attempt", 0)), int(fields.get("max", 0))


class LoopbackAws:
    """Subclasses answer `respond(path, headers, body)` with (status, reply, extra response headers)."""

    content_type = "application/json"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def respond(self, path: str, headers: Any, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, reply, extra = fake.respond(self.path, self.headers, body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", fake.content_type)
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        return Handler
