"""`make bench [ARGS=--quick]`: list and timeline latency against plain `.values()` references (P4–P7).

Steps: create and migrate the `watchpost_bench` database, seed 100k incidents and a 10k-event incident,
count the queries of each page in-process (P6), then start gunicorn (4 sync workers) and load each page
and its reference from 16 threads, interleaved (ref, subject, ref, subject), keeping each side's best p95.

A measurement, not a test: the exit status is 0 even when a goal fails; failures are printed as FAIL.
Results go to benchmarks/results/latest.json.
"""

import argparse
import http.client
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"

import django  # noqa: E402
import requests  # noqa: E402

from benchmarks.common import code_version, database_ensure, own_cpu, process_group_cpu  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BENCH_USER = "bench-manager"
BENCH_PASSWORD = "bench-manager-password-not-secret"  # noqa: S105 - a local bench login only
WORKERS = 4  # sync workers, as the brief for P4–P7 asks
CONCURRENCY = 16
WARMUP_SECONDS = 1.0


def bench_user_ensure() -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from incidents import permissions

    user, created = get_user_model().objects.get_or_create(username=BENCH_USER)
    if created or not user.check_password(BENCH_PASSWORD):
        user.set_password(BENCH_PASSWORD)
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=permissions.MANAGER))
    return user


# --- In-process checks: query counts (P6), same rows, the deep cursor -------------------------------------


def deep_cursor(position: int) -> tuple[str, int]:
    """The cursor of the row at `position` in the default list (open cases, SLA sort)."""
    from incidents.keyset import encode_cursor, order_by_args
    from incidents.models import Incident, Phase
    from incidents.selectors import DEFAULT_SORT, INCIDENT_SORTS

    ordering = INCIDENT_SORTS[DEFAULT_SORT]
    queryset = Incident.objects.exclude(phase=Phase.CLOSED).order_by(*order_by_args(ordering))
    available = queryset.count()
    position = min(position, available - 2 * 50)
    row = queryset.only(*(name for name, _ in ordering))[position - 1]
    return encode_cursor(row, ordering), position


@dataclass
class QueryCount:
    name: str
    url: str
    status: int
    queries: int
    sql: list[str] = field(repr=False)


def count_queries(client: Any, name: str, url: str) -> QueryCount:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm: first-request work (content types, template loading) is not per page
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    return QueryCount(name, url, response.status_code, len(ctx.captured_queries), [q["sql"] for q in ctx])


