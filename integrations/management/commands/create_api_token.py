"""`manage.py create_api_token --user NAME --scopes a,b [--expires DAYS] [--name TEXT]`: prints the token once."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from integrations.models import ApiToken
from integrations.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a (service) account; the token is printed once and only its hash is kept."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", required=True, help="The account the token acts as.")
        parser.add_argument("--scopes", required=True, help=f"Comma-separated: {', '.join(ApiToken.SCOPES)}")
        parser.add_argument("--expires", type=int, default=None, help="Days until it expires (default: never).")
        parser.add_argument("--name", default="", help="What uses it (default: the user name).")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r}")
        scopes = [scope.strip() for scope in options["scopes"].split(",") if scope.strip()]
        try:
            created = api_token_create(
                user=user, name=options["name"] or user.get_username(), scopes=scopes, expires_days=options["expires"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(created.plaintext)
        self.stderr.write(
            f"Token wp_{created.token.key_id}_… for {user.get_username()} with {', '.join(created.token.scopes)}. "
            "Store it now: it is not shown again."
        )
