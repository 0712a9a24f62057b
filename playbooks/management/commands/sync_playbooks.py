"""`manage.py sync_playbooks [--dir DIR]`: load new playbook versions from the library directory."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from playbooks.loader import PlaybookValidationError, playbook_sync


class Command(BaseCommand):
    help = "Validate the playbook YAML library and load every (slug, version) not loaded yet."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dir",
            type=Path,
            default=None,
            help="Directory of playbook YAML files (default: settings.WATCHPOST_PLAYBOOK_DIR).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        directory = options["dir"] or Path(settings.WATCHPOST_PLAYBOOK_DIR)
        try:
            results = playbook_sync(directory=directory)
        except PlaybookValidationError as exc:
            # CommandError makes manage.py print the message and exit with status 1.
            raise CommandError(str(exc)) from exc
        for result in results:
            self.stdout.write(f"{result.file}: {result.slug} v{result.version} {result.status}")
