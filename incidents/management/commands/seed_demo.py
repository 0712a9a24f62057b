"""`manage.py seed_demo`: demo users and demo incidents for `make run`. Idempotent; never for production.

Creates one user per role (responder, manager, viewer, admin) with the password from
WATCHPOST_DEMO_PASSWORD (default `watchpost-demo`), then opens one incident per bundled demo finding
through the real ingestion pipeline (`incidents.demo.importer`). A finding imported before is skipped,
so a second run changes nothing but the passwords (reset to the configured one, so the logins that
`make run` prints always work).
Two cases are moved forward so the queue looks like a working day: one acknowledged and assigned,
one in containment with its Part 1 checklist done and the Part 1 decision taken.
"""

import os
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from incidents import permissions
from incidents.demo.importer import demo_findings_import
from incidents.models import Incident, Phase
from incidents.services import incident_assign, incident_change_phase
from incidents.services.findings import CREATED
from integrations.models import Cluster
from playbooks.checklists import checklist_items
from playbooks.models import PlaybookStep
from playbooks.services import checklist_item_complete, checklist_item_decide

DEFAULT_PASSWORD = "watchpost-demo"  # noqa: S105 - a documented demo login, printed by `make run`
DEMO_USERS = (
    ("responder", permissions.RESPONDER),
    ("manager", permissions.MANAGER),
    ("viewer", permissions.VIEWER),
    ("admin", permissions.ADMIN),
)
ACKNOWLEDGED_FINDING = "3a5f7c9e1b2d4f6a8c0e2a4c6e8a0c2e"  # Policy:Kubernetes/AnonymousAccessGranted, payments-prod
SANDBOX_CLUSTER = "payments-prod"  # the cluster of the demo findings
CONTAINMENT_FINDING = "7c2e9a41d0b35f68e1a4c9d27b60f3a5"  # Discovery:…/SuccessfulAnonymousAccess, payments-prod
# Comments for Part 1 steps, picked by the first matching word in the step title; other steps get none.
TICK_COMMENTS = (
    ("ticket", "SEC-2041 raised in the SOC queue."),
    ("end-user impact", "No customer-facing errors; payments API latency normal."),
    ("war room", "War room #inc-payments-prod-anon open; platform on-call paged."),
    ("verify", "Finding confirmed in the GuardDuty console (eu-west-1)."),
    ("cluster", "payments-prod, account 210987654321, eu-west-1."),
    ("pod", "No workload in the finding; caller system:anonymous (group system:unauthenticated)."),
    ("origination", "198.51.100.23, AS64511 (Example Offshore Hosting, DE): not one of our addresses."),
)


class Command(BaseCommand):
    help = "Create the demo users and open one incident per demo finding (idempotent; for `make run` only)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed a database other than the embedded SQLite one (a demo superuser with a published password!).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "sqlite" and not options["force"]:
            # The demo superuser's password is printed in the README: never on a real deployment by accident.
            raise CommandError("seed_demo only seeds the embedded SQLite database; pass --force to seed this one.")
        password = os.environ.get("WATCHPOST_DEMO_PASSWORD") or DEFAULT_PASSWORD
        users = {
            username: _user_ensure(username=username, role=role, password=password) for username, role in DEMO_USERS
        }
        _sandbox_cluster_ensure()
        report = demo_findings_import(now=timezone.now())
        opened = [result for result in report.results if result.status == CREATED] if report else []
        for result in opened:
            assert result.incident_id is not None
            with transaction.atomic():
                incident = Incident.objects.get(pk=result.incident_id)
                _advance(incident=incident, finding_id=result.finding_key.rsplit("/", 1)[-1], users=users)
        rejected = report.counts["rejected"] if report else 0
        if rejected:
            raise CommandError(f"{rejected} demo finding(s) were rejected; see the quarantine in the admin.")
        self.stdout.write(f"Demo users: {', '.join(users)}. Demo incidents: {len(opened)} opened.")


def _sandbox_cluster_ensure() -> None:
    """The demo incidents' cluster is the sandbox API server `make run` starts (its kubeconfig in var/)."""
    Cluster.objects.update_or_create(
        name=SANDBOX_CLUSTER,
        defaults={
            "via": Cluster.Via.KUBECONFIG,
            "kubeconfig_path": str(settings.VAR_DIR / "sandbox" / "kubeconfig.yaml"),
            "kubeconfig_context": "",
            "is_sandbox": True,
            "enabled": True,
        },
    )


def _user_ensure(*, username: str, role: str, password: str) -> User:
    user, created = get_user_model().objects.get_or_create(
        username=username, defaults={"email": f"{username}@example.com"}
    )
    if role == permissions.ADMIN and not (user.is_superuser and user.is_staff):
        user.is_superuser = user.is_staff = True
        user.save(update_fields=["is_superuser", "is_staff"])
    if created or not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=role))
    return user


def _advance(*, incident: Incident, finding_id: str, users: dict[str, User]) -> None:
    manager, responder = users["manager"], users["responder"]
    if finding_id not in (ACKNOWLEDGED_FINDING, CONTAINMENT_FINDING):
        return
    incident_change_phase(
        incident_id=incident.pk, actor=manager, to=Phase.ACKNOWLEDGED, reason="Picked up from the queue"
    )
    incident_assign(incident_id=incident.pk, actor=manager, commander_id=manager.pk, assignee_ids=[responder.pk])
    if finding_id == CONTAINMENT_FINDING:
        incident_change_phase(incident_id=incident.pk, actor=responder, to=Phase.ANALYSIS)
        _part1_work(incident=incident, actor=responder)
        incident_change_phase(
            incident_id=incident.pk,
            actor=responder,
            to=Phase.CONTAINMENT,
            reason="Owner did not make the anonymous calls; removing anonymous bindings",
        )


def _part1_work(*, incident: Incident, actor: User) -> None:
    """Tick the Part 1 tasks and, if Part 1 has a decision that leads to Part 2, take it."""
    items = [item for item in checklist_items(incident_id=incident.pk) if item.step.part == 1]
    for item in [item for item in items if item.step.kind == PlaybookStep.Kind.TASK]:
        comment = next((text for word, text in TICK_COMMENTS if word in item.step.title.lower()), "")
        checklist_item_complete(item_id=item.pk, actor=actor, comment=comment)
    for item in items:
        to_part2 = [option for option in item.step.options if option.get("goto") == "part-2"]
        if item.step.kind == PlaybookStep.Kind.DECISION and to_part2:
            checklist_item_decide(
                item_id=item.pk,
                actor=actor,
                option_id=to_part2[0]["id"],
                comment="Cluster owner (payments-platform) did not make these calls; AS64511 is not ours.",
            )
            return
