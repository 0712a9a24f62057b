"""`manage.py export_bundle INCIDENT_ID --out FILE.zip`: the evidence bundle (manifest.json with SHA-256,
custody log, timeline, report). The export is recorded on each piece's custody log and on the timeline.

Exit status 1, and no file left behind, when a piece of evidence no longer matches its recorded hash.
"""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.errors import EvidenceIntegrityError
from incidents.management.users import command_user
from incidents.models import Incident
from incidents.services.bundle import evidence_bundle_export


class Command(BaseCommand):
    help = "Write the evidence bundle of one incident as a zip."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("incident_id", type=int)
        parser.add_argument("--out", required=True, help="The zip file to write.")
        parser.add_argument("--as", dest="username", default="", help="Record the export as this user.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = command_user(options["username"])
        out = Path(options["out"])
        try:
            with out.open("w+b") as file:
                result = evidence_bundle_export(
                    incident_id=options["incident_id"], actor=user, out=file, via="manage.py export_bundle"
                )
        except Incident.DoesNotExist as exc:
            out.unlink(missing_ok=True)
            raise CommandError(f"No incident {options['incident_id']} (or not visible to that user).") from exc
        except EvidenceIntegrityError as exc:
            out.unlink(missing_ok=True)
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            f"{out}: {result.evidence_count} evidence file(s), {result.size} bytes, SHA-256 {result.sha256}"
        )
