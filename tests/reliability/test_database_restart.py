"""R4: PostgreSQL restarted under HTTP load and a task backlog: no failure later than 1 s after it is back.

A private PostgreSQL cluster (never the shared one) serves a real gunicorn (2 sync workers, the signed
findings webhook as the load: every request writes) and a real Celery worker draining a backlog of
200 payload tasks. The server is restarted with `pg_ctl restart -m fast`, which cuts every session.

Traffic stops during the restart and resumes 1.5 s after the server is ready: the pooled connections
(CONN_MAX_AGE) are then all dead, the case that hurts. With CONN_HEALTH_CHECKS (our setting) each is
pinged and replaced before use, so no request fails; the control turns the checks off and the first
request each web worker serves after the restart fails, however late it comes. Tasks cut by the
restart retry on OperationalError (incidents.tasks.DB_RETRY), so the backlog is processed in full.
"""

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from integrations import signing
from tests.reliability.conftest import wire_finding
from tests.reliability.procs import ROOT, PostgresServer, Worker, child_env, free_port, wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

SECRET = "reliability-test-webhook-secret"
BACKLOG = 200
RESUME_AFTER = 1.5  # seconds of quiet after the server is ready, before traffic comes back


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.init()
        server.start()
        server.createdb("watchpost")
        yield server
    finally:
        server.destroy()


@dataclass
class Load:
    """Signed webhook deliveries, one at a time, each a new finding; every outcome recorded."""

    url: str
    results: list[tuple[float, int]] = field(default_factory=list)  # (start, HTTP status or 0 for no answer)
    paused: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        number = 0
        while not self.stopped.is_set():
            if self.paused.is_set():
                time.sleep(0.01)
                continue
            number += 1
            body = json.dumps(wire_finding(number, tag=f"http{int(time.time())}")).encode()
            request = urllib.request.Request(  # noqa: S310 - loopback URL we built
                self.url, data=body, method="POST",
                headers={"Content-Type": "application/json", signing.HEADER: signing.sign(secret=SECRET, body=body)},
            )  # fmt: skip
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError:
                status = 0
            self.results.append((started, status))
            time.sleep(0.02)


def _accepted_backlog(database_url: str) -> int:
    try:
        with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM incidents_inboundpayload WHERE source = 'sqs' AND status = 'accepted'")
            return int(cursor.fetchone()[0])
    except psycopg2.Error:
        return -1


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _restart_under_load(postgres: PostgresServer, redis: Any, tmp_path: Path, *, health_checks: bool) -> dict[str, Any]:
    inflight = tmp_path / "inflight"
    inflight.mkdir()
    env = child_env(
        broker_url=redis.url,
        database_url=postgres.url(),
        WATCHPOST_FINDINGS_WEBHOOK_SECRETS=SECRET,
        WATCHPOST_DB_CONN_HEALTH_CHECKS="true" if health_checks else "false",
        WP_REL_DELAY="0.05",
        WP_REL_LOGLEVEL="INFO",  # the worker logs each retry at INFO
        WP_REL_INFLIGHT=str(inflight),
    )
    _manage(env, "migrate", "-v0")
    _manage(env, "sync_playbooks")
    subprocess.run([sys.executable, "-m", "tests.reliability.harness", "backlog", str(BACKLOG)],  # noqa: S603
                   cwd=ROOT, env=env, check=True, stdin=subprocess.DEVNULL)  # fmt: skip
    port = free_port()
    with (tmp_path / "gunicorn.log").open("ab") as log:
        web = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
             "--no-control-socket"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    worker = Worker(env, tmp_path / "worker.log")
    load = Load(f"http://127.0.0.1:{port}/api/v1/findings/")
    thread = threading.Thread(target=load.run, daemon=True)
    try:
        assert wait_for(lambda: _get(f"http://127.0.0.1:{port}/healthz") == 200, timeout=30)
        worker.start()
        thread.start()
        # given: traffic flowing and the backlog draining
        assert wait_for(lambda: len(load.results) >= 20 and _accepted_backlog(postgres.url()) >= 20, timeout=60)
        # when: traffic pauses, the server restarts (fast: sessions cut), traffic comes back after a quiet spell
        load.paused.set()
        time.sleep(0.2)
        postgres.restart_fast()
        ready = time.monotonic()
        time.sleep(RESUME_AFTER)
        load.paused.clear()
        assert wait_for(lambda: sum(1 for started, _ in load.results if started > ready) >= 30, timeout=60)
        load.stopped.set()
        thread.join(timeout=15)
        drained = wait_for(lambda: _accepted_backlog(postgres.url()) == BACKLOG, timeout=90)
    finally:
        load.stopped.set()
        worker.stop()
        web.terminate()
        web.wait(timeout=20)
    after = [(started, status) for started, status in load.results if started > ready + 1.0]
    return {
        "failed_after": [status for _, status in after if status >= 500 or status == 0],
        "served_after": len(after),
        "statuses": sorted({status for _, status in load.results}),
        "backlog_done": drained,
        "backlog_accepted": _accepted_backlog(postgres.url()),
        "worker_log": worker.log_tail(),
        "task_retries": (tmp_path / "worker.log").read_text(errors="replace").count("Retry in"),
    }


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return int(response.status)
    except OSError:
        return 0


def test_database_restart_fails_no_request_a_second_after_and_loses_no_task(postgres, redis_factory, tmp_path) -> None:
    result = _restart_under_load(postgres, redis_factory(appendonly=False), tmp_path, health_checks=True)
    assert result["served_after"] >= 30
    assert result["failed_after"] == [], result["statuses"]
    assert result["backlog_done"], (result["backlog_accepted"], result["worker_log"])
    assert result["task_retries"] >= 1  # the restart did cut tasks, and they were retried
    print("R4:", {k: v for k, v in result.items() if k != "worker_log"})


def test_control_without_health_checks_requests_fail_after_the_restart(postgres, redis_factory, tmp_path) -> None:
    result = _restart_under_load(postgres, redis_factory(appendonly=False), tmp_path, health_checks=False)
    # then: stale pooled connections fail requests long after the server came back
    print("R4 control:", {k: v for k, v in result.items() if k != "worker_log"})
    assert len(result["failed_after"]) >= 1, result["statuses"]
