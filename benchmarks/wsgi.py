"""WSGI entry point for the bench server: always the bench settings, whatever the environment says."""

import os

os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
