"""Playbooks as data, and the per-incident checklist made from a pinned playbook version.

A Playbook row is one (slug, version) of a YAML file in `playbooks/library/`. Rows are never edited
in place once an incident uses them: a changed file must carry a new version, and open incidents
keep pointing at the version they were opened with.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Playbook(models.Model):
    slug = models.SlugField(max_length=100)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # GuardDuty finding types this playbook handles; the generic playbook has `is_fallback`.
    finding_types = models.JSONField(default=list)
    is_fallback = models.BooleanField(default=False)
    upstream_repository = models.CharField(max_length=200, blank=True)
    upstream_path = models.CharField(max_length=300, blank=True)
    upstream_commit = models.CharField(max_length=40, blank=True)
    # The validated document, so the viewer can show fixes and parts exactly as loaded.
    document = models.JSONField(default=dict)
    source_file = models.CharField(max_length=200)
    source_sha256 = models.CharField(max_length=64)
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["slug", "version"], name="playbook_slug_version_unique")]
        ordering = ["slug", "-version"]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"


class PlaybookStep(models.Model):
    class Kind(models.TextChoices):
        TASK = "task", "Task"
        DECISION = "decision", "Decision"

    playbook = models.ForeignKey(Playbook, on_delete=models.CASCADE, related_name="steps")
    step_id = models.SlugField(max_length=100)
    part = models.PositiveSmallIntegerField()
    part_title = models.CharField(max_length=200)
    position = models.PositiveIntegerField(help_text="Order of the step across the whole playbook.")
    number = models.CharField(max_length=20, blank=True, help_text="The step's number in the source text.")
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True, help_text="Markdown.")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TASK)
    mandatory = models.BooleanField(default=True)
    action = models.CharField(max_length=50, blank=True, help_text="Automation hook, e.g. rbac.inspect.")
    commands = models.JSONField(default=list, blank=True)
    queries = models.JSONField(default=list, blank=True)
    options = models.JSONField(default=list, blank=True, help_text="Decision options.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["playbook", "step_id"], name="playbookstep_unique_id")]
        ordering = ["playbook", "position"]

    def __str__(self) -> str:
        return f"{self.playbook.slug} v{self.playbook.version} · {self.step_id}"


class ChecklistItem(models.Model):
    """One step of the pinned playbook, as worked on one incident."""

    class Status(models.TextChoices):
        TODO = "todo", "To do"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"
        NOT_APPLICABLE = "na", "Not applicable"

    # Every new incident writes one row per step, so each index here costs an entry per step. The
    # incident is indexed by the unique constraint and the position index (both lead with it); the
    # user and decision links only where they are set (partial indexes, Meta).
    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="checklist", db_index=False
    )
    step = models.ForeignKey(PlaybookStep, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.TODO)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    done_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    decision = models.CharField(max_length=50, blank=True, help_text="Chosen option id on a decision step.")
    # Set when a decision elsewhere made this item not applicable, so a changed decision can undo it.
    na_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "step"], name="checklist_item_unique_step")]
        indexes = [
            models.Index(fields=["incident", "position"], name="checklist_incident_pos"),
            models.Index(fields=["done_by"], condition=Q(done_by__isnull=False), name="checklist_done_by"),
            models.Index(fields=["na_by"], condition=Q(na_by__isnull=False), name="checklist_na_by"),
        ]
        ordering = ["incident", "position"]

    def __str__(self) -> str:
        return f"{self.incident_id} · {self.step_id} · {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.TODO


class ActionRun(models.Model):
    """One launch of a playbook step's automation (rbac.inspect, rbac.remediate, query.run, …).

    The row is the unit of work a Celery task claims (a conditional UPDATE), so a redelivered or
    duplicated task never acts twice at the same time; handlers make their external change
    declarative, so a run that is re-queued after a crash converges.
    """

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Awaiting approval"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        REJECTED = "rejected", "Rejected"

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="action_runs")
    checklist_item = models.ForeignKey(
        ChecklistItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="action_runs"
    )
    action = models.CharField(max_length=50)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    # What the handler returned (a summary; big outputs go to evidence) and its live progress.
    result = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    # A rollback points at the remediation it undoes; a re-run points at the run it verifies.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["incident", "-created_at"], name="actionrun_incident_recent"),
            models.Index(fields=["status", "claimed_at"], name="actionrun_status_claimed"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} #{self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.PROPOSED, self.Status.QUEUED, self.Status.RUNNING)
