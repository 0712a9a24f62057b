"""Tamper-evident records: the audit log of state-changing requests, and the hash chains behind it.

Each chain ("audit", "custody") links every row to the one before it with an HMAC-SHA256 keyed by
WATCHPOST_AUDIT_KEY, a secret that is not in the database: someone who can edit the tables (past the
append-only trigger) still cannot recompute the links. The chain head row, locked while a row is
appended, serialises writers and remembers the last link, so a removed tail shows too.
"""

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import models, transaction
from django.utils import timezone

from incidents.models import AuditEvent, ChainHead, CustodyEvent

AUDIT, CUSTODY = "audit", "custody"
GENESIS = "0" * 64


def _key() -> bytes:
    return str(settings.WATCHPOST_AUDIT_KEY).encode()


def link_hash(prev: str, fields: dict[str, Any]) -> str:
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(_key(), f"{prev}|{body}".encode(), hashlib.sha256).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def audit_fields(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": _iso(event.at),
        "actor": event.actor_id,
        "actor_name": event.actor_name,
        "via": event.via,
        "method": event.method,
        "path": event.path,
        "status": event.status_code,
        "address": event.address,
    }


def custody_fields(event: CustodyEvent) -> dict[str, Any]:
    return {
        "evidence": event.evidence_id,
        "action": event.action,
        "actor": event.actor_id,
        "at": _iso(event.at),
        "address": event.source_address,
        "sha256": event.sha256,
        "detail": event.detail,
    }


@transaction.atomic
def chain_append(*, chain: str, row: models.Model, fields: dict[str, Any]) -> None:
    """Link `row` (unsaved) to the chain and insert it, under the chain head's row lock."""
    head, _ = ChainHead.objects.select_for_update().get_or_create(name=chain)
    row.prev_hash = head.last_hash or GENESIS  # type: ignore[attr-defined]
    row.chain_hash = link_hash(row.prev_hash, fields)  # type: ignore[attr-defined]
    row.save(force_insert=True)
    ChainHead.objects.filter(name=chain).update(last_id=row.pk, last_hash=row.chain_hash)  # type: ignore[attr-defined]


def audit_record(
    *,
    actor: User | AnonymousUser | None,
    via: str,
    method: str,
    path: str,
    status_code: int | None,
    address: str | None,
) -> AuditEvent:
    user = actor if actor is not None and actor.is_authenticated else None
    event = AuditEvent(
        at=timezone.now(),
        actor=user,
        actor_name=user.get_username() if user else "",
        via=via,
        method=method[:10],
        path=path[:500],
        status_code=status_code,
        address=address or None,
    )
    chain_append(chain=AUDIT, row=event, fields=audit_fields(event))
    return event


# --- verification ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainProblem:
    chain: str
    row_id: int | None
    message: str


def _walk(chain: str, rows: Iterator[Any], fields: Any) -> Iterator[ChainProblem]:
    prev, last_id = GENESIS, 0
    for row in rows:
        if row.prev_hash != prev:
            yield ChainProblem(chain, row.pk, f"{chain} #{row.pk}: the row before it was removed or edited")
        if link_hash(row.prev_hash, fields(row)) != row.chain_hash:
            yield ChainProblem(chain, row.pk, f"{chain} #{row.pk}: the row was edited after it was written")
        prev, last_id = row.chain_hash, row.pk
    head = ChainHead.objects.filter(name=chain).first()
    if head is not None and (head.last_id, head.last_hash) != (last_id, prev if last_id else ""):
        yield ChainProblem(
            chain, head.last_id, f"{chain}: rows after #{last_id} were removed (head is #{head.last_id})"
        )


def chains_verify() -> list[ChainProblem]:
    """Every broken link in both chains (an empty list: both intact)."""
    audit = AuditEvent.objects.order_by("id").iterator(chunk_size=2000)
    custody = CustodyEvent.objects.order_by("id").iterator(chunk_size=2000)
    return [*_walk(AUDIT, audit, audit_fields), *_walk(CUSTODY, custody, custody_fields)]
