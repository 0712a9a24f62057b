"""`manage.py create_webhook_subscription --name NAME --url URL --events a,b`: prints the signing secret."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.models import WebhookSubscription
from integrations.ticketing.ssrf import DestinationRefusedError, destination_check


class Command(BaseCommand):
    help = "Subscribe a URL to signed webhook events; prints the secret the receiver verifies with."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--url", required=True)
        parser.add_argument(
            "--events", required=True, help=f"Comma-separated: {', '.join(WebhookSubscription.EVENT_TYPES)}"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        events = [event.strip() for event in options["events"].split(",") if event.strip()]
        subscription = WebhookSubscription(name=options["name"], url=options["url"], event_types=events)
        try:
            subscription.full_clean()
            destination_check(subscription.url, allowed_networks=settings.WATCHPOST_WEBHOOK_ALLOWED_NETWORKS)
        except (ValidationError, DestinationRefusedError) as exc:
            raise CommandError(str(exc)) from exc
        subscription.save()
        self.stdout.write(subscription.secret)
        self.stderr.write(f"Subscription {subscription.name} → {subscription.url} for {', '.join(events)}.")
