"""`python manage.py verify_evidence`: re-hash every stored evidence file against its recorded SHA-256.

Each check is written to the evidence's custody log (verified, or hash mismatch with the hash observed),
so the result is part of the chain of custody. Exit status 1 when any file differs or is missing, for
cron and CI; the periodic task `evidence_reverify_all_task` does the same through the workers.
"""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from incidents.models import incident_reference
from incidents.services.evidence import evidence_verify_all


class Command(BaseCommand):
    help = "Re-hash every stored evidence file; record each result on the custody log; exit 1 on any mismatch."

    def handle(self, *args: Any, **options: Any) -> None:
        checked, mismatches = 0, []
        for check in evidence_verify_all(detail="verify_evidence command"):
            checked += 1
            if not check.ok:
                mismatches.append(check)
                self.stderr.write(
                    f"MISMATCH evidence {check.evidence_id} ({check.name}) of {incident_reference(check.incident_id)}: "
                    f"recorded {check.recorded}, stored {check.observed}"
                )
        self.stdout.write(f"{checked} evidence file(s) checked, {len(mismatches)} mismatch(es).")
        if mismatches:
            raise CommandError(f"{len(mismatches)} evidence file(s) failed verification; see the custody log.")
