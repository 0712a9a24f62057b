"""A real prefork worker keeps its PostgreSQL session across tasks (settings.CELERY_DB_REUSE_MAX).

Celery's Django fixup otherwise closes every connection before and after each task, and each task
that touches the database pays for a new session: a backend fork, ~4 ms of CPU per ingested event.
The control runs the same worker with the reuse turned off and sees one session per task.

The kept session is pinged before each task (CONN_HEALTH_CHECKS), except before a task that is retried
when the database drops it (DB_RETRY): that ping was a round trip per ingested event (config.celery).
"""

import os
import subprocess
import sys
import uuid

import pytest
import redis
from django.conf import settings
from django.db import connection

from tests.worker import wait_for

TASKS = 6


def _database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _sessions(reuse_max: str, tasks: list[str] | None = None) -> list[bytes]:
    """What each task recorded, in order (one pool process runs them one after the other)."""
    tasks = tasks or ["tests.db_session_tasks.backend_pid"] * TASKS
    queue, key = f"db-sessions-{uuid.uuid4().hex[:8]}", f"test:db-sessions:{uuid.uuid4().hex}"
    env = os.environ | {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _database_url(),
        "WATCHPOST_CELERY_DB_REUSE_MAX": reuse_max,
    }
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", "-c", "1", "-Q", queue,
               "-I", "tests.db_session_tasks", "-n", f"{queue}@%h", "--without-mingle", "--without-gossip",
               "--loglevel=WARNING"]  # fmt: skip
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        from config.celery import app

        for task in tasks:
            app.send_task(task, args=[key], queue=queue)
        assert wait_for(lambda: client.llen(f"{key}:done") >= len(tasks), timeout=60), "the worker did not run them"
        return list(client.lrange(key, 0, -1))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        client.delete(key, f"{key}:done", queue)


@pytest.mark.django_db
def test_a_worker_serves_every_task_from_one_database_session() -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs the Redis broker that `make test` configures")
    assert len(set(_sessions("1000"))) == 1


@pytest.mark.django_db
def test_control_without_the_reuse_setting_each_task_opens_a_session() -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs the Redis broker that `make test` configures")
    assert len(set(_sessions("0"))) == TASKS


@pytest.mark.django_db
def test_a_task_retried_on_a_lost_database_is_not_preceded_by_a_ping() -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("needs the Redis broker that `make test` configures")
    retrying, plain = (
        "tests.db_session_tasks.statement_before_retrying",
        "tests.db_session_tasks.statement_before_plain",
    )
    # when: one session runs them in turn (its first task has nothing before it to record)
    seen = [statement.decode() for statement in _sessions("1000", [plain, retrying, plain, retrying, plain])]
    # then: a plain task follows the ping; a retrying one follows the previous task's own statement
    assert seen == ["SELECT 'the task ran'", "SELECT 1", "SELECT 'the task ran'", "SELECT 1"]
