"""`manage.py verify_audit`: check the audit and custody hash chains; exit 1 on any broken link."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from incidents.models import AuditEvent, CustodyEvent
from incidents.services.audit import chains_verify


class Command(BaseCommand):
    help = "Verify the audit log and the evidence custody log have not been edited or cut."

    def handle(self, *args: Any, **options: Any) -> None:
        problems = chains_verify()
        for problem in problems:
            self.stderr.write(problem.message)
        if problems:
            raise CommandError(f"{len(problems)} broken link(s): the records were tampered with.")
        audit, custody = AuditEvent.objects.count(), CustodyEvent.objects.count()
        self.stdout.write(f"audit chain intact ({audit} rows); custody chain intact ({custody} rows)")
