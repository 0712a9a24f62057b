"""A task for tests/test_worker_db_sessions.py, loaded only by the worker that test starts (`-I`)."""

from celery import shared_task
from django.conf import settings
from django.db import connection


@shared_task(name="tests.db_session_tasks.backend_pid")
def backend_pid(key: str) -> None:
    """Record which PostgreSQL session (backend process) served this task."""
    import redis

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    redis.Redis.from_url(settings.CELERY_BROKER_URL).rpush(key, pid)
