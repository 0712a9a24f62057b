"""Handlers the action tests register: small, real functions with the handler signature."""

from typing import Any

from integrations.errors import PermanentIntegrationError, TransientIntegrationError
from playbooks.actions import action_run_progress
from playbooks.models import ActionRun


def echo(*, run: ActionRun) -> dict[str, Any]:
    return {"summary": f"echoed {run.params.get('text', '')}", "attempt": run.attempts}


def flaky(*, run: ActionRun) -> dict[str, Any]:
    if run.attempts < 2:
        raise TransientIntegrationError("ThrottlingException: rate exceeded")
    return {"summary": "worked on the second attempt"}


def broken(*, run: ActionRun) -> dict[str, Any]:
    raise PermanentIntegrationError("endpoint unreachable: connection refused")


def cancellable(*, run: ActionRun) -> dict[str, Any]:
    cancelled = action_run_progress(run_id=run.pk, progress={"state": "RUNNING"})
    return {"summary": "stopped" if cancelled else "ran to the end", "cancelled": cancelled}


def db_blip(*, run: ActionRun) -> dict[str, Any]:
    if run.attempts < 2:
        from django.db import OperationalError

        raise OperationalError("server closed the connection unexpectedly")
    return {"summary": "database back"}
