"""Settings for `make bench`: the app's settings, a separate database and the reference endpoints.

The bench data (100k incidents) lives in its own database, `watchpost_bench`, so the test suite never
sees it and the bench never sees test data. `benchmarks/run.py` creates the database when it is missing.
"""

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES, STORAGES

ROOT_URLCONF = "benchmarks.urls"
WSGI_APPLICATION = "benchmarks.wsgi.application"
DEBUG = False
# `make bench-ui` (benchmarks/firstpaint.py) uses a database of its own: watchpost_bench_ui.
DATABASES["default"]["NAME"] = os.environ.get("WATCHPOST_BENCH_DB", "watchpost_bench")
# Plain static storage: no manifest to build before the pages render.
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
