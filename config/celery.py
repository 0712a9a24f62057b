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
def recycle_db_connections(task: Task | None = None, **_: Any) -> None:
    """Around each task, what Django does around each request (settings.CELERY_DB_REUSE_MAX says why)."""
    if task is not None and getattr(task.request, "is_eager", False):
        return  # run inline by its caller, inside the caller's connection and transaction
    from django.db import close_old_connections

    close_old_connections()


def ensure_broker_folders() -> None:
    """The filesystem transport does not create its folders; a fresh clone has none."""
    options = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)


ensure_broker_folders()
