"""Settings for `make bench-api` (P11): the bench settings, its own database and two ping endpoints."""

from benchmarks.settings import *  # noqa: F403
from benchmarks.settings import DATABASES

ROOT_URLCONF = "benchmarks.api_urls"
DATABASES["default"]["NAME"] = "watchpost_bench_api"
