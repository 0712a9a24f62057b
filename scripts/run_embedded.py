"""`make run`: Watchpost on one machine with no external services (ARCHITECTURE.md, "embedded default").

Prepares the embedded state (SQLite in var/, static files, playbooks, demo data), then runs the web
server (gunicorn) and a real Celery worker on kombu's filesystem broker as child processes, with their
output prefixed. Ctrl-C or SIGTERM stops both; if either one dies, the other is stopped and the exit
status is non-zero.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import environ

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
PYTHON = sys.executable  # the venv's python: `make run` calls this script with it
SETUP_COMMANDS = (
    ["migrate", "--noinput"],
    ["collectstatic", "--noinput", "--verbosity", "0"],
    ["sync_playbooks"],
    ["seed_demo"],
)
# Child processes, run as `python -m ...`. No gunicorn control socket: it is not used, and two
# servers on one machine would share its default path in the home folder.
WEB = ["gunicorn", "config.wsgi", "--workers", "2", "--access-logfile", "-", "--no-control-socket"]
# -B: the periodic tasks (SLA breach sweep, action-run sweep, evidence re-hash, reconcile) run inside
# the one worker, as a laptop needs no separate beat process.
WORKER = [
    "celery", "-A", "config", "worker", "--pool=solo", "-l", "INFO",
    "-B", "--schedule", str(VAR / "celerybeat-schedule"),
]  # fmt: skip
# The SANDBOX Kubernetes API server (not a real cluster), seeded like an EKS cluster upgraded from
# before 1.14; seed_demo attaches it to the demo incidents' cluster through this kubeconfig.
SANDBOX_KUBECONFIG = VAR / "sandbox" / "kubeconfig.yaml"
SANDBOX = [
    "manage",
    "sandbox_cluster",
    "--scenario",
    "upgraded-pre-1.14",
    "--port",
    "0",
    "--kubeconfig-out",
    str(SANDBOX_KUBECONFIG),
]
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 15.0


class Stop(Exception):
    """Ctrl-C or SIGTERM arrived."""


def _on_signal(signum: int, frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def prepare() -> None:
    for folder in ("broker/queue", "broker/processed", "media", "staticfiles"):
        (VAR / folder).mkdir(parents=True, exist_ok=True)
    for command in SETUP_COMMANDS:
        print(f"==> manage.py {' '.join(command)}", flush=True)
        if subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, check=False).returncode != 0:  # noqa: S603
            sys.exit(f"run: `manage.py {' '.join(command)}` failed; see the output above.")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def start(
    name: str, args: list[str], ready: threading.Event | None = None, ready_text: str = ""
) -> subprocess.Popen[str]:
    # A session of its own: the terminal's Ctrl-C reaches only this script, which stops the child
    # (and, through its process group, the child's own workers) in order.
    child = subprocess.Popen(  # noqa: S603
        [PYTHON, "-m", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    threading.Thread(target=relay, args=(name, child.stdout, ready, ready_text), daemon=True).start()
    return child


def relay(name: str, stream: IO[str], ready: threading.Event | None, ready_text: str) -> None:
    for line in stream:
        sys.stdout.write(f"{name:>6} | {line}")
        sys.stdout.flush()
        if ready is not None and ready_text and ready_text in line:
            ready.set()


def wait_until_up(
    children: dict[str, subprocess.Popen[str]], port: int, worker_ready: threading.Event, *others: threading.Event
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        check_alive(children)
        if not port_free(port) and worker_ready.is_set() and all(event.is_set() for event in others):
            return
        time.sleep(0.3)
    raise RuntimeError(f"web or worker not ready after {STARTUP_TIMEOUT:.0f}s")


def check_alive(children: dict[str, subprocess.Popen[str]]) -> None:
    for name, child in children.items():
        code = child.poll()
        if code is not None:
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            raise RuntimeError(f"the {name} process {how}")


def stop(children: dict[str, subprocess.Popen[str]]) -> None:
    # A second Ctrl-C must not interrupt the stop half-way and leave children behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for child in children.values():
        signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"run: {name} did not stop in {STOP_TIMEOUT:.0f}s; killing it", flush=True)
        signal_group(child, signal.SIGKILL)  # leftovers of the group (gunicorn workers, pool children)
        child.wait()


def signal_group(child: subprocess.Popen[str], signum: signal.Signals) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass


def banner(port: int, password: str) -> str:
    url = f"http://127.0.0.1:{port}/"
    logins = "\n".join(
        f"    {user:<10} {password}   ({role})"
        for user, role in (
            ("responder", "works cases"),
            ("manager", "assigns, sees every case"),
            ("viewer", "read only"),
            ("admin", "superuser; also /admin/"),
        )
    )
    line = "=" * 72
    return (
        f"\n{line}\n  Watchpost is running: {url}\n\n  Demo logins (user / password):\n{logins}\n\n"
        "  Cluster payments-prod is the SANDBOX Kubernetes API server (an upgraded pre-1.14 cluster),\n"
        f"  kubeconfig {SANDBOX_KUBECONFIG.relative_to(ROOT)}.\n\n"
        f"  Web and worker output follows, prefixed. Ctrl-C to stop.\n{line}\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Run Watchpost with embedded defaults: web server and worker.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    port = parser.parse_args().port
    os.chdir(ROOT)
    # The same `.env` settings.py reads, so the children and the printed demo password agree with it.
    environ.Env.read_env(ROOT / ".env", overwrite=False)
    if not port_free(port):
        sys.exit(f"run: port {port} on 127.0.0.1 is already in use; try `make run PORT=8001`.")
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    children: dict[str, subprocess.Popen[str]] = {}
    try:
        prepare()
        worker_ready, sandbox_ready = threading.Event(), threading.Event()
        children["k8s"] = start("k8s", SANDBOX, sandbox_ready, "listening on")
        children["web"] = start("web", [*WEB, "--bind", f"127.0.0.1:{port}"])
        children["worker"] = start("worker", WORKER, worker_ready, " ready.")
        wait_until_up(children, port, worker_ready, sandbox_ready)
        print(banner(port, os.environ.get("WATCHPOST_DEMO_PASSWORD") or "watchpost-demo"), flush=True)
        while True:
            check_alive(children)
            time.sleep(0.5)
    except Stop as why:
        print(f"\nrun: {why}: stopping web, worker and sandbox…", flush=True)
        stop(children)
        print("run: stopped.", flush=True)
        return 0
    except RuntimeError as problem:
        print(f"\nrun: {problem}; stopping everything.", file=sys.stderr, flush=True)
        stop(children)
        return 1


if __name__ == "__main__":
    sys.exit(main())
