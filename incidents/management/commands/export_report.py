"""`manage.py export_report INCIDENT_ID --format md|pdf --out FILE`: the post-incident report.

The command line reads every case (it runs with the server's own rights); use `--as USERNAME` to
produce the report as a given user sees it.
"""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from incidents.management.users import command_user
from incidents.models import Incident
from incidents.services.reports import report_data, report_incident_get, report_markdown, report_pdf


class Command(BaseCommand):
    help = "Write the post-incident report of one incident as Markdown or PDF."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("incident_id", type=int)
        parser.add_argument("--format", choices=("md", "pdf"), default="md")
        parser.add_argument("--out", required=True, help="File to write ('-' for standard output, Markdown only).")
        parser.add_argument("--as", dest="username", default="", help="Produce the report as this user sees it.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = command_user(options["username"])
        try:
            incident = report_incident_get(user=user, incident_id=options["incident_id"])
        except Incident.DoesNotExist as exc:
            raise CommandError(f"No incident {options['incident_id']} (or not visible to that user).") from exc
        data = report_data(incident=incident, generated_by=user.get_username() if user else "manage.py export_report")
        if options["format"] == "pdf":
            if options["out"] == "-":
                raise CommandError("A PDF needs --out FILE.")
            Path(options["out"]).write_bytes(report_pdf(data=data))
        elif options["out"] == "-":
            self.stdout.write(report_markdown(data=data), ending="")
            return
        else:
            Path(options["out"]).write_text(report_markdown(data=data), encoding="utf-8")
        self.stdout.write(f"{incident.reference}: {options['format']} report written to {options['out']}")
