"""Bench data: 100,000 incidents and one incident with 10,000 timeline events.

Loaded with PostgreSQL `COPY ... FROM STDIN` through Django's connection, not through the services
(which would take hours) and not with `bulk_create` (its `auto_now` fields would stamp every row with
the load time, and the list's activity and SLA columns need varied values). Deterministic (seeded
random) and idempotent: a database that already holds the rows is left alone.
"""

import io
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from incidents.models import Incident, Note, Observable, Phase, Priority, Resolution, Severity, TimelineEvent
from incidents.phases import PHASE_TIMESTAMP
from playbooks.models import ChecklistItem, Playbook, PlaybookStep

INCIDENTS = 100_000
BIG_EVENTS = 10_000
BATCH = 10_000
BIG_SOURCE, BIG_REF = "bench", "big-timeline"
# The big case also carries what a worked case has on its page: shared observables and notes.
BIG_OBSERVABLES = (
    ("ip", "198.51.100.23"),
    ("ip", "203.0.113.77"),
    ("asn", "AS64511"),
    ("k8s_user", "system:anonymous"),
    ("k8s_group", "system:unauthenticated"),
    ("user_agent", "kubectl/v1.29.2 (linux/amd64)"),
    ("cluster", "payments-prod"),
    ("account", "210987654321"),
)
BIG_NOTES = 5
STAFF = 25  # responders who command cases and act on the timeline

