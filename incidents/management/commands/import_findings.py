"""`manage.py import_findings PATH...`: GuardDuty findings from files.

Console exports, `aws guardduty get-findings` output, EventBridge events, S3 exports (JSON lines),
gzipped or not. A directory means every file directly in it, in name order. Each file is stored as an
InboundPayload before anything parses it and then takes the path every source takes
(`payload_receive`); what cannot be read is quarantined with the reason, the rest is imported.
On PostgreSQL several files are imported at once (`--jobs`, default the number of CPUs up to 4),
each in a process and session of its own; the lines still come in the order of the files.

Prints one summary line per file, plus one indented line per rejection. Exit status 0 when every
file was fully accepted, 1 when anything was rejected (a missing or unreadable path included).
"""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.services.file_imports import FileImported, import_jobs_default, paths_import
from incidents.services.findings import CREATED, DUPLICATE, REJECTED, STALE, UPDATED, IngestReport

STATUSES = (CREATED, UPDATED, DUPLICATE, STALE, REJECTED)


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
        parser.add_argument(
            "--jobs", "-j", type=int, default=import_jobs_default(), metavar="N",
            help="Files imported at once, each in a process and database session of its own "
            "(default: the number of CPUs, at most 4; 1 on SQLite).",
        )  # fmt: skip

    def handle(self, *args: Any, **options: Any) -> None:
        if options["jobs"] < 1:
            raise CommandError("--jobs must be 1 or more.")
        paths = [path for given in options["paths"] for path in _files(Path(given))]
        rejected_files = sum(not self._report(imported) for imported in paths_import(paths, jobs=options["jobs"]))
        if rejected_files:
            raise CommandError(f"{rejected_files} of {len(paths)} file(s) had rejected input; the rest was imported.")

    def _report(self, imported: FileImported) -> bool:
        """Print one file's lines; True when everything in it was accepted."""
        if imported.report is None:  # never read: reported, never a traceback
            self.stdout.write(
                f"{imported.label}: " + ", ".join(f"{status} {int(status == REJECTED)}" for status in STATUSES)
            )
            self.stdout.write(f"  rejected payload: cannot read the file ({imported.unreadable})")
            return False
        lines = report_lines(imported.label, imported.report)
        style = self.style.SUCCESS if imported.report.fully_accepted else self.style.ERROR
        self.stdout.write(lines[0], style)
        for line in lines[1:]:
            self.stdout.write(line)
        return imported.report.fully_accepted