def in_process_checks(user: Any, big_id: int, small_id: int, cursor: str) -> dict[str, Any]:
    from django.test import Client

    from incidents.models import Incident
    from incidents.selectors import TimelineFilters, incident_get_for_user, timeline_page

    client = Client()
    client.force_login(user)
    counts = [
        count_queries(client, "list ?size=10", "/incidents/?size=10"),
        count_queries(client, "list ?size=100", "/incidents/?size=100"),
        count_queries(client, "list, cursor ~1,000 pages deep", f"/incidents/?cursor={cursor}"),
        count_queries(client, "detail, big case (8 observables, 5 notes)", f"/incidents/{big_id}/"),
        count_queries(client, "detail, a seeded case (1 observable, no notes)", f"/incidents/{small_id}/"),
        count_queries(client, "timeline ?size=10", f"/incidents/{big_id}/timeline/?size=10"),
        count_queries(client, "timeline ?size=100", f"/incidents/{big_id}/timeline/?size=100"),
    ]
    by_name = {c.name: c for c in counts}
    comparisons = [
        ("P6 list: queries at size 10 = size 100", by_name["list ?size=10"], by_name["list ?size=100"]),
        ("P6 timeline: queries at size 10 = size 100", by_name["timeline ?size=10"], by_name["timeline ?size=100"]),
        ("P6 detail: queries, big case = 1-observable case", by_name["detail, big case (8 observables, 5 notes)"],
         by_name["detail, a seeded case (1 observable, no notes)"]),
        ("P6 list: queries, deep page = size 100", by_name["list, cursor ~1,000 pages deep"],
         by_name["list ?size=100"]),
    ]  # fmt: skip
    list_sql = by_name["list ?size=100"].sql + by_name["list ?size=10"].sql
    no_count = not any(re.search(r"\bCOUNT\s*\(", sql, re.IGNORECASE) for sql in list_sql)

    # Same rows: the ids the list page links to, in order, against the reference endpoint's ids.
    html = client.get("/incidents/?phase=open").content.decode()
    page_ids = list(dict.fromkeys(int(i) for i in re.findall(r'href="/incidents/(\d+)/"', html)))
    ref_ids = [r["id"] for r in json.loads(client.get("/bench-ref/incidents/?phase=open").content)["results"]]
    html = client.get("/incidents/?severity=3").content.decode()
    sev_ids = list(dict.fromkeys(int(i) for i in re.findall(r'href="/incidents/(\d+)/"', html)))
    sev_ref = [r["id"] for r in json.loads(client.get("/bench-ref/incidents/?severity=3").content)["results"]]
    incident = incident_get_for_user(user=user, incident_id=big_id)
    events = timeline_page(incident=incident, filters=TimelineFilters(), cursor=None, size=100).items
    ref_events = json.loads(client.get(f"/bench-ref/incidents/{big_id}/timeline/").content)["results"]
    same_rows = {
        "list": page_ids == ref_ids and len(ref_ids) > 0,
        "list ?severity=3": sev_ids == sev_ref and len(sev_ref) > 0,
        "timeline": [e.id for e in events] == [r["id"] for r in ref_events] and len(events) == 100,
    }
    return {
        "counts": counts,
        "comparisons": [(label, a.queries == b.queries, a.queries, b.queries) for label, a, b in comparisons],
        "no_count_on_list": no_count,
        "same_rows": same_rows,
        "incidents": Incident.objects.count(),
    }


# --- Server and load generator ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_start(port: int, workers: int, log_path: Path) -> subprocess.Popen:
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "benchmarks.settings"}
    command = [sys.executable, "-m", "gunicorn", "benchmarks.wsgi:application", "--workers", str(workers)]
    command += ["--worker-class", "sync", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"]
    command += ["--error-logfile", str(log_path)]
    # Own process group, so the finally block can stop the arbiter and every worker together.
    process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)  # noqa: S603
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}; see {log_path}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer within 30 s; see {log_path}")


def gunicorn_stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    pgid = os.getpgid(process.pid)
    os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=5)


def login(base: str) -> dict[str, str]:
    session = requests.Session()
    session.get(f"{base}/login/", timeout=10).raise_for_status()
    token = session.cookies["csrftoken"]
    response = session.post(
        f"{base}/login/",
        data={"username": BENCH_USER, "password": BENCH_PASSWORD, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base}/login/"},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 302:
        raise RuntimeError(f"login failed: HTTP {response.status_code}")
    return session.cookies.get_dict()


@dataclass
class Run:
    url: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    rps: float
    server_cpu_ms: float | None = None  # gunicorn CPU per request (not PostgreSQL's)
    client_cpu_ms: float | None = None  # the load generator's own CPU per request


def _requests_getter(url: str, cookies: dict[str, str]) -> tuple[Callable[[], bool], Callable[[], None]]:
    session = requests.Session()
    session.cookies.update(cookies)

    def get() -> bool:
        try:
            response = session.get(url, allow_redirects=False, timeout=30)
            return response.status_code == 200 and len(response.content) > 0
        except requests.RequestException:
            return False

    return get, session.close


def _http_client_getter(url: str, cookies: dict[str, str]) -> tuple[Callable[[], bool], Callable[[], None]]:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)

    def get() -> bool:
        try:
            conn.request("GET", target, headers=headers)
            response = conn.getresponse()
            return response.status == 200 and len(response.read()) > 0
        except (OSError, http.client.HTTPException):
            conn.close()  # reopened by the next request
            return False

    return get, conn.close


