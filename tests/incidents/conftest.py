"""The worker fixture for this folder's tests that cross into a real Celery worker."""

from tests.worker import celery_worker  # noqa: F401 (a fixture: pytest finds it by name)
