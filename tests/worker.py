"""A real Celery worker for the tests whose behaviour crosses the process boundary (Redis broker).

Importing this module gives the test process a queue of its own, so parallel test processes (each with
its own test database) never take each other's tasks. It is set once, at import: kombu caches the queue
declarations of the app.
"""

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from config.celery import app

app.conf.task_default_queue = f"test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-{os.getpid()}"


@contextmanager
def running_worker(*, shutdown_timeout: float = 10) -> Iterator[None]:
    """An in-process worker (solo pool) on the Redis broker `make test` configures; skips without it."""
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs the Redis broker that `make test` configures")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=shutdown_timeout):
        yield


@pytest.fixture
def celery_worker() -> Iterator[None]:
    with running_worker():
        yield


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