CLIENTS = {"requests": _requests_getter, "http.client": _http_client_getter}


def load(
    url: str,
    cookies: dict[str, str],
    seconds: float,
    concurrency: int,
    client: str = "requests",
    server_pid: int | None = None,
) -> Run:
    """`concurrency` threads, each with its own keep-alive session, for warm-up plus `seconds`."""
    start = time.monotonic() + 0.05
    measure_from = start + WARMUP_SECONDS
    stop = measure_from + seconds
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    getter = CLIENTS[client]

    def worker(i: int) -> None:
        get, close = getter(url, cookies)
        while time.monotonic() < start:
            time.sleep(0.001)
        while True:
            began = time.monotonic()
            if began >= stop:
                break
            ok = get()
            ended = time.monotonic()
            if began >= measure_from:
                latencies[i].append(ended - began)
                errors[i] += 0 if ok else 1
        close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, measure_from - time.monotonic()))
    cpu_before = (process_group_cpu(server_pid) if server_pid else 0.0), own_cpu()
    for thread in threads:
        thread.join()
    cpu_after = (process_group_cpu(server_pid) if server_pid else 0.0), own_cpu()
    samples = sorted(x for per in latencies for x in per)
    if len(samples) < 2:
        raise RuntimeError(f"{url}: fewer than 2 requests completed")
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return Run(
        url=url,
        requests=len(samples),
        errors=sum(errors),
        seconds=seconds,
        p50_ms=round(cuts[49] * 1000, 1),
        p95_ms=round(cuts[94] * 1000, 1),
        rps=round(len(samples) / seconds, 1),
        server_cpu_ms=round((cpu_after[0] - cpu_before[0]) * 1000 / len(samples), 2) if server_pid else None,
        client_cpu_ms=round((cpu_after[1] - cpu_before[1]) * 1000 / len(samples), 2),
    )


@dataclass
class Pair:
    goal_id: str
    name: str
    subject: str
    reference: str
    max_ratio: float
    max_p95_ms: float | None
    subject_runs: list[Run] = field(default_factory=list)
    reference_runs: list[Run] = field(default_factory=list)

    def best(self, runs: list[Run]) -> Run:
        return min(runs, key=lambda r: r.p95_ms)

    @property
    def ratio(self) -> float:
        return self.best(self.subject_runs).p95_ms / self.best(self.reference_runs).p95_ms

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.subject_runs + self.reference_runs)

    @property
    def failures(self) -> list[str]:
        """Which parts of the goal were missed: the ratio, the absolute p95, failed requests."""
        missed = []
        if self.ratio > self.max_ratio:
            missed.append("ratio")
        if self.max_p95_ms is not None and self.best(self.subject_runs).p95_ms > self.max_p95_ms:
            missed.append("ms")
        if self.errors:
            missed.append("errors")
        return missed

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def goal(self) -> str:
        text = f"≤{self.max_ratio:g}×"
        return text + (f", ≤{self.max_p95_ms:g} ms" if self.max_p95_ms is not None else "")


@dataclass
class LoadOptions:
    base: str
    cookies: dict[str, str]
    seconds: float
    concurrency: int
    rounds: int
    client: str
    server_pid: int


def measure(pair: Pair, options: LoadOptions) -> None:
    """Interleaved: reference, subject, reference, subject … so drift on the machine hits both sides."""
    for _ in range(options.rounds):
        for kind in ("reference", "subject"):
            path = getattr(pair, kind)
            run = load(
                options.base + path,
                options.cookies,
                options.seconds,
                options.concurrency,
                client=options.client,
                server_pid=options.server_pid,
            )
            getattr(pair, f"{kind}_runs").append(run)
            flag = f"  {run.errors} ERRORS" if run.errors else ""
            print(f"    {kind:9} {path[:48]:48} p50 {run.p50_ms:7.1f}  p95 {run.p95_ms:7.1f}  {run.rps:6.1f} rps  "
                  f"server CPU {run.server_cpu_ms:5.1f} ms/req{flag}", flush=True)  # fmt: skip


