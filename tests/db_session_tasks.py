"""Tasks for tests/test_worker_db_sessions.py, loaded only by the worker that test starts (`-I`).

Each pushes what it saw to the Redis list `key`, and one item to `key:done` when it is finished.
"""

from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import connection

from incidents.tasks import DB_RETRY


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


@shared_task(name="tests.db_session_tasks.backend_pid")
def backend_pid(key: str) -> None:
    """Record which PostgreSQL session (backend process) served this task."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    _redis().rpush(key, pid)
    _redis().rpush(f"{key}:done", 1)


@shared_task(name="tests.db_session_tasks.statement_before_retrying", **DB_RETRY)
def statement_before_retrying(key: str) -> None:
    _statement_before(key)


@shared_task(name="tests.db_session_tasks.statement_before_plain")
def statement_before_plain(key: str) -> None:
    _statement_before(key)


def _statement_before(key: str) -> None:
    """Record the last statement the worker's session ran before this task's first one (a ping: SELECT 1).

    Django pings, when it does, as the task opens its first cursor. PostgreSQL's own view of the session
    is read over a second connection: the ping goes through the raw psycopg2 connection, which no Django
    hook sees. Nothing is recorded for the session's first task.
    """
    import psycopg2

    known = connection.connection is not None
    with connection.cursor() as cursor:
        if known:
            other = psycopg2.connect(**connection.get_connection_params())
            try:
                with other.cursor() as look:
                    look.execute(
                        "SELECT query FROM pg_stat_activity WHERE pid = %s", [cursor.connection.get_backend_pid()]
                    )
                    (previous,) = look.fetchone()
            finally:
                other.close()
            _redis().rpush(key, previous)
        cursor.execute("SELECT 'the task ran'")
    _redis().rpush(f"{key}:done", 1)