# (finding type, title) pairs GuardDuty EKS protection and runtime monitoring actually raise.
FINDINGS = (
    ("Policy:Kubernetes/AnonymousAccessGranted", "Anonymous access granted in {cluster}"),
    ("Discovery:Kubernetes/SuccessfulAnonymousAccess", "Anonymous API discovery succeeded on {cluster}"),
    ("Discovery:Kubernetes/MaliciousIPCaller", "API discovery from a known malicious IP on {cluster}"),
    ("Discovery:Kubernetes/TorIPCaller", "API discovery from a Tor exit node on {cluster}"),
    ("Execution:Kubernetes/ExecInKubeSystemPod", "kubectl exec into a kube-system pod on {cluster}"),
    ("PrivilegeEscalation:Kubernetes/PrivilegedContainer", "Privileged container launched in {cluster}"),
    ("Persistence:Kubernetes/ContainerWithSensitiveMount", "Container with a sensitive host mount in {cluster}"),
    ("Policy:Kubernetes/ExposedDashboard", "Kubernetes dashboard exposed to the internet on {cluster}"),
    ("Policy:Kubernetes/AdminAccessToDefaultServiceAccount", "Default service account bound to admin on {cluster}"),
    ("CredentialAccess:Kubernetes/MaliciousIPCaller", "Secrets listed from a known malicious IP on {cluster}"),
    ("Impact:Kubernetes/MaliciousIPCaller", "Workload changes from a known malicious IP on {cluster}"),
    ("Execution:Runtime/NewBinaryExecuted", "Newly created binary executed in a pod on {cluster}"),
    ("CryptoCurrency:Runtime/BitcoinTool.B", "Cryptocurrency miner activity in a pod on {cluster}"),
    ("Backdoor:Runtime/C&CActivity.B", "Command-and-control traffic from a pod on {cluster}"),
    ("DefenseEvasion:Runtime/ProcessInjection.Proc", "Process injection detected in {cluster}"),
    ("UnauthorizedAccess:EC2/SSHBruteForce", "SSH brute force against a node of {cluster}"),
)
CLUSTERS = [
    f"{team}-{env}"
    for team in ("payments", "checkout", "search", "identity", "ledger", "ingest", "ml", "web", "data", "platform")
    for env in ("prod", "staging", "dev")
] + ["shared-tools", "ci-runners"]
ACCOUNTS = [f"{210987654321 + 1111111 * i:012d}" for i in range(12)]
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-2")
# Most of a long-lived queue is still open (GuardDuty keeps raising faster than cases close), which
# also leaves ~65k open rows: enough for a page 1,000 pages deep at 50 per page in the default view.
PHASE_WEIGHTS = {
    Phase.NEW: 15,
    Phase.ACKNOWLEDGED: 10,
    Phase.ANALYSIS: 12,
    Phase.CONTAINMENT: 8,
    Phase.ERADICATION: 6,
    Phase.RECOVERY: 5,
    Phase.POST_INCIDENT: 9,
    Phase.CLOSED: 35,
}
PHASE_ORDER = [
    Phase.ACKNOWLEDGED,
    Phase.ANALYSIS,
    Phase.CONTAINMENT,
    Phase.ERADICATION,
    Phase.RECOVERY,
    Phase.POST_INCIDENT,
    Phase.CLOSED,
]
PHASE_STAMP = PHASE_TIMESTAMP  # the services' own map of phase → timestamp column
INCIDENT_COLUMNS = (
    "title",
    "summary",
    "severity",
    "priority",
    "phase",
    "resolution",
    "finding_type",
    "playbook_id",
    "commander_id",
    "restricted",
    "cluster_name",
    "account_id",
    "region",
    "source",
    "external_ref",
    "created_at",
    "updated_at",
    "detected_at",
    "acknowledged_at",
    "analysis_at",
    "containment_at",
    "eradication_at",
    "recovery_at",
    "post_incident_at",
    "closed_at",
    "reopened_at",
    "sla_due_at",
    "acknowledged",
    "close_override_reason",
    "close_override_by_id",
)
EVENT_COLUMNS = ("incident_id", "kind", "actor_id", "occurred_at", "recorded_at", "summary", "data")
EVENT_KINDS = (
    (TimelineEvent.Kind.NOTE, 30, "Note added: {what}"),
    (TimelineEvent.Kind.CHECKLIST, 20, "Checklist step ticked: {what}"),
    (TimelineEvent.Kind.FINDING, 20, "GuardDuty finding updated, count now {n}"),
    (TimelineEvent.Kind.ANALYST, 10, "Analyst event: {what}"),
    (TimelineEvent.Kind.EVIDENCE, 6, "Evidence uploaded: audit-log-{n}.json.gz"),
    (TimelineEvent.Kind.ACTION, 6, "Action run: rbac.inspect ({what})"),
    (TimelineEvent.Kind.FIELD, 5, "Severity changed from Medium to High"),
    (TimelineEvent.Kind.ASSIGNMENT, 2, "Commander set, responder assigned"),
    (TimelineEvent.Kind.DECISION, 1, "Decision taken: contain the workload"),
)
WHATS = (
    "anonymous binding system:anonymous removed",
    "first call from 198.51.100.23 (AS64511)",
    "pod list requests from an unknown user agent",
    "kube-audit logs pulled for the window",
    "cluster owner confirmed no change was planned",
    "node i-0a1b2c3d4e5f drained and cordoned",
    "secret rotation requested from platform on-call",
    "Athena query over CloudTrail finished",
)


def _copy_text(value: Any) -> str:
    """One field in PostgreSQL COPY text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    text = value if isinstance(value, str) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _copy(table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY rows in batches of BATCH through the Django connection (psycopg2's copy_expert)."""
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    total = 0
    buffer = io.StringIO()
    pending = 0

    def flush() -> None:
        buffer.seek(0)
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(sql, buffer)
        buffer.seek(0)
        buffer.truncate()

    for row in rows:
        buffer.write("\t".join(_copy_text(v) for v in row))
        buffer.write("\n")
        pending += 1
        total += 1
        if pending == BATCH:
            flush()
            pending = 0
    if pending:
        flush()
    return total


def _playbook() -> Playbook:
    try:
        call_command("sync_playbooks", verbosity=0, stdout=io.StringIO())
    except Exception as exc:  # a library file edited without a version bump must not stop the bench
        if not Playbook.objects.exists():
            raise
        print(f"  sync_playbooks failed ({exc}); using the playbooks already loaded")
    return Playbook.objects.filter(is_fallback=True).order_by("-version").first() or Playbook.objects.first()


def _staff() -> list[int]:
    User = get_user_model()
    ids = []
    for i in range(STAFF):
        user, created = User.objects.get_or_create(username=f"bench-responder-{i:02d}")
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        ids.append(user.pk)
    return ids