# --- Report ------------------------------------------------------------------------------------------------


def _cpu(run: Run) -> str:
    return f"{run.server_cpu_ms:.1f}" if run.server_cpu_ms is not None else "-"


def report(pairs: list[Pair], floor: Run | None, checks: dict[str, Any], options: LoadOptions) -> list[str]:
    lines = [
        "",
        f"Latency in ms: gunicorn {WORKERS} sync workers, c={options.concurrency}, {options.client} client, "
        f"best p95 of {options.rounds} interleaved runs per side; ratio = subject p95 / reference p95.",
        "cpu = gunicorn CPU ms per request (PostgreSQL's not included), subject / reference, for information.",
    ]
    header = (
        f"{'Goal':4} {'Endpoint':42} {'p50':>7} {'p95':>7} {'rps':>6} {'ref p95':>8} {'ratio':>6}  "
        f"{'goal':16} {'result':18} {'cpu subj/ref':>13}"
    )
    lines += [header, "-" * len(header)]
    for pair in pairs:
        best = pair.best(pair.subject_runs)
        ref = pair.best(pair.reference_runs)
        result = "PASS" if pair.passed else f"FAIL {'+'.join(pair.failures)} <<<"
        lines.append(
            f"{pair.goal_id:4} {pair.name:42} {best.p50_ms:7.1f} {best.p95_ms:7.1f} {best.rps:6.1f} "
            f"{ref.p95_ms:8.1f} {pair.ratio:6.2f}  {pair.goal:16} {result:18} {_cpu(best) + ' / ' + _cpu(ref):>13}"
        )
        if pair.errors:
            lines.append(f"{'':4} ^ {pair.errors} requests failed (non-200 or connection error)")
    if floor:
        lines.append(
            f"{'':4} {'(floor) /healthz, plain JsonResponse':42} {floor.p50_ms:7.1f} {floor.p95_ms:7.1f} "
            f"{floor.rps:6.1f} {'':8} {'':6}  {'info':16} {'':18} {_cpu(floor):>13}"
        )
        lines.append(f"{'':4} load generator CPU per request on /healthz: {floor.client_cpu_ms} ms")
    lines += ["", "Queries per request (Django test client, CaptureQueriesContext)"]
    for count in checks["counts"]:
        lines.append(f"{'':4} {count.name:56} {count.queries:3d} queries  (HTTP {count.status})")
    lines.append("")
    for label, equal, a, b in checks["comparisons"]:
        goal_id, _, text = label.partition(" ")
        lines.append(f"{goal_id:4} {text:56} {a:3d} vs {b:3d}  {'PASS' if equal else 'FAIL <<<'}")
    verdict = "PASS" if checks["no_count_on_list"] else "FAIL <<<"
    lines.append(f"{'P4':4} {'no COUNT(*) in the list page queries':56} {'':10} {verdict}")
    for name, same in checks["same_rows"].items():
        lines.append(f"{'':4} {'reference returns the same rows: ' + name:56} {'':10} {'yes' if same else 'NO <<<'}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s per run instead of 10 s")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="reference/subject rounds per pair (default 2)")
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="client threads (default 16)")
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="requests",
        help="load generator HTTP client (default requests; http.client costs the client less CPU)",
    )
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 10.0)

    version = code_version()
    print(f"Code under test: {version}")
    django.setup()
    from django.core.management import call_command

    from benchmarks.seed import seed
    from incidents.models import Incident

    print("Bench database")
    database_ensure()
    call_command("migrate", verbosity=0)
    data = seed()
    user = bench_user_ensure()
    big_id = data["big_incident_id"]
    # A case with fewer related rows than the big one (an empty list would skip a query: not comparable).
    smaller = Incident.objects.exclude(pk=big_id).filter(observables__isnull=False).order_by("pk")
    small_id = smaller.values_list("pk", flat=True)[0]
    cursor, depth = deep_cursor(50_000)
    print(f"  big incident {big_id}, deep cursor after row {depth} (page {depth // 50 + 1} at 50 per page)")

    print("Query counts (in-process)")
    checks = in_process_checks(user, big_id, small_id, cursor)

    pairs = [
        Pair("P4", "/incidents/ (HTML, default sort, open)", "/incidents/?phase=open",
             "/bench-ref/incidents/?phase=open", 2.5, 150),
        Pair("P4", "/incidents/?severity=3 (one filter)", "/incidents/?severity=3",
             "/bench-ref/incidents/?severity=3", 2.5, 150),
        Pair("P5", "/incidents/?cursor=… ~1,000 pages deep", f"/incidents/?cursor={cursor}",
             "/incidents/", 1.2, None),
        Pair("P7", f"/incidents/{big_id}/timeline/ (100 of 10k)", f"/incidents/{big_id}/timeline/",
             f"/bench-ref/incidents/{big_id}/timeline/", 2.5, 120),
    ]  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"Load: gunicorn {WORKERS} sync workers on {base}, c={args.concurrency}, {args.client} client, "
          f"{WARMUP_SECONDS:g} s warm-up + {seconds:g} s per run, {args.rounds} rounds per pair")  # fmt: skip
    server = gunicorn_start(port, WORKERS, RESULTS / "gunicorn.log")
    floor = None
    try:
        options = LoadOptions(base, login(base), seconds, args.concurrency, args.rounds, args.client, server.pid)
        for pair in pairs:
            print(f"  {pair.goal_id} {pair.name}")
            measure(pair, options)
        floor = load(f"{base}/healthz", {}, seconds, args.concurrency, client=args.client, server_pid=server.pid)
    finally:
        gunicorn_stop(server)

    lines = report(pairs, floor, checks, options)
    version_after = code_version()
    lines.insert(0, f"\nCode under test: {version}")
    if version_after != version:
        lines.insert(1, f"WARNING: the code changed during the run ({version} -> {version_after}); measure again.")
    print("\n".join(lines))
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": {"at_start": version, "at_end": version_after},
        "host": {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()},
        "settings": {
            "workers": WORKERS,
            "concurrency": args.concurrency,
            "seconds": seconds,
            "client": args.client,
            "warmup_seconds": WARMUP_SECONDS,
            "rounds": args.rounds,
        },
        "data": {"incidents": checks["incidents"], "big_incident_id": big_id, "deep_cursor_row": depth},
        "pairs": [
            {
                "goal": pair.goal_id,
                "name": pair.name,
                "subject": pair.subject,
                "reference": pair.reference,
                "target": pair.goal,
                "subject_best": asdict(pair.best(pair.subject_runs)),
                "reference_best": asdict(pair.best(pair.reference_runs)),
                "ratio": round(pair.ratio, 3),
                "pass": pair.passed,
                "missed": pair.failures,
                "subject_runs": [asdict(r) for r in pair.subject_runs],
                "reference_runs": [asdict(r) for r in pair.reference_runs],
            }
            for pair in pairs
        ],
        "floor_healthz": asdict(floor) if floor else None,
        "queries": [asdict(c) for c in checks["counts"]],
        "query_comparisons": [
            {"check": label, "pass": equal, "a": a, "b": b} for label, equal, a, b in checks["comparisons"]
        ],
        "no_count_on_list": checks["no_count_on_list"],
        "same_rows": checks["same_rows"],
        "report": lines,
    }
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nWritten {RESULTS.relative_to(ROOT) / 'latest.json'} (a measurement: exit status 0 even on FAIL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
