"""R6: no countdown, retry backoff or time limit reaches half the broker's visibility timeout.

With the Redis broker, a message not acknowledged within the visibility timeout is delivered again
(Celery docs, "Using Redis"; PERF-REL-SEC B1). With acks_late, a task that runs, or waits for its
countdown/ETA, longer than that runs twice. Half the timeout leaves room for queueing delay.

The check reads the registered tasks and the source (every `countdown=` / `eta=` keyword), so a new
task or a new retry cannot slip past it; its own control feeds it a hazardous snippet.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app
from tests.reliability.procs import ROOT

pytestmark = pytest.mark.reliability

KOMBU_DEFAULT_VISIBILITY = 3600
SOURCE_DIRS = ("config", "incidents", "playbooks", "integrations")


def visibility_timeout() -> float:
    return float((settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}).get("visibility_timeout", KOMBU_DEFAULT_VISIBILITY))


def _constants(tree: ast.Module) -> dict[str, float]:
    """Module-level `NAME = <number>` assignments."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            if isinstance(node.value.value, int | float) and not isinstance(node.value.value, bool):
                found.update({t.id: float(node.value.value) for t in node.targets if isinstance(t, ast.Name)})
    return found


def _bound(node: ast.expr, constants: dict[str, float]) -> float | None:
    """The largest value an expression can take, when the source states it: a number, a module constant,
    or min(…) with one of those among its arguments."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "min":
        bounds = [b for b in (_bound(arg, constants) for arg in node.args) if b is not None]
        return min(bounds) if bounds else None
    return None


def delay_hazards(source: str, *, name: str, limit: float) -> Iterator[str]:
    """Each `countdown=`/`eta=` keyword whose bound is unknown or ≥ limit."""
    tree = ast.parse(source, filename=name)
    constants = _constants(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg in ("countdown", "eta"):
                bound = _bound(keyword.value, constants)
                if bound is None or bound >= limit:
                    expression = ast.unparse(keyword.value)
                    yield f"{name}:{node.lineno} {keyword.arg}={expression} (bound {bound}, limit {limit})"


def test_settings_and_every_task_stay_under_half_the_visibility_timeout() -> None:
    half = visibility_timeout() / 2
    assert settings.CELERY_TASK_TIME_LIMIT < half
    assert settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT
    app.loader.import_default_modules()
    checked = 0
    for name, task in app.tasks.items():
        if name.startswith("celery."):
            continue
        checked += 1
        for attribute in ("time_limit", "soft_time_limit", "default_retry_delay"):
            value = getattr(task, attribute, None)
            assert value is None or value < half, f"{name}.{attribute}={value} ≥ {half}"
        if getattr(task, "autoretry_for", ()) and getattr(task, "retry_backoff", False):
            backoff_max = getattr(task, "retry_backoff_max", 600)  # Celery's default cap
            assert backoff_max < half, f"{name}.retry_backoff_max={backoff_max} ≥ {half}"
    assert checked >= 5  # the app's tasks were found


def test_no_countdown_or_eta_in_the_source_reaches_half_the_visibility_timeout() -> None:
    half = visibility_timeout() / 2
    hazards = [
        hazard
        for directory in SOURCE_DIRS
        for path in sorted((ROOT / directory).rglob("*.py"))
        if "migrations" not in path.parts
        for hazard in delay_hazards(path.read_text(), name=str(path.relative_to(ROOT)), limit=half)
    ]
    assert hazards == []


def test_control_the_check_flags_a_long_or_unbounded_countdown() -> None:
    snippet = (
        "CAP = 60\nLONG = 3600\ntask.apply_async(countdown=7200)\nraise self.retry(countdown=5 * 2**n)\n"
        "x.retry(countdown=min(60, d))\ny.apply_async(countdown=min(d, CAP))\nz.apply_async(countdown=min(d, LONG))\n"
    )
    found = list(delay_hazards(snippet, name="snippet.py", limit=1800))
    assert len(found) == 3 and "7200" in found[0] and "2 ** n" in found[1] and "LONG" in found[2]


def test_broker_visibility_timeout_is_set_for_redis(settings) -> None:
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("the visibility timeout applies to the Redis broker")
    assert "visibility_timeout" in settings.CELERY_BROKER_TRANSPORT_OPTIONS


def test_hazard_scan_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "tasks.py"
    path.write_text("def f(t):\n    t.apply_async(eta=later)\n")
    assert len(list(delay_hazards(path.read_text(), name="tasks.py", limit=1800))) == 1