def _incident_rows(rng: random.Random, playbook_id: int, staff: list[int], now: datetime) -> Iterable[tuple]:
    phases = list(PHASE_WEIGHTS)
    weights = list(PHASE_WEIGHTS.values())
    targets = settings.WATCHPOST_ACK_TARGET_MINUTES
    resolutions = [Resolution.TRUE_POSITIVE, Resolution.AUTHORIZED, Resolution.FALSE_POSITIVE]
    for _ in range(INCIDENTS):
        phase = rng.choices(phases, weights)[0]
        finding_type, title = FINDINGS[rng.randrange(len(FINDINGS))]
        cluster = "" if rng.random() < 0.04 else rng.choice(CLUSTERS)
        severity = rng.choices(list(Severity.values), [20, 40, 30, 10])[0]
        priority = max(Priority.P1, min(Priority.P4, 5 - severity + rng.choice((-1, 0, 0, 0, 1))))
        # New cases are recent; the rest spread over two years.
        age = timedelta(minutes=rng.uniform(5, 60 * 24 * (14 if phase == Phase.NEW else 730)))
        detected = now - age
        created = min(now, detected + timedelta(seconds=rng.uniform(30, 1800)))
        sla_due = detected + timedelta(minutes=targets[priority])
        stamps: dict[str, datetime | None] = dict.fromkeys(PHASE_STAMP.values())
        last = created
        if phase != Phase.NEW:
            for step in PHASE_ORDER[: PHASE_ORDER.index(phase) + 1]:
                # Acknowledgement mostly within target, sometimes late; later phases hours to days apart.
                if step == Phase.ACKNOWLEDGED:
                    gap = timedelta(minutes=rng.expovariate(1 / (targets[priority] * 0.6)))
                else:
                    gap = timedelta(hours=rng.expovariate(1 / 20))
                last = min(now, last + gap)
                stamps[PHASE_STAMP[step]] = last
        updated = min(now, last + timedelta(minutes=rng.expovariate(1 / 240)))
        commander = rng.choice(staff) if phase != Phase.NEW and rng.random() < 0.7 else None
        guardduty = rng.random() < 0.85
        cluster_label = cluster or "an unnamed cluster"
        yield (
            title.format(cluster=cluster_label),
            f"GuardDuty raised {finding_type} for {cluster_label}." if guardduty else "Reported by a responder.",
            severity,
            priority,
            phase,
            rng.choice(resolutions) if phase == Phase.CLOSED else "",
            finding_type if guardduty else "",
            playbook_id,
            commander,
            rng.random() < 0.03,
            cluster,
            rng.choice(ACCOUNTS),
            rng.choice(REGIONS),
            "guardduty" if guardduty else "manual",
            f"{rng.getrandbits(128):032x}" if guardduty else "",
            created,
            updated,
            detected,
            *(stamps[field] for field in PHASE_STAMP.values()),
            None,
            sla_due,
            phase != Phase.NEW,
            "",
            None,
        )


def _event_rows(rng: random.Random, incident_id: int, staff: list[int], start: datetime) -> Iterable[tuple]:
    kinds = [kind for kind, _, _ in EVENT_KINDS]
    weights = [weight for _, weight, _ in EVENT_KINDS]
    texts = {kind: text for kind, _, text in EVENT_KINDS}
    at = start
    for n in range(BIG_EVENTS):
        # Some events share a timestamp (bulk imports, back-dated entries): the id breaks the tie.
        if rng.random() > 0.1:
            at += timedelta(seconds=rng.expovariate(1 / 240))
        kind = rng.choices(kinds, weights)[0]
        summary = texts[kind].format(what=rng.choice(WHATS), n=n)
        actor = None if kind == TimelineEvent.Kind.FINDING else rng.choice(staff)
        data = {"n": n, "source": "bench"} if kind != TimelineEvent.Kind.FIELD else {"from": 2, "to": 3}
        yield (incident_id, kind, actor, at, at + timedelta(seconds=rng.uniform(0, 5)), summary, json.dumps(data))


