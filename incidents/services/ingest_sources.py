"""The two ways findings come in from AWS: EventBridge → SQS, and the GuardDuty API poller.

Both store the body first and then process it (incidents.services.findings), whose ingest is
idempotent on (account, region, finding id). That is what lets both sources be at-least-once:

- SQS: a message is deleted only after its payload was processed and committed. A crash before the
  delete means the message comes back and its findings are ingested again as "duplicate".
- Poller: the cursor moves to a page's greatest updatedAt only after that page was processed and
  committed. Moving it first would lose the page for good if the worker died in between (the next run
  would ask for updatedAt ≥ the new cursor and never see it); moving it after costs at most one page
  fetched again. The cursor is not moved back by the overlap either: the next run asks for updatedAt
  ≥ the cursor, so findings sharing the last committed millisecond come again and count as duplicates.
"""

import json
import logging
import time
from collections import Counter
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from incidents.models import InboundPayload, QuarantinedDocument
from incidents.services.findings import REJECTED, payload_process_stored, payload_store
from integrations.aws.guardduty_api import FindingPage, detectors_list, finding_pages
from integrations.aws.session import account_session
from integrations.aws.sqs import SqsMessage, message_delete, messages_receive
from integrations.errors import IntegrationError
from integrations.models import AwsAccount, PollCursor

logger = logging.getLogger(__name__)
# Outcomes of one SQS message, as counted by `sqs_poll_once`.
INGESTED, REJECTED_MESSAGE, RETRY_LATER, GAVE_UP = "ingested", "rejected", "left_for_retry", "quarantined"


# --- EventBridge → SQS ------------------------------------------------------------------------------


def sqs_consume(*, queue_url: str, budget_seconds: float) -> dict[str, int]:
    """Long-poll until a poll comes back empty or the budget is spent; the totals, plus `polls`.

    Bounded so that beat, which starts one consumer per interval, never piles consumers up.
    """
    deadline = time.monotonic() + budget_seconds
    totals: Counter[str] = Counter()
    while True:
        counts = sqs_poll_once(queue_url=queue_url)
        totals.update(counts)
        totals["polls"] += 1
        if not counts.get("received") or time.monotonic() >= deadline:
            return dict(totals)


def sqs_poll_once(*, queue_url: str) -> dict[str, int]:
    """One long poll; each message ingested, then deleted. Counts per outcome, plus `received`."""
    messages = messages_receive(queue_url=queue_url, wait_seconds=settings.WATCHPOST_SQS_WAIT_SECONDS)
    counts = Counter({"received": len(messages)})
    for message in messages:
        counts[sqs_message_ingest(queue_url=queue_url, message=message)] += 1
    return dict(counts)


def sqs_message_ingest(*, queue_url: str, message: SqsMessage) -> str:
    meta = {"message_id": message.message_id, "receive_count": message.receive_count, "queue": queue_url}
    # The message is deleted only after the processing commits, which also puts the payload on disk.
    payload = payload_store(source=InboundPayload.Source.SQS, body=message.body.encode("utf-8"), meta=meta, flush=False)
    try:
        report = payload_process_stored(payload)
    except Exception as exc:  # noqa: BLE001 - whatever broke, SQS redelivers; the cap below ends it
        if message.receive_count < settings.WATCHPOST_SQS_MAX_RECEIVES:
            logger.warning("SQS message %s failed (receive %s), left for redelivery: %r",
                           message.message_id, message.receive_count, exc)  # fmt: skip
            return RETRY_LATER
        _payload_give_up(payload, reason=f"failed {message.receive_count} times: {exc!r}")
        outcome = GAVE_UP
    else:
        # Parse rejections are already quarantined with the payload: redelivery would not help.
        outcome = INGESTED if report.fully_accepted else REJECTED_MESSAGE
    _message_delete(queue_url=queue_url, message=message)
    return outcome


