"""Child-process entry point of the fault tests: `python -m tests.reliability.harness worker <concurrency>`.

Starts the application's real Celery worker, with the real tasks, after applying what the test asks
for through the environment:

- WP_REL_EARLY_ACK=1: the negative control. The tasks under test acknowledge before they run
  (acks_late and reject_on_worker_lost off), as Celery does by default.
- WP_REL_VISIBILITY=<s>: a short broker visibility timeout, and a restore sweep every second, so a
  message left unacknowledged by a killed worker comes back within the test's time (production
  keeps the settings value: an hour).
- WP_REL_DELAY=<s> and WP_REL_INFLIGHT=<folder>: each payload task sleeps half the delay before
  ingesting and half before marking the payload done, with a marker file `<pid>-<payload id>` while
  it runs. That widens the window in which a kill lands in the middle of a task, and tells the test
  which pool child to kill, so the fault is injected at a known point rather than by luck.
- WP_REL_CURSOR_FIRST=1: the negative control of the backfill test. The poller moves its cursor
  before it processes a page (the bug the real poller avoids), so a kill in between loses the page.
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
        time.sleep(delay / 2)  # findings are committed, the payload is not marked done yet
        real_close(payload, report)

    tasks.payload_process_pending = pending  # type: ignore[assignment]
    findings._payload_close = close  # type: ignore[assignment]


def _patch_cursor_first(delay: float) -> None:
    from incidents.services import ingest_sources
    from integrations.models import PollCursor

    real_process = ingest_sources.payload_process

    def process(*, payload_id: int) -> Any:
        from incidents.models import InboundPayload

        meta = InboundPayload.objects.get(pk=payload_id).meta
        PollCursor.objects.filter(pk=meta["cursor"], updated_at_ms__lt=meta["max_updated_ms"]).update(
            updated_at_ms=meta["max_updated_ms"]
        )
        time.sleep(delay)
        return real_process(payload_id=payload_id)

    ingest_sources.payload_process = process  # type: ignore[assignment]


def _patch_page_delay(delay: float) -> None:
    """The same window for the protected poller: a pause after the page is stored, before it is processed."""
    from incidents.services import ingest_sources

    real_process = ingest_sources.payload_process

    def process(*, payload_id: int) -> Any:
        time.sleep(delay)
        return real_process(payload_id=payload_id)

    ingest_sources.payload_process = process  # type: ignore[assignment]


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
        if os.environ.get("WP_REL_CURSOR_FIRST") == "1":
            _patch_cursor_first(float(page_delay))
        else:
            _patch_page_delay(float(page_delay))
    app.worker_main(
        ["worker", "--pool=prefork", f"--concurrency={concurrency}", f"--loglevel={os.environ.get('WP_REL_LOGLEVEL', 'WARNING')}",
         "--without-gossip", "--without-mingle", "--without-heartbeat", f"--hostname=rel-{os.getpid()}@localhost"]
    )  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "worker":
        worker(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
    else:
        raise SystemExit("usage: python -m tests.reliability.harness worker [concurrency]")
