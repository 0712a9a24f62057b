"""Celery tasks for `make bench-ingest` (P3), loaded only by the bench's own worker (`-I benchmarks.tasks_bench`).

- `ingest_one`: the event path, one EventBridge event (one finding) per task, through `payload_receive`
  with source "sqs": the body is stored, parsed and ingested, as an SQS consumer would hand it over.
- `noop`: the reference, drained by the same worker configuration in the same run.

Both count completions with one Redis INCR on a key the bench polls, so both sides pay the same
bookkeeping. Failures also count (under `<counter>:errors`), so a failing task cannot stall the bench.
Nothing in the app imports this module, and the app's own worker never loads it.
"""

from functools import cache
from typing import Any

from celery import shared_task

from incidents.tasks import DB_RETRY


@cache
def _redis() -> Any:
    """One client per worker process, made after the fork (pool children each get their own)."""
    import redis
    from django.conf import settings

    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


@shared_task(name="benchmarks.tasks_bench.noop")
def noop(counter: str) -> None:
    _redis().incr(counter)


@shared_task(name="benchmarks.tasks_bench.ingest_one", **DB_RETRY)  # the app's ingest task's options
def ingest_one(body: str, counter: str) -> None:
    from incidents.models import InboundPayload
    from incidents.services.findings import payload_receive

    try:
        report = payload_receive(source=InboundPayload.Source.SQS, body=body.encode())
        if not report.fully_accepted:
            _redis().incr(f"{counter}:rejected")
    except BaseException:
        _redis().incr(f"{counter}:errors")
        raise
    finally:
        _redis().incr(counter)
