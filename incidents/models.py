"""The case: Incident, its Finding(s), observables, timeline, war-room notes and evidence.

Models hold data and constraints only. Every state change goes through `incidents.services`, which
writes the TimelineEvent in the same transaction.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Severity(models.IntegerChoices):
    # Reference: GuardDuty UG "Severity levels of GuardDuty findings" (DOMAIN.md §1.3).
    LOW = 1, "Low"
    MEDIUM = 2, "Medium"
    HIGH = 3, "High"
    CRITICAL = 4, "Critical"

    @classmethod
    def from_guardduty(cls, value: float) -> "Severity":
        if value >= 9:
            return cls.CRITICAL
        if value >= 7:
            return cls.HIGH
        if value >= 4:
            return cls.MEDIUM
        return cls.LOW


class Priority(models.IntegerChoices):
    # Reference: TRIAGE_GUIDE.md severity matrix; response targets live in settings.
    P1 = 1, "P1"
    P2 = 2, "P2"
    P3 = 3, "P3"
    P4 = 4, "P4"


class Phase(models.TextChoices):
    NEW = "new", "New"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    ANALYSIS = "analysis", "Analysis"
    CONTAINMENT = "containment", "Containment"
    ERADICATION = "eradication", "Eradication"
    RECOVERY = "recovery", "Recovery"
    POST_INCIDENT = "post_incident", "Post-incident"
    CLOSED = "closed", "Closed"


class Resolution(models.TextChoices):
    NONE = "", "Unresolved"
    TRUE_POSITIVE = "true_positive", "True positive"
    AUTHORIZED = "authorized", "Authorized activity"
    FALSE_POSITIVE = "false_positive", "False positive"


def incident_reference(pk: int) -> str:
    """How people name a case: WP-142."""
    return f"WP-{pk}"


class Incident(models.Model):
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices, default=Severity.MEDIUM)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.P3)
    phase = models.CharField(max_length=20, choices=Phase.choices, default=Phase.NEW)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True, default="")
    finding_type = models.CharField(max_length=100, blank=True)
    playbook = models.ForeignKey("playbooks.Playbook", on_delete=models.PROTECT, related_name="incidents")

    # The user foreign keys that are empty on most rows have partial indexes (Meta), not full ones:
    # a full index takes an entry for every NULL too, on every ingested incident.
    commander = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="commanded_incidents",
        db_index=False,
    )
    assignees = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="assigned_incidents")
    # Need-to-know: a restricted case is visible only to managers, admins, its commander and assignees.
    restricted = models.BooleanField(default=False)

    cluster_name = models.CharField(max_length=100, blank=True)
    account_id = models.CharField(max_length=12, blank=True)
    region = models.CharField(max_length=30, blank=True)

    source = models.CharField(max_length=50, default="manual", help_text="guardduty, jira, manual, …")
    external_ref = models.CharField(max_length=200, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Last activity on the case.")
    # When the activity was first seen (finding first seen, or the report time); MTTA starts here.
    detected_at = models.DateTimeField()
    # One timestamp per phase, set when the phase is entered (the latest entry wins on re-entry).
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    analysis_at = models.DateTimeField(null=True, blank=True)
    containment_at = models.DateTimeField(null=True, blank=True)
    eradication_at = models.DateTimeField(null=True, blank=True)
    recovery_at = models.DateTimeField(null=True, blank=True)
    post_incident_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    reopened_at = models.DateTimeField(null=True, blank=True)
    # Acknowledgement deadline (detected_at + target for the priority) and whether it was met or stopped.
    # False while the case waits for acknowledgement, so the SLA sort is ascending in every column
    # and its keyset condition is one row comparison the index answers (P5).
    sla_due_at = models.DateTimeField()
    acknowledged = models.BooleanField(default=False)

    close_override_reason = models.TextField(blank=True)
    close_override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_ref"],
                condition=~Q(external_ref=""),
                name="incident_external_ref_unique_per_source",
            ),
        ]
        indexes = [
            # Keyset pagination: one index per sort order the list offers.
            models.Index(fields=["acknowledged", "sla_due_at", "id"], name="incident_sla_keyset_v2"),
            models.Index(fields=["-updated_at", "-id"], name="incident_activity_keyset"),
            models.Index(fields=["-created_at", "-id"], name="incident_created_keyset"),
            models.Index(fields=["-severity", "-id"], name="incident_severity_keyset"),
            models.Index(fields=["phase", "-updated_at", "-id"], name="incident_phase_activity"),
            models.Index(fields=["cluster_name"], name="incident_cluster"),
            # Dashboard response times: the cases detected in a period.
            models.Index(fields=["detected_at"], name="incident_detected"),
            models.Index(fields=["commander"], condition=Q(commander__isnull=False), name="incident_commander"),
            models.Index(
                fields=["close_override_by"], condition=Q(close_override_by__isnull=False), name="incident_override_by"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"

    @property
    def reference(self) -> str:
        return incident_reference(self.pk)


class Finding(models.Model):
    """A GuardDuty finding, upserted by (account, region, finding id) by `finding_ingest`.

    Holds the latest version received: GuardDuty folds later occurrences into the same id, raising
    `count` and moving `finding_updated_at` forward (DOMAIN.md §1.6). Every version received is kept
    in its InboundPayload.
    """

    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="findings")
    account_id = models.CharField(max_length=12)
    region = models.CharField(max_length=30)
    finding_id = models.CharField(max_length=100)
    finding_type = models.CharField(max_length=100)
    title = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    severity = models.FloatField()
    count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    finding_created_at = models.DateTimeField(null=True, blank=True)
    finding_updated_at = models.DateTimeField()
    is_sample = models.BooleanField(default=False)
    cluster_name = models.CharField(max_length=100, blank=True)
    cluster_arn = models.CharField(max_length=300, blank=True)
    raw = models.JSONField(default=dict, help_text="The latest version, wire (camelCase) spelling.")
    last_payload = models.ForeignKey(
        "InboundPayload", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Idempotency rests on this constraint, not on a lookup: concurrent deliveries of a new
            # finding race to insert, and exactly one wins.
            models.UniqueConstraint(fields=["account_id", "region", "finding_id"], name="finding_unique_key"),
        ]
        indexes = [models.Index(fields=["cluster_name", "finding_type"], name="finding_cluster_type")]

    def __str__(self) -> str:
        return f"{self.finding_type} {self.finding_id}"


class InboundPayload(models.Model):
    """Every inbound body, stored before it is parsed, whatever happens next."""

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        SQS = "sqs", "EventBridge → SQS"
        POLLER = "poller", "API poller"
        IMPORT = "import", "File import"
        DEMO = "demo", "Demo data"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received, not processed yet"
        ACCEPTED = "accepted", "Accepted"
        PARTIAL = "partial", "Partly rejected"
        REJECTED = "rejected", "Rejected"

    source = models.CharField(max_length=10, choices=Source.choices)
    received_at = models.DateTimeField(auto_now_add=True)
    body = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    meta = models.JSONField(default=dict, blank=True, help_text="File name, message id, sender address …")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    counts = models.JSONField(default=dict, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "-received_at"], name="payload_status_recent")]

    def __str__(self) -> str:
        return f"{self.source} payload {self.pk} ({self.status})"


class QuarantinedDocument(models.Model):
    """A payload, or one document in it, that could not be ingested, with the reason."""

    payload = models.ForeignKey(InboundPayload, on_delete=models.CASCADE, related_name="quarantined")
    position = models.PositiveIntegerField(null=True, blank=True, help_text="Index in the payload; empty: all of it.")
    document = models.JSONField(null=True, blank=True)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "id"]

    def __str__(self) -> str:
        where = f"#{self.position}" if self.position is not None else "payload"
        return f"{where} of payload {self.payload_id}: {self.reason[:80]}"


class Observable(models.Model):
    """A fact shared across incidents (an IP, an ASN, a Kubernetes user …)."""

    kind = models.CharField(max_length=30)
    value = models.CharField(max_length=500)
    incidents = models.ManyToManyField(Incident, related_name="observables", blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="observable_unique")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class TimelineEvent(models.Model):
    class Kind(models.TextChoices):
        CREATED = "created", "Incident opened"
        PHASE = "phase", "Phase changed"
        FIELD = "field", "Field changed"
        ASSIGNMENT = "assignment", "Assignment"
        CHECKLIST = "checklist", "Checklist"
        DECISION = "decision", "Decision"
        NOTE = "note", "Note"
        EVIDENCE = "evidence", "Evidence"
        FINDING = "finding", "Finding"
        ACTION = "action", "Action"
        ANALYST = "analyst", "Analyst event"
        SLA = "sla", "SLA"
        REVIEW = "review", "Post-incident review"

    # Indexed by the keyset indexes below, which lead with the incident (a plain FK index would be a
    # third entry per row on the busiest table); the actor only where there is one (system events have none).
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="timeline", db_index=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # When it happened (an analyst may back-date), and when we wrote it down.
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    summary = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["incident", "occurred_at", "id"], name="timeline_incident_keyset"),
            models.Index(fields=["incident", "kind", "occurred_at", "id"], name="timeline_incident_kind"),
            models.Index(fields=["actor"], condition=Q(actor__isnull=False), name="timeline_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.kind} {self.summary}"


class Note(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField()
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"note {self.pk} v{self.version} on {self.incident_id}"


class NoteRevision(models.Model):
    """Every saved version of a note, the first included: edits keep their history."""

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    body = models.TextField()
    editor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["note", "version"], name="note_revision_unique")]
        ordering = ["note", "version"]

    def __str__(self) -> str:
        return f"note {self.note_id} v{self.version}"


def evidence_upload_to(instance: "Evidence", filename: str) -> str:
    # Server-side names only (ASVS 5.3.2): the client's name is kept as data, never as a path.
    return f"evidence/{instance.incident_id}/{uuid.uuid4().hex}"


class Evidence(models.Model):
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="evidence")
    file = models.FileField(upload_to=evidence_upload_to, max_length=300)
    original_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    description = models.TextField(blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Where acquired evidence came from (PERF-REL-SEC.md B4 item 3): for a query result the engine,
    # exact SQL, parameters, execution id, workgroup, database, table, window, data scanned, row count.
    # Empty for uploads.
    provenance = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name_plural = "evidence"

    def __str__(self) -> str:
        return f"{self.original_name} ({self.sha256[:12]})"


class CustodyEvent(models.Model):
    class Action(models.TextChoices):
        ACQUIRED = "acquired", "Acquired"
        VIEWED = "viewed", "Viewed"
        DOWNLOADED = "downloaded", "Downloaded"
        EXPORTED = "exported", "Exported"
        VERIFIED = "verified", "Hash verified"
        VERIFY_FAILED = "verify_failed", "Hash mismatch"

    evidence = models.ForeignKey(Evidence, on_delete=models.PROTECT, related_name="custody")
    action = models.CharField(max_length=20, choices=Action.choices)
    # PROTECT: the log is append-only, so a user with custody history is deactivated, never deleted.
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    # Set before the insert (not auto_now_add): the chain link covers it.
    at = models.DateTimeField(default=timezone.now)
    source_address = models.GenericIPAddressField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, help_text="The hash observed at the time of the event.")
    detail = models.CharField(max_length=300, blank=True)
    # The custody hash chain (see AuditEvent): the previous event's link and this one's.
    prev_hash = models.CharField(max_length=64, blank=True)
    chain_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action} {self.evidence_id} at {self.at:%Y-%m-%d %H:%M:%S}"


# --- Managers and the post-incident review (seed Part 5) --------------------------------------------


class SlaBreach(models.Model):
    """One acknowledgement deadline that passed unmet, and when it was notified.

    Unique per (incident, deadline): the beat sweep may run twice or concurrently, and a breach is
    notified once. A changed priority moves the deadline, and a new deadline missed is a new breach.
    """

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="sla_breaches")
    due_at = models.DateTimeField()
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    notified_at = models.DateTimeField(auto_now_add=True)
    recipients = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "due_at"], name="sla_breach_once_per_deadline")]

    def __str__(self) -> str:
        return f"{incident_reference(self.incident_id)} missed {self.due_at:%Y-%m-%d %H:%M}"


class LessonsLearned(models.Model):
    """The post-incident review of one case (seed Part 5, "sharpen the saw")."""

    incident = models.OneToOneField(Incident, on_delete=models.CASCADE, related_name="lessons")
    what_happened = models.TextField(blank=True)
    root_cause = models.TextField(blank=True)
    what_worked = models.TextField(blank=True)
    what_did_not = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "lessons learned"

    def __str__(self) -> str:
        return f"lessons learned for {incident_reference(self.incident_id)}"


class FollowUpAction(models.Model):
    """An improvement agreed in the review, with an owner and a due date."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="follow_ups")
    description = models.CharField(max_length=500)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    due_on = models.DateField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["incident", "due_on", "id"]

    def __str__(self) -> str:
        return self.description


class AuditEvent(models.Model):
    """One state-changing request (or system change), append-only and hash-chained.

    The database refuses UPDATE and DELETE on this table (a trigger, migration 0006), and each row's
    HMAC covers the previous row's, so `manage.py verify_audit` finds an edited or removed row even
    when someone with owner rights got past the trigger.
    """

    at = models.DateTimeField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    actor_name = models.CharField(max_length=150, blank=True)
    via = models.CharField(max_length=20, help_text="session, token, anonymous or system")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status_code = models.PositiveSmallIntegerField(null=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    chain_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.method} {self.path} → {self.status_code}"


class ChainHead(models.Model):
    """The last link of each hash chain ("audit", "custody"): a removed tail shows as a mismatch here."""

    name = models.CharField(max_length=20, primary_key=True)
    last_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"{self.name} chain at #{self.last_id}"
