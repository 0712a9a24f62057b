"""WSGI entry point for the API bench server: always the API bench settings."""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.api_settings"

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
