"""Processes the fault tests start, break and stop themselves: a private Redis, Celery workers, PostgreSQL.

Every process here listens on loopback only, on a port picked free, with its data in the test's own
temporary folder. Nothing touches the shared PostgreSQL (5432) or Redis (6379) of the machine: other
people's tests run against those at the same time.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed here (apt-get install {name.split('-')[0]})")
    return path


class RedisServer:
    """`redis-server` on a free loopback port; `kill()` is SIGKILL, `start()` again reuses the data folder."""

    def __init__(self, directory: Path, *, appendonly: bool) -> None:
        self.binary = require_binary("redis-server")
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # The persistence options are the ones docker-compose.yml gives the production Redis.
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"] if self.appendonly else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(  # noqa: S603 - fixed arguments, our own binary lookup
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--dir", str(self.directory),
             "--protected-mode", "yes", *persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if not wait_for(self.ping, timeout=10):
            raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def client(self) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def ping(self) -> bool:
        try:
            return bool(self.client().ping())
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def own_database_url() -> str:
    """The URL of this test's own database (pytest-django's test_<name>), for child processes."""
    settings = connection.settings_dict
    user = settings.get("USER") or "postgres"
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host, port = settings.get("HOST") or "127.0.0.1", settings.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def child_env(*, broker_url: str, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "WP_REL_", "DJANGO_ALLOW_ASYNC"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url or own_database_url(),
            "CELERY_BROKER_URL": broker_url,
            "CACHE_URL": "locmemcache://",
            "WATCHPOST_STATICFILES_STORAGE": "django.contrib.staticfiles.storage.StaticFilesStorage",
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class Worker:
    """A real `celery worker` (prefork) in its own process group, started through tests.reliability.harness."""

    def __init__(self, env: dict[str, str], log: Path, *, concurrency: int = 2) -> None:
        self.env = env
        self.log = log
        self.concurrency = concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "tests.reliability.harness", "worker", str(self.concurrency)],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: kill() takes the pool children too
            )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the whole worker, pool children included: no shutdown, no ack, no cleanup."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def in_flight(directory: Path) -> list[tuple[int, int]]:
    """(pool child pid, payload id) of the tasks the harness marks as running right now."""
    found = []
    for marker in directory.glob("*-*"):
        pid, payload_id = marker.name.split("-", 1)
        found.append((int(pid), int(payload_id)))
    return found


def publish(broker_url: str, task: str, arguments: list[list[Any]]) -> None:
    """Send tasks to a private broker. The URL goes on the connection: CELERY_BROKER_URL in the
    environment would win over `Celery(broker=...)`, and that one is the shared Redis."""
    from celery import Celery

    sender = Celery("rel-sender", set_as_current=False)
    with sender.connection_for_write(broker_url) as connection:
        for args in arguments:
            sender.send_task(task, args=args, connection=connection)


def postgres_bin() -> Path:
    """The newest installed PostgreSQL server binaries (Debian layout), or skip."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.skip("PostgreSQL server binaries are not installed (/usr/lib/postgresql/<version>/bin/initdb)")
    return found[-1].parent


class PostgresServer:
    """A throwaway PostgreSQL cluster on a free loopback port, run as the `postgres` user when we are root
    (initdb refuses root). Never the shared server on 5432."""

    def __init__(self) -> None:
        import tempfile

        self.bin = postgres_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="wp-rel-pg-"))  # not under pytest's 0700 folder: postgres reads it
        self.data = self.root / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603

    def url(self, database: str = "watchpost") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _options(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", self._options(), "-l",
                  str(self.root / "server.log"), "-w", "start")  # fmt: skip

    def restart_fast(self) -> None:
        """`pg_ctl restart -m fast`: every session is cut; returns once the server accepts connections."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", self._options(), "-l",
                  str(self.root / "server.log"), "-m", "fast", "-w", "restart")  # fmt: skip

    def createdb(self, name: str) -> None:
        command = [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name]
        subprocess.run(command, check=True)  # noqa: S603

    def destroy(self) -> None:
        if self.data.exists():
            command = [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        shutil.rmtree(self.root, ignore_errors=True)