def _big_incident(playbook: Playbook, staff: list[int], now: datetime) -> Incident:
    incident = Incident.objects.filter(source=BIG_SOURCE, external_ref=BIG_REF).first()
    if incident is None:
        detected = now - timedelta(days=40)
        incident = Incident.objects.create(
            title="Anonymous access and cryptominer on payments-prod (long-running case)",
            summary="A long-running case with 10,000 timeline events, for the timeline benchmark.",
            severity=Severity.CRITICAL,
            priority=Priority.P1,
            phase=Phase.CONTAINMENT,
            finding_type="Discovery:Kubernetes/SuccessfulAnonymousAccess",
            playbook=playbook,
            commander_id=staff[0],
            cluster_name="payments-prod",
            account_id=ACCOUNTS[0],
            region="eu-west-1",
            source=BIG_SOURCE,
            external_ref=BIG_REF,
            detected_at=detected,
            acknowledged_at=detected + timedelta(minutes=9),
            analysis_at=detected + timedelta(hours=1),
            containment_at=detected + timedelta(hours=5),
            sla_due_at=detected + timedelta(minutes=settings.WATCHPOST_ACK_TARGET_MINUTES[Priority.P1]),
            acknowledged=True,
        )
        incident.assignees.set(staff[1:4])
        steps = PlaybookStep.objects.filter(playbook=playbook).order_by("position")
        ChecklistItem.objects.bulk_create(
            ChecklistItem(incident=incident, step=step, position=step.position) for step in steps
        )
    if not incident.observables.exists():
        # Each observable also appears on a few other cases, so "related incidents" has rows to show.
        others = list(Incident.objects.exclude(pk=incident.pk).order_by("pk").values_list("pk", flat=True)[:40])
        for i, (kind, value) in enumerate(BIG_OBSERVABLES):
            observable, _ = Observable.objects.get_or_create(kind=kind, value=value)
            observable.incidents.add(incident, *others[i * 5 : i * 5 + 3])
        Note.objects.bulk_create(
            Note(incident=incident, author_id=staff[i % len(staff)], body=f"Update {i + 1}: {WHATS[i % len(WHATS)]}.")
            for i in range(BIG_NOTES)
        )
    return incident


def seed(log: Callable[[str], None] = print) -> dict[str, Any]:
    """Load the bench data when missing; returns the big incident's id and what was done."""
    started = time.monotonic()
    rng = random.Random(20240611)  # noqa: S311 - reproducible data, not security
    now = timezone.now()
    playbook = _playbook()
    staff = _staff()
    loaded: list[str] = []
    with transaction.atomic():
        existing = Incident.objects.exclude(source=BIG_SOURCE).count()
        if existing < INCIDENTS:
            if existing:
                log(f"  {existing} incidents present, fewer than {INCIDENTS}: reloading all incidents")
                # Deleting through the ORM would cascade row by row; TRUNCATE is instant.
                with connection.cursor() as cursor:
                    cursor.execute(
                        f"TRUNCATE {Incident._meta.db_table}, {Incident.assignees.through._meta.db_table}, "
                        f"{TimelineEvent._meta.db_table}, {ChecklistItem._meta.db_table} CASCADE"
                    )
            count = _copy(Incident._meta.db_table, INCIDENT_COLUMNS, _incident_rows(rng, playbook.pk, staff, now))
            loaded.append(f"{count} incidents")
        big = _big_incident(playbook, staff, now)
        events = TimelineEvent.objects.filter(incident=big).count()
        if events != BIG_EVENTS:
            TimelineEvent.objects.filter(incident=big).delete()
            count = _copy(TimelineEvent._meta.db_table, EVENT_COLUMNS, _event_rows(rng, big.pk, staff, big.detected_at))
            loaded.append(f"{count} timeline events")
    if loaded:
        # Fresh statistics and visibility map, as a long-running database would have.
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM ANALYZE {Incident._meta.db_table}")
            cursor.execute(f"VACUUM ANALYZE {TimelineEvent._meta.db_table}")
        log(f"  seeded {', '.join(loaded)} in {time.monotonic() - started:.1f} s")
    else:
        log(f"  already seeded ({existing} incidents, {events} events on the big incident)")
    return {"big_incident_id": big.pk, "seeded": loaded, "seconds": round(time.monotonic() - started, 1)}
