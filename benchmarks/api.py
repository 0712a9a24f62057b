"""P11: framework overhead of the API. Run with `make bench-api` (ARGS=--quick for a short run).

1. An authenticated DRF ping (Bearer token, scope check, last-use bookkeeping) against a plain Django
   `JsonResponse` ping, both served by the same gunicorn (2 sync workers) in the same run, interleaved
   (plain, drf, plain, drf …), each side keeping its best rps. Goal: drf ≥ 0.6 × plain.
2. The token check in-process: `api_token_authenticate` (row lookup by the visible id + SHA-256 +
   constant-time compare + expiry/revocation/scope) per call, and its pure-CPU part (hash and compare).
   Goal: ≤ 0.1 ms per request.

A measurement, not a test: the exit status is 0 even when a goal fails (printed as FAIL).
"""

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.api_settings"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from benchmarks.common import ROOT, code_version, database_ensure, process_group_cpu  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
WORKERS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_start(port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "benchmarks.api_wsgi:application", "--workers", str(WORKERS)]
    command += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True)  # noqa: S603
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start within 30 s")


def server_stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(os.getpgid(process.pid), signal.SIGTERM)
        process.wait(timeout=15)


def load(port: int, path: str, headers: dict[str, str], seconds: float, threads: int) -> tuple[float, int]:
    """Requests per second over `seconds` from `threads` clients (one connection per request, as gunicorn's
    sync workers close it); and the count of answers that were not 200."""
    counts, errors = [0] * threads, [0] * threads
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        while time.monotonic() < stop:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
            counts[n] += 1
            errors[n] += response.status != 200

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.monotonic() - started), sum(errors)


def token_check_timings(plaintext: str, calls: int) -> tuple[float, float]:
    from integrations.services import api_token_authenticate
    from integrations.tokens import token_hash, token_matches

    header = f"Bearer {plaintext}"
    api_token_authenticate(header=header, scope="incidents:read", address="127.0.0.1")  # warm connection
    started = time.perf_counter()
    for _ in range(calls):
        api_token_authenticate(header=header, scope="incidents:read", address="127.0.0.1")
    full_ms = (time.perf_counter() - started) / calls * 1000
    stored = token_hash(plaintext)
    started = time.perf_counter()
    for _ in range(calls * 10):
        token_matches(plaintext, stored)
    cpu_ms = (time.perf_counter() - started) / (calls * 10) * 1000
    return full_ms, cpu_ms


def bench_user_token() -> str:
    from django.contrib.auth.models import Group, User

    from integrations.services import api_token_create

    user, _ = User.objects.get_or_create(username="bench-api")
    user.groups.add(Group.objects.get(name="responder"))
    return api_token_create(user=user, name="bench", scopes=["incidents:read"]).plaintext


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 s runs, 2 rounds")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    seconds, rounds = (2.0, 2) if args.quick else (args.seconds, args.rounds)

    database_ensure()
    call_command("migrate", "--noinput", verbosity=0)
    plaintext = bench_user_token()
    full_ms, hash_ms = token_check_timings(plaintext, calls=2000)

    port = free_port()
    server = server_start(port)
    best = {"plain": 0.0, "drf": 0.0}
    cpu_ms = {"plain": float("inf"), "drf": float("inf")}
    errors = {"plain": 0, "drf": 0}
    sides = {"plain": ("/bench-api/plain/", {}), "drf": ("/bench-api/drf/", {"Authorization": f"Bearer {plaintext}"})}
    try:
        for path, headers in sides.values():
            load(port, path, headers, 1.0, args.threads)  # warm-up
        for _ in range(rounds):
            for name, (path, headers) in sides.items():
                cpu_before = process_group_cpu(server.pid)
                rps, failed = load(port, path, headers, seconds, args.threads)
                per_request = (process_group_cpu(server.pid) - cpu_before) / (rps * seconds) * 1000
                cpu_ms[name] = min(cpu_ms[name], per_request)
                best[name] = max(best[name], rps)
                errors[name] += failed
    finally:
        server_stop(server)

    ratio = best["drf"] / best["plain"] if best["plain"] else 0.0
    results = {
        "code": code_version(),
        "plain_rps": round(best["plain"], 1),
        "drf_rps": round(best["drf"], 1),
        "ratio": round(ratio, 3),
        "errors": errors,
        "server_cpu_ms_per_request": {k: round(v, 3) for k, v in cpu_ms.items()},
        "token_check_ms": round(full_ms, 4),
        "token_hash_compare_ms": round(hash_ms, 5),
    }
    print(f"P11 API overhead ({results['code']}), gunicorn {WORKERS} sync workers, {args.threads} client threads, "
          f"best of {rounds} × {seconds:g} s interleaved")  # fmt: skip
    print(f"  plain JsonResponse ping   {best['plain']:8.1f} rps   (reference)")
    verdict = "PASS" if ratio >= 0.6 and not errors["drf"] else "FAIL <<<"
    print(f"  DRF ping, Bearer token    {best['drf']:8.1f} rps   ratio {ratio:.2f} (goal ≥ 0.60)  {verdict}")
    print(f"  errors (non-200)          plain {errors['plain']}, drf {errors['drf']}")
    cpu_ratio = cpu_ms["plain"] / cpu_ms["drf"] if cpu_ms["drf"] else 0.0
    print(f"  gunicorn CPU per request  plain {cpu_ms['plain']:.3f} ms, drf {cpu_ms['drf']:.3f} ms: "
          f"CPU-bound rps ratio {cpu_ratio:.2f} (the figure that does not depend on the client's speed)")  # fmt: skip
    verdict = "PASS" if full_ms <= 0.1 else "FAIL <<<"
    print(f"  token check (lookup + hash + rules) {full_ms:.4f} ms/call (goal ≤ 0.1)  {verdict}")
    print(f"  of which hash + constant-time compare {hash_ms * 1000:.2f} µs")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "api.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