def _payload_give_up(payload: InboundPayload, *, reason: str) -> None:
    with transaction.atomic():
        QuarantinedDocument.objects.create(payload=payload, position=None, document=None, reason=reason)
        InboundPayload.objects.filter(pk=payload.pk).update(
            status=InboundPayload.Status.REJECTED, counts={REJECTED: 1}, processed_at=timezone.now()
        )


def _message_delete(*, queue_url: str, message: SqsMessage) -> None:
    try:
        message_delete(queue_url=queue_url, receipt_handle=message.receipt_handle)
    except IntegrationError as exc:
        # The ingest is committed: a message that comes back is only ingested again as a duplicate.
        logger.warning("SQS message %s ingested but not deleted: %s", message.message_id, exc)


# --- GuardDuty API poller ---------------------------------------------------------------------------


def poll_cursors_ensure() -> int:
    """A cursor for every enabled account × region × detector (configured, else ListDetectors). New ones."""
    created = 0
    for account in AwsAccount.objects.filter(enabled=True):
        for region in account.region_list:
            try:
                detector_ids = _detectors(account, region)
            except IntegrationError as exc:
                logger.warning("Detector discovery failed for %s in %s: %s", account, region, exc)
                continue
            for detector_id in detector_ids:
                _, new = PollCursor.objects.get_or_create(account=account, region=region, detector_id=detector_id)
                created += new
    return created


def _detectors(account: AwsAccount, region: str) -> list[str]:
    configured = (account.detector_ids or {}).get(region)
    if configured:
        return [configured]
    session = account_session(
        account_id=account.account_id, role_arn=account.role_arn, external_id=account.external_id, region=region
    )
    return detectors_list(session=session, region=region)


def poll_cursor_ids_enabled() -> list[int]:
    """Cursors of enabled accounts whose region is still configured."""
    cursors = PollCursor.objects.filter(account__enabled=True).select_related("account").order_by("pk")
    return [cursor.pk for cursor in cursors if cursor.region in cursor.account.region_list]


def guardduty_poll(*, cursor_id: int) -> dict[str, int]:
    """Read every finding updated since the cursor, page by page; the cursor follows each committed page."""
    cursor = PollCursor.objects.select_related("account").get(pk=cursor_id)
    account = cursor.account
    counts: Counter[str] = Counter()
    try:
        session = account_session(
            account_id=account.account_id,
            role_arn=account.role_arn,
            external_id=account.external_id,
            region=cursor.region,
        )
        pages = finding_pages(
            session=session,
            region=cursor.region,
            detector_id=cursor.detector_id,
            since_ms=cursor.updated_at_ms,
            archived=settings.WATCHPOST_POLL_ARCHIVED,
        )
        for page in pages:
            counts.update(_page_ingest(cursor, page))
            counts["pages"] += 1
    except Exception as exc:
        _cursor_ran(cursor_id, error=str(exc) or repr(exc))
        raise
    _cursor_ran(cursor_id, error="")
    return dict(counts)


def _page_ingest(cursor: PollCursor, page: FindingPage) -> dict[str, int]:
    body = json.dumps({"Findings": page.findings}, default=_json_default).encode("utf-8")
    meta = {"cursor": cursor.pk, "account": cursor.account.account_id, "region": cursor.region,
            "detector_id": cursor.detector_id, "max_updated_ms": page.max_updated_ms}  # fmt: skip
    payload = payload_store(source=InboundPayload.Source.POLLER, body=body, meta=meta, flush=False)
    report = payload_process_stored(payload)
    # That has committed every finding of the page (and the page's payload with it); only now may the
    # cursor pass it.
    # The filter keeps the cursor from moving back should two runs of one cursor overlap.
    PollCursor.objects.filter(pk=cursor.pk, updated_at_ms__lt=page.max_updated_ms).update(
        updated_at_ms=page.max_updated_ms
    )
    return report.counts


def _json_default(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _cursor_ran(cursor_id: int, *, error: str) -> None:
    PollCursor.objects.filter(pk=cursor_id).update(last_run_at=timezone.now(), last_error=error[:2000])
