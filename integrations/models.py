"""AWS accounts the GuardDuty poller reads, and one cursor per (account, region, detector)."""

import json
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

REGION_PATTERN = r"[a-z]{2}(-[a-z]+)+-\d+"
_region = RegexValidator(rf"^{REGION_PATTERN}$", "Not an AWS region name, e.g. eu-west-1.")


def regions_parse(value: str) -> list[str]:
    """`eu-west-1, us-east-1` or `["eu-west-1", "us-east-1"]` → the region names, in order, once each."""
    text = (value or "").strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"Regions: invalid JSON list ({exc.msg}).") from exc
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValidationError("Regions: a JSON list must hold region names only.")
    else:
        items = text.split(",")
    names = list(dict.fromkeys(item.strip() for item in items if item.strip()))
    for name in names:
        _region(name)
    return names


def validate_regions(value: str) -> None:
    if not regions_parse(value):
        raise ValidationError("Name at least one region.")


def validate_detector_ids(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValidationError('Detector ids: a JSON object {"<region>": "<detector id>"}.')
    for region, detector_id in value.items():
        _region(region)
        if not isinstance(detector_id, str) or not detector_id.isalnum():
            raise ValidationError(f"Detector id for {region}: expected letters and digits, got {detector_id!r}.")


class AwsAccount(models.Model):
    """One AWS account whose GuardDuty findings are polled, in each of its regions."""

    name = models.CharField(max_length=100, unique=True)
    account_id = models.CharField(
        max_length=12, validators=[RegexValidator(r"^\d{12}$", "An AWS account id is 12 digits.")]
    )
    role_arn = models.CharField(
        max_length=2048,
        blank=True,
        validators=[RegexValidator(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$", "Not an IAM role ARN.")],
        help_text="Role to assume (sts:AssumeRole). Empty: the worker's default credential chain.",
    )
    external_id = models.CharField(
        max_length=1224,
        blank=True,
        validators=[RegexValidator(r"^[\w+=,.@:/-]{2,1224}$", "2–1224 letters, digits or + = , . @ : / - _")],
        help_text="ExternalId the role's trust policy requires (the confused-deputy guard).",
    )
    regions = models.CharField(
        max_length=500,
        validators=[validate_regions],
        help_text='Comma-separated ("eu-west-1, us-east-1") or a JSON list.',
    )
    detector_ids = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_detector_ids],
        help_text='{"<region>": "<detector id>"}; a region left out is discovered with ListDetectors.',
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "AWS account"

    def __str__(self) -> str:
        return f"{self.name} ({self.account_id})"

    def clean(self) -> None:
        if self.role_arn and not self.external_id:
            raise ValidationError({"external_id": "Set the ExternalId the role's trust policy requires."})
        if self.role_arn and f"::{self.account_id}:" not in self.role_arn:
            raise ValidationError({"role_arn": "The role must belong to this account."})

    @property
    def region_list(self) -> list[str]:
        try:
            return regions_parse(self.regions)
        except ValidationError:
            return []


class PollCursor(models.Model):
    """How far the poller has read one detector: the greatest `updatedAt` of a committed page."""

    account = models.ForeignKey(AwsAccount, on_delete=models.CASCADE, related_name="cursors")
    region = models.CharField(max_length=30)
    detector_id = models.CharField(max_length=300)
    updated_at_ms = models.BigIntegerField(
        default=0, help_text="Epoch milliseconds; the next run asks for updatedAt ≥ this. 0: everything kept."
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["account__name", "region", "detector_id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "region", "detector_id"], name="poll_cursor_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.account.name} {self.region} {self.detector_id}"


class ApiToken(models.Model):
    """A scoped API token of one service account. Only the SHA-256 of the token is stored."""

    SCOPES = (
        "incidents:read",
        "incidents:write",
        "evidence:read",
        "evidence:write",
        "findings:write",
        "remediation:execute",
    )

    name = models.CharField(max_length=100, help_text="What uses it, e.g. 'Jira production'.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    key_id = models.CharField(max_length=8, unique=True, help_text="The visible prefix: wp_<key_id>_…")
    token_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (wp_{self.key_id}_…)"


class Cluster(models.Model):
    """A Kubernetes cluster Watchpost may inspect and remediate: EKS (DescribeCluster + STS token) or a kubeconfig."""

    class Via(models.TextChoices):
        EKS = "eks", "EKS (DescribeCluster and an STS token)"
        KUBECONFIG = "kubeconfig", "Kubeconfig file and context"

    name = models.CharField(
        max_length=100, unique=True, help_text="The EKS cluster name, as GuardDuty findings report it."
    )
    account = models.ForeignKey(
        AwsAccount,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="clusters",
        help_text="EKS: the account whose credentials (and role) reach the cluster.",
    )
    region = models.CharField(max_length=30, blank=True, validators=[_region])
    via = models.CharField("connect via", max_length=10, choices=Via.choices, default=Via.EKS)
    kubeconfig_path = models.CharField(
        max_length=500, blank=True, help_text="Kubeconfig: a file path on the worker (it holds credentials)."
    )
    kubeconfig_context = models.CharField(max_length=200, blank=True, help_text="Empty: the current context.")
    is_sandbox = models.BooleanField(
        default=False, help_text="The local Watchpost sandbox API server (make run, demos): not a real cluster."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} (sandbox)" if self.is_sandbox else self.name

    def clean(self) -> None:
        if self.via == self.Via.EKS and not (self.account_id and self.region):
            raise ValidationError("An EKS cluster needs its AWS account and region.")
        if self.via == self.Via.KUBECONFIG and not self.kubeconfig_path:
            raise ValidationError({"kubeconfig_path": "Give the kubeconfig file's path."})


def webhook_secret_new() -> str:
    return secrets.token_urlsafe(32)


def validate_event_types(value: Any) -> None:
    if not isinstance(value, list) or not value or not set(value) <= set(WebhookSubscription.EVENT_TYPES):
        raise ValidationError(f"Choose one or more of: {', '.join(WebhookSubscription.EVENT_TYPES)}.")


class WebhookSubscription(models.Model):
    """A receiver of signed event deliveries (a Jira automation rule, a ServiceNow scripted REST API …)."""

    EVENT_TYPES = (
        "incident.created",
        "incident.updated",
        "incident.phase_changed",
        "checklist.item_completed",
        "note.added",
        "evidence.added",
        "remediation.applied",
        "incident.closed",
        "sla.breached",
    )

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(
        max_length=2000,
        help_text="https://… The address must resolve to a public IP unless "
        "allow-listed in WATCHPOST_WEBHOOK_ALLOWED_NETWORKS.",
    )
    secret = models.CharField(max_length=128, default=webhook_secret_new, help_text="Signs every delivery.")
    previous_secret = models.CharField(max_length=128, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    event_types = models.JSONField(default=list, validators=[validate_event_types])
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    """One event for one subscription: the exact body sent, and where its delivery stands."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        REJECTED = "rejected", "Rejected by the receiver (4xx, not retried)"
        DEAD = "dead", "Dead letter (attempts exhausted)"

    uuid = models.UUIDField(unique=True, editable=False)
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=40)
    body = models.TextField(help_text="The JSON body, byte for byte as signed.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts since created or last replayed.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["subscription", "-created_at"], name="delivery_subscription_recent"),
            models.Index(fields=["status", "next_attempt_at"], name="delivery_status_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.subscription_id} ({self.status})"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["delivery", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error[:40]}"
