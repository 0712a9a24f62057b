"""`manage.py create_api_token --user NAME --scopes a,b [--expires DAYS] [--name TEXT] [--role ROLE]`: prints
the token once. With `--role`, a missing user is created as a service account: in that role's group, with
no usable password, so it can use the API but never sign in to the browser."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from incidents.permissions import ROLES
from integrations.models import ApiToken
from integrations.services import api_token_create, service_account_create


class Command(BaseCommand):
    help = "Create an API token for a (service) account; the token is printed once and only its hash is kept."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", required=True, help="The account the token acts as.")
        parser.add_argument("--scopes", required=True, help=f"Comma-separated: {', '.join(ApiToken.SCOPES)}")
        parser.add_argument("--expires", type=int, default=None, help="Days until it expires (default: never).")
        parser.add_argument("--name", default="", help="What uses it (default: the user name).")
        parser.add_argument(
            "--role", choices=ROLES, default=None, help="Create the user as a service account in this role if missing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None and options["role"]:
            user = service_account_create(username=options["user"], role=options["role"])
            self.stderr.write(f"Created service account {user.get_username()} ({options['role']}).")
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
