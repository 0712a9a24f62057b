"""Thin tasks for playbook actions: take a run id, claim it, call the handler, record the outcome."""

import contextlib
import logging

from celery import shared_task
from django.db import DatabaseError, InterfaceError, OperationalError

from incidents.errors import IncidentError
from integrations.errors import PermanentIntegrationError, TransientIntegrationError
from playbooks import actions

log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=5)
def action_run_task(self, run_id: int) -> str:  # type: ignore[no-untyped-def]
    run = actions.action_run_claim(run_id=run_id)
    if run is None:
        return "not-claimed"  # already running elsewhere, finished, cancelled or rejected
    handler = actions.action_handler(run.action)
    if handler is None:
        actions.action_run_fail(run_id=run_id, error=f"{run.action}: automation is not configured here.")
        return "failed"
    try:
        result = handler(run=run)
    except (TransientIntegrationError, OperationalError, InterfaceError) as exc:
        # A database blip (restart, failover) is as transient as a throttled AWS call.
        if self.request.retries >= self.max_retries:
            actions.action_run_fail(run_id=run_id, error=f"Gave up after {self.request.retries + 1} attempts: {exc}")
            return "failed"
        # If the database is still away the run stays claimed; the sweep re-queues it past the hard limit.
        with contextlib.suppress(DatabaseError):
            actions.action_run_requeue(run_id=run_id, error=str(exc))
        # Exponential backoff, capped well under the broker's visibility timeout (R6).
        raise self.retry(exc=exc, countdown=min(300, 5 * 2**self.request.retries)) from exc
    except (PermanentIntegrationError, IncidentError) as exc:
        actions.action_run_fail(run_id=run_id, error=str(exc))
        return "failed"
    except Exception as exc:
        # An unexpected bug still ends the run with a visible state instead of RUNNING forever.
        log.exception("action run %s crashed", run_id)
        actions.action_run_fail(run_id=run_id, error=f"Internal error ({type(exc).__name__}); see the worker log.")
        return "failed"
    actions.action_run_finish(run_id=run_id, result=result)
    return "done"


@shared_task(acks_late=True)
def action_runs_sweep_task() -> int:
    """Beat: re-queue runs whose worker vanished, so every requested run ends in a final state."""
    stuck = actions.action_runs_requeue_stuck()
    for run_id in stuck:
        action_run_task.delay(run_id)
    return len(stuck)
