"""moto on loopback for the AWS integration tests (queries, SQS, EKS tokens): one server per test module,
reset around each query test."""

from collections.abc import Iterator

import pytest
import requests
from moto.server import ThreadedMotoServer

from tests.worker import celery_worker  # noqa: F401 (a fixture for the worker tests: pytest finds it by name)


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    # The reset keeps state-manager transitions: a test's manual Athena progression must not leak.
    immediate = {"model_name": "athena::execution", "transition": {"progression": "immediate"}}
    requests.post(f"{moto_server}/moto-api/state-manager/set-transition", json=immediate, timeout=10)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    yield moto_server
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
