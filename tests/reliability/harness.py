"""Child-process entry point of the fault tests: `python -m tests.reliability.harness worker <concurrency>`.

Starts the application's real Celery worker, with the real tasks, after applying what the test asks
for through the environment:

- WP_REL_EARLY_ACK=1: the negative control. The tasks under test acknowledge before they run
  (acks_late and reject_on_worker_lost off), as Celery does by default.
- WP_REL_VISIBILITY=<s>: a short broker visibility timeout, and a restore sweep every second, so a
  message left unacknowledged by a killed worker comes back within the test's time (production
  keeps the settings value: an hour).
- WP_REL_DELAY=<s> and WP_REL_INFLIGHT=<folder>: each payload task sleeps half the delay before
  ingesting and half after ingesting, before the payload is marked done (inside the payload's
  transaction for a one-chunk payload), with a marker file `<pid>-<payload id>` while it runs.
  That widens the window in which a kill lands in the middle of a task, and tells the test which
  pool child to kill, so the fault is injected at a known point rather than by luck.
- WP_REL_PAGE_DELAY=<s> (with WP_REL_INFLIGHT): the poller pauses between fetching a page and
  storing it, with a marker file `<pid>-<cursor id>`, for the backfill test to kill it there.
- WP_REL_LOGLEVEL=<level>: the worker's log level (WARNING by default; INFO logs each retry).
- WP_REL_CURSOR_FIRST=1: the negative control of the backfill test. The poller moves its cursor
  when it has fetched a page, before committing it (the bug the real poller avoids), so a kill in
  between loses the page.
"""

import os
import sys
import time
from pathlib import Path
from typing import Any


def _patch_delay(delay: float, inflight: Path) -> None:
    from incidents import tasks
    from incidents.services import findings

    real_pending, real_close = tasks.payload_process_pending, findings._payload_close

    def pending(*, payload_id: int) -> Any:
        marker = inflight / f"{os.getpid()}-{payload_id}"
        marker.touch()
        try:
            time.sleep(delay / 2)
            return real_pending(payload_id=payload_id)
        finally:
            marker.unlink(missing_ok=True)

    def close(payload: Any, report: Any) -> None:
        time.sleep(delay / 2)  # findings are written, the payload is not marked done yet
        real_close(payload, report)

    tasks.payload_process_pending = pending  # type: ignore[assignment]
    findings._payload_close = close  # type: ignore[assignment]


def _patch_page_window(delay: float, inflight: Path, *, cursor_first: bool) -> None:
    """A pause between fetching a GuardDuty page and storing it, marked by `<pid>-<cursor id>`.

    With cursor_first (the control), the cursor is moved to the page's end before the pause: the bug
    of advancing a cursor on fetch rather than after commit.
    """
    from incidents.services import ingest_sources
    from integrations.models import PollCursor

    real_page_ingest = ingest_sources._page_ingest

    def page_ingest(cursor: Any, page: Any) -> Any:
        marker = inflight / f"{os.getpid()}-{cursor.pk}"
        marker.touch()
        try:
            if cursor_first:
                PollCursor.objects.filter(pk=cursor.pk, updated_at_ms__lt=page.max_updated_ms).update(
                    updated_at_ms=page.max_updated_ms
                )
            time.sleep(delay)
            return real_page_ingest(cursor, page)
        finally:
            marker.unlink(missing_ok=True)

    ingest_sources._page_ingest = page_ingest  # type: ignore[assignment]


def worker(concurrency: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from config.celery import app
    from incidents import tasks

    if os.environ.get("WP_REL_EARLY_ACK") == "1":
        for task in (tasks.payload_process_task, tasks.guardduty_poll_task):
            task.acks_late = False
            task.reject_on_worker_lost = False
    if visibility := os.environ.get("WP_REL_VISIBILITY"):
        app.conf.broker_transport_options = {
            "visibility_timeout": float(visibility),
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
        }
    if delay := os.environ.get("WP_REL_DELAY"):
        _patch_delay(float(delay), Path(os.environ["WP_REL_INFLIGHT"]))
    if page_delay := os.environ.get("WP_REL_PAGE_DELAY"):
        cursor_first = os.environ.get("WP_REL_CURSOR_FIRST") == "1"
        _patch_page_window(float(page_delay), Path(os.environ["WP_REL_INFLIGHT"]), cursor_first=cursor_first)
    log_level = os.environ.get("WP_REL_LOGLEVEL", "WARNING")
    app.worker_main(
        ["worker", "--pool=prefork", f"--concurrency={concurrency}", f"--loglevel={log_level}", "--without-gossip",
         "--without-mingle", "--without-heartbeat", f"--hostname=rel-{os.getpid()}@localhost"]
    )  # fmt: skip


def backlog(count: int) -> None:
    """Store `count` one-finding payloads in this environment's database and queue a task for each."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from incidents.tasks import payload_process_task
    from tests.reliability.conftest import payloads_store

    for payload_id in payloads_store(count, tag="backlog"):
        payload_process_task.delay(payload_id)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "worker":
        worker(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    elif len(sys.argv) == 3 and sys.argv[1] == "backlog":
        backlog(int(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m tests.reliability.harness worker [concurrency] | backlog <count>")
