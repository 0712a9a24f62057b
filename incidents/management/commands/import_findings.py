"""`manage.py import_findings PATH...`: GuardDuty findings from files.

Console exports, `aws guardduty get-findings` output, EventBridge events, S3 exports (JSON lines),
gzipped or not. A directory means every file directly in it, in name order. Each file is stored as an
InboundPayload before anything parses it and then takes the path every source takes
(`payload_receive`); what cannot be read is quarantined with the reason, the rest is imported.

Prints one summary line per file, plus one indented line per rejection. Exit status 0 when every
file was fully accepted, 1 when anything was rejected (a missing or unreadable path included).
"""

import os
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from incidents.models import InboundPayload, QuarantinedDocument
from incidents.services.findings import (
    CREATED,
    DUPLICATE,
    REJECTED,
    STALE,
    UPDATED,
    IngestReport,
    IngestResult,
    payload_receive,
    payload_store,
)

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
STATUSES = (CREATED, UPDATED, DUPLICATE, STALE, REJECTED)


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


def report_lines(label: str, report: IngestReport) -> list[str]:
    """`<label>: created N, updated N, …` and one `  rejected #<position>: <reason>` line per rejection."""
    counts = report.counts
    lines = [f"{label}: " + ", ".join(f"{status} {counts[status]}" for status in STATUSES)]
    for result in report.results:
        if result.status == REJECTED:
            where = "payload" if result.position is None else f"#{result.position}"
            lines.append(f"  rejected {where}: {result.reason}")
    return lines


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(child for child in path.iterdir() if child.is_file())
    return [path]


class Command(BaseCommand):
    help = "Import GuardDuty findings from files (JSON, JSON lines, CLI output, EventBridge events; gzip too)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH", help="A file, or a directory of files.")

    def handle(self, *args: Any, **options: Any) -> None:
        rejected_files = total = 0
        for given in options["paths"]:
            for path in _files(Path(given)):
                total += 1
                if not self._import_one(path):
                    rejected_files += 1
        if rejected_files:
            raise CommandError(f"{rejected_files} of {total} file(s) had rejected input; the rest was imported.")

    def _import_one(self, path: Path) -> bool:
        """Import one file, print its lines; True when everything in it was accepted."""
        # A name that is not UTF-8 (a file from another system) arrives with lone surrogates, which
        # neither the terminal nor the payload's meta can take: its odd bytes are shown as U+FFFD.
        label = os.fsencode(path).decode("utf-8", "replace")
        try:
            with path.open("rb") as stream:
                report = file_import(name=label, stream=stream, size=path.stat().st_size)
        except OSError as exc:  # missing, unreadable, a special file: reported, never a traceback
            self.stdout.write(f"{label}: " + ", ".join(f"{status} {int(status == REJECTED)}" for status in STATUSES))
            self.stdout.write(f"  rejected payload: cannot read the file ({exc.strerror or exc})")
            return False
        lines = report_lines(label, report)
        style = self.style.SUCCESS if report.fully_accepted else self.style.ERROR
        self.stdout.write(lines[0], style)
        for line in lines[1:]:
            self.stdout.write(line)
        return report.fully_accepted
