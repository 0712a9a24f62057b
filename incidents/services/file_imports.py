"""Findings from files: `manage.py import_findings` and the admin's upload page.

Each file is one payload, stored before anything parses it, then processed as every source is
(`payload_receive`). A backfill is many files (an S3 export writes one per batch of findings). One
process ingesting them waits on PostgreSQL while PostgreSQL waits on it, so a two-core machine keeps a
core idle: two processes import about twice as fast (P1, `benchmarks/README.md`). `paths_import`
therefore takes several files at once, each in a process of its own with its own database session.
"""

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from incidents.models import InboundPayload, QuarantinedDocument
from incidents.services.findings import REJECTED, IngestReport, IngestResult, payload_receive, payload_store

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
MAX_JOBS = 4  # more sessions than this only queue up on the database's own cores


def import_max_bytes() -> int:
    return int(getattr(settings, "WATCHPOST_IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES))


def payload_refuse(*, meta: dict[str, Any], reason: str) -> IngestReport:
    """An input refused unread (too large): an empty payload that says why, quarantined, so nothing is lost."""
    with transaction.atomic():
        payload = payload_store(source=InboundPayload.Source.IMPORT, body=b"", meta=meta | {"refused": reason})
        QuarantinedDocument.objects.create(payload=payload, position=None, document=None, reason=reason)
        report = IngestReport(payload_id=payload.pk, results=[IngestResult(status=REJECTED, reason=reason)])
        InboundPayload.objects.filter(pk=payload.pk).update(
            status=InboundPayload.Status.REJECTED, counts=report.counts, processed_at=timezone.now()
        )
    return report


def file_import(*, name: str, stream: IO[bytes], size: int, meta: dict[str, Any] | None = None) -> IngestReport:
    """Store and process one file (the command and the admin upload); one over the limit is not read."""
    limit = import_max_bytes()
    body = stream.read(limit + 1) if size <= limit else b""
    meta = {"file": name, "size": max(size, len(body))} | (meta or {})
    if size > limit or len(body) > limit:
        return payload_refuse(meta=meta, reason=f"the file is {meta['size']} bytes, over the import limit of {limit}")
    return payload_receive(source=InboundPayload.Source.IMPORT, body=body, meta=meta)


@dataclass(frozen=True)
class FileImported:
    """One path's outcome: its report, or why the file could not be read (then nothing was stored)."""

    label: str
    report: IngestReport | None
    unreadable: str = ""


def path_import(path: Path) -> FileImported:
    """Import one file from disk; a missing or unreadable one is reported, never raised."""
    # A name that is not UTF-8 (a file from another system) arrives with lone surrogates, which
    # neither the terminal nor the payload's meta can take: its odd bytes are shown as U+FFFD.
    label = os.fsencode(path).decode("utf-8", "replace")
    try:
        with path.open("rb") as stream:
            return FileImported(label, file_import(name=label, stream=stream, size=path.stat().st_size))
    except OSError as exc:  # missing, unreadable, a special file
        return FileImported(label, None, unreadable=str(exc.strerror or exc))


def import_jobs_default() -> int:
    return max(1, min(MAX_JOBS, os.cpu_count() or 1))


def paths_import(paths: Sequence[Path], *, jobs: int) -> Iterator[FileImported]:
    """Import the files, up to `jobs` at a time; outcomes come back in the order of `paths`.

    The files are independent payloads, so the order they commit in does not change what they leave
    behind: a finding in two of them ends at its latest version either way. Only which copy is called
    "stale" and which "updated" can differ, and with it which versions get an occurrence event.

    Taken one at a time when one process is all there can be: a single file; SQLite (one writer at a
    time); a caller's open transaction, whose uncommitted rows another session could not see; a
    platform without fork.
    """
    jobs = min(jobs, len(paths))
    if jobs <= 1 or not _sessions_can_run_alongside():
        yield from map(path_import, paths)
        return
    # A forked child must not share the parent's PostgreSQL session: each opens its own on first use.
    connections.close_all()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
        yield from pool.map(path_import, paths)


def _sessions_can_run_alongside() -> bool:
    connection = connections[DEFAULT_DB_ALIAS]
    return connection.vendor == "postgresql" and not connection.in_atomic_block and "fork" in get_all_start_methods()
