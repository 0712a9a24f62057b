"""Webhook subscriptions and their delivery log in the admin: rotate a secret, replay a delivery."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from integrations.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from integrations.ticketing.ssrf import DestinationRefusedError, destination_check
from integrations.webhooks import webhook_delivery_replay, webhook_secret_rotate


class WebhookSubscriptionForm(forms.ModelForm):  # type: ignore[type-arg]
    url = forms.URLField(max_length=2000, assume_scheme="https", help_text=WebhookSubscription.url.field.help_text)
    event_types = forms.MultipleChoiceField(
        choices=[(e, e) for e in WebhookSubscription.EVENT_TYPES], widget=forms.CheckboxSelectMultiple
    )

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        try:
            destination_check(url, allowed_networks=settings.WATCHPOST_WEBHOOK_ALLOWED_NETWORKS)
        except DestinationRefusedError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url

    class Meta:
        model = WebhookSubscription
        fields = ["name", "url", "event_types", "active"]


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = WebhookSubscriptionForm
    list_display = ["name", "url", "active", "events", "delivery_log"]
    readonly_fields = ["secret", "previous_secret_expires_at", "created_at", "delivery_log", "recent_deliveries"]
    actions = ["rotate_secret"]
    RECENT = 25

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        base = ["name", "url", "event_types", "active"]
        if obj is None:
            return base
        return [*base, "secret", "previous_secret_expires_at", "created_at", "delivery_log", "recent_deliveries"]

    @admin.display(description="latest deliveries")
    def recent_deliveries(self, obj: WebhookSubscription) -> str:
        """The delivery log of this subscription, newest first (the link above has all of them)."""
        rows = obj.deliveries.order_by("-created_at", "-id")[: self.RECENT]
        body = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:integrations_webhookdelivery_change", args=[d.pk]),
                    f"{d.created_at:%Y-%m-%d %H:%M:%S}",
                    d.event_type,
                    d.get_status_display(),
                    d.attempts,
                    d.last_status_code or "—",
                    d.last_error[:120],
                )
                for d in rows
            ),
        )
        head = "<tr><th>created</th><th>event</th><th>status</th><th>attempts</th><th>HTTP</th><th>last error</th></tr>"
        return format_html("<table>{}{}</table>", mark_safe(head), body) if rows else "none yet"  # noqa: S308

    @admin.display(description="events")
    def events(self, obj: WebhookSubscription) -> str:
        return ", ".join(obj.event_types)

    @admin.display(description="delivery log")
    def delivery_log(self, obj: WebhookSubscription) -> str:
        url = reverse("admin:integrations_webhookdelivery_changelist") + f"?subscription__id__exact={obj.pk}"
        return format_html('<a href="{}">all deliveries</a>', url)

    @admin.action(description="Rotate the secret (the old one keeps signing during the overlap)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        for subscription in queryset:
            secret = webhook_secret_rotate(subscription_id=subscription.pk)
            messages.warning(request, f"{subscription.name}: new secret {secret}")


class AttemptInline(admin.TabularInline):  # type: ignore[type-arg]
    model = WebhookAttempt
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["number", "at", "status_code", "duration_ms", "error", "response_excerpt"]
    readonly_fields = fields  # type: ignore[assignment]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["created_at", "subscription", "event_type", "status", "attempts", "last_status_code", "replay"]
    list_filter = ["status", "event_type", "subscription"]
    list_select_related = ["subscription"]
    readonly_fields = [
        "uuid", "subscription", "event_type", "status", "attempts", "next_attempt_at", "last_status_code",
        "last_error", "created_at", "delivered_at", "body", "replay",
    ]  # fmt: skip
    fields = readonly_fields  # type: ignore[assignment]
    inlines = [AttemptInline]
    actions = ["replay_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        replay = self.admin_site.admin_view(self.replay_view)
        return [
            path("<int:delivery_id>/replay/", replay, name="integrations_webhookdelivery_replay"),
            *super().get_urls(),
        ]

    @admin.display(description="replay")
    def replay(self, obj: WebhookDelivery) -> str:
        if obj.status == WebhookDelivery.Status.PENDING:
            return "—"
        url = reverse("admin:integrations_webhookdelivery_replay", args=[obj.pk])
        # Submits the page's own admin form (which carries the CSRF token) to the replay URL: a POST,
        # not a link a crawler or prefetch could follow, and no nested form.
        return format_html('<button type="submit" formaction="{}" formmethod="post">Replay</button>', url)

    def replay_view(self, request: HttpRequest, delivery_id: int) -> HttpResponse:
        if request.method != "POST" or not self.has_change_permission(request):
            return HttpResponse(status=405)
        delivery = get_object_or_404(WebhookDelivery, pk=delivery_id)
        if webhook_delivery_replay(delivery_id=delivery.pk):
            messages.success(request, f"Delivery {delivery.uuid} queued again.")
        else:
            messages.info(request, f"Delivery {delivery.uuid} is still pending; nothing to replay.")
        return HttpResponseRedirect(reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk]))

    @admin.action(description="Replay the selected deliveries")
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        count = sum(webhook_delivery_replay(delivery_id=pk) for pk in queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} delivery(ies) queued again.")
