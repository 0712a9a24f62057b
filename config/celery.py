"""Celery application. Tasks are thin: they take an id and call a service (STYLE.md)."""

import os
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("watchpost")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def recycle_db_connections(task: Task | None = None, signal: Any = None, **_: Any) -> None:
    """Around each task, what Django does around each request (settings.CELERY_DB_REUSE_MAX says why)."""
    if task is not None and getattr(task.request, "is_eager", False):
        return  # run inline by its caller, inside the caller's connection and transaction
    from django.db import close_old_connections, connections

    close_old_connections()
    if signal is task_prerun and retries_on_lost_database(task):
        # No ping before this task (CONN_HEALTH_CHECKS): had the server dropped the connection, the
        # task's first statement fails and the task is retried with backoff (R4), which is all the ping
        # would have spared it, and the ping was a round trip per ingested event (P3). Tasks without
        # that retry keep it.
        for connection in connections.all(initialized_only=True):
            connection.health_check_done = True  # type: ignore[attr-defined]  # Django's flag, not in the stubs


def retries_on_lost_database(task: Task | None) -> bool:
    """Whether the task is retried when the database drops its connection (incidents.tasks.DB_RETRY)."""
    from django.db import InterfaceError, OperationalError

    retried = getattr(task, "autoretry_for", ())
    return all(any(issubclass(error, exc) for exc in retried) for error in (OperationalError, InterfaceError))


def ensure_broker_folders() -> None:
    """The filesystem transport does not create its folders; a fresh clone has none."""
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


ensure_broker_folders()
