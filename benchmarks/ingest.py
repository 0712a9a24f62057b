"""`make bench-ingest [ARGS=--quick]`: GuardDuty ingestion throughput against same-run references (P1–P3).

- P1: N distinct findings (default 20,000; --quick 2,000) in files of 500, through the real import
  (`paths_import`, as `manage.py import_findings --jobs J` runs it; J = --jobs, default the CPUs): each
  file is stored, parsed, and ingested set-based, which opens an incident per finding with its
  observables and timeline (its checklist rows wait for the first read), J files at a time, each in a
  process and session of its own. Reference: a raw `COPY` of the same N JSON documents into a scratch
  table (jsonb plus a unique text key) through the Django connection. Shown too: the same findings
  through `payload_receive` serially in this process, on the same empty tables.
- P2: the same N documents a second time, same files and jobs: every finding "duplicate", no new
  findings, incidents, timeline events, checklist items or observable links. Reference: the first pass.
- P3: the event path, one finding per Celery task (5,000 events; --quick 500), a real prefork worker
  (2 processes, prefetch 1, the project's acks_late) on the Redis broker, timed from the first enqueue to
  the last task done. Reference: no-op tasks drained by the same worker in the same run. Each side is
  drained twice, interleaved (no-op, ingest, no-op, ingest), and the faster drain of each counts.
- A cProfile of a 1k-finding first pass and its repeat, with queries per finding, says where the time goes.

Everything runs in its own database, `watchpost_bench_ingest` (created when missing, migrated, playbooks
synced). The ingestion tables are truncated at the start of every run, so runs are comparable.

A measurement, not a test: the exit status is 0 even when a goal fails; failures are printed as FAIL.
Results go to benchmarks/results/ingest-latest.json.
"""

import argparse
import cProfile
import gc
import hashlib
import io
import json
import os
import platform
import pstats
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "watchpost_bench_ingest"
RESULTS = ROOT / "benchmarks" / "results"
FIXTURES = ROOT / "tests" / "fixtures" / "guardduty" / "wire"
# The three fixtures without a Kubernetes API call (malware scans, the attack sequence) are 4.3–8 KB
# compact; the rest average ~2.5 KB, close to A3's 2 KB documents.
MAX_TEMPLATE_BYTES = 3600
BATCH = 500  # findings per payload (P1, P2)
CLUSTERS = 200
IP_POOL = 2000  # distinct source addresses (198.18.0.0/15, the benchmarking range)
ASN_POOL = 300  # private-use ASNs 64512…
QUEUE = "bench-ingest"  # the bench worker's own queue: it never takes the app's tasks, nor they its
WORKER_LOG = RESULTS / "celery-ingest.log"
PROFILE_FINDINGS = 1000
STALL_SECONDS = 60.0

GOAL_P1, GOAL_P2, GOAL_P3, GOAL_P3_BACKLOG_S = 0.15, 0.8, 0.35, 60.0


def bench_database_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit("The ingest bench needs PostgreSQL: run it with `make bench-ingest` (DATABASE_URL=postgres://…).")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


# The app's own settings, pointed at the bench database through the environment, so the worker
# subprocess (which inherits this environment) uses the very same database.
os.environ["DATABASE_URL"] = bench_database_url(os.environ.get("DATABASE_URL", ""))
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"

import django  # noqa: E402

from benchmarks.common import code_version, database_ensure, own_cpu, process_group_cpu  # noqa: E402


def _table(model: Any) -> str:
    return str(model._meta.db_table)


def ingestion_tables() -> list[str]:
    from incidents.models import (
        CustodyEvent,
        Evidence,
        Finding,
        InboundPayload,
        Incident,
        Note,
        NoteRevision,
        Observable,
        QuarantinedDocument,
        TimelineEvent,
    )
    from playbooks.models import ChecklistItem

    models = [Finding, QuarantinedDocument, InboundPayload, TimelineEvent, ChecklistItem, NoteRevision, Note,
              CustodyEvent, Evidence, Observable.incidents.through, Observable, Incident.assignees.through,
              Incident]  # fmt: skip
    return [_table(m) for m in models]


def tables_reset() -> None:
    """Empty findings, incidents and their children, payloads and observables; ids restart at 1.

    The emptied tables are not ANALYZEd. Statistics that say "empty" stay true for the whole run here:
    this machine's PostgreSQL runs without autovacuum, so nothing re-analyzes a table as it fills. A
    session then keeps the plans it made while the tables were empty, among them the foreign-key
    checks' seq scans of `incidents_incident`, and every insert gets slower as the run goes (measured:
    4.2 → 14.4 ms per event over 5,000 replayed events in one session, flat with a fresh session per
    1,000; benchmarks/ingest_floor.py). Left
    unknown after TRUNCATE, the planner sizes the tables from their pages, as in a production database
    whose autovacuum keeps statistics current.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        tables = ", ".join(f'"{t}"' for t in ingestion_tables())
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_ingest_copy (key text PRIMARY KEY, doc jsonb NOT NULL)")
        cursor.execute("TRUNCATE bench_ingest_copy")
        # No ANALYZE of the emptied tables: see the docstring of tables_reset.


def row_counts() -> dict[str, int]:
    from django.db import connection

    from incidents.models import Finding, InboundPayload, Incident, Observable, TimelineEvent
    from playbooks.models import ChecklistItem

    tables = {
        "findings": Finding,
        "incidents": Incident,
        "timeline_events": TimelineEvent,
        "checklist_items": ChecklistItem,
        "observables": Observable,
        "observable_links": Observable.incidents.through,
        "payloads": InboundPayload,
    }
    with connection.cursor() as cursor:
        counts = {}
        for name, model in tables.items():
            cursor.execute(f'SELECT count(*) FROM "{_table(model)}"')
            counts[name] = cursor.fetchone()[0]
    return counts


def backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of a local process, e.g. our PostgreSQL backend; None if unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- Documents -----------------------------------------------------------------------------------------


def templates() -> list[str]:
    """The wire fixtures (compact JSON) used as templates, in a stable order."""
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        text = json.dumps(json.loads(path.read_text()), separators=(",", ":"))
        if len(text) <= MAX_TEMPLATE_BYTES:
            out.append(text)
    return out


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def make_documents(n: int, salt: str, seed: int) -> list[dict[str, Any]]:
    """N distinct wire findings: fresh 32-hex ids, times, 200 clusters, 2,000 IPs and 300 ASNs."""
    rng = random.Random(seed)
    texts = templates()
    base = datetime(2025, 3, 1, tzinfo=UTC)
    documents = []
    for i in range(n):
        doc = json.loads(texts[i % len(texts)])
        finding_id = hashlib.md5(f"{salt}:{i}".encode(), usedforsecurity=False).hexdigest()
        doc["id"] = finding_id
        doc["arn"] = doc["arn"].rsplit("/", 1)[0] + "/" + finding_id
        created = base + timedelta(seconds=i * 7 + rng.randrange(7))
        updated = created + timedelta(seconds=rng.randrange(1, 3600))
        doc["createdAt"], doc["updatedAt"] = _iso(created), _iso(updated)
        service = doc.get("service") or {}
        if "eventFirstSeen" in service:
            service["eventFirstSeen"] = _iso(created - timedelta(minutes=5))
            service["eventLastSeen"] = _iso(updated - timedelta(minutes=1))
        cluster = (doc.get("resource") or {}).get("eksClusterDetails")
        if cluster:
            name = f"bench-eks-{rng.randrange(CLUSTERS):03d}"
            cluster["name"] = name
            cluster["arn"] = f"arn:aws:eks:{doc['region']}:{doc['accountId']}:cluster/{name}"
        call = (service.get("action") or {}).get("kubernetesApiCallAction")
        remote = (call or {}).get("remoteIpDetails") or {}
        if call and remote.get("ipAddressV4") and not remote["ipAddressV4"].startswith("10."):
            k = rng.randrange(IP_POOL)
            ip = f"198.{18 + k // 65536}.{(k // 256) % 256}.{k % 256}"
            call["sourceIPs"] = [ip]
            remote["ipAddressV4"] = ip
            if isinstance(remote.get("organization"), dict):
                remote["organization"]["asn"] = str(64512 + k % ASN_POOL)
        documents.append(doc)
    return documents


def dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


def payload_bodies(texts: list[str]) -> list[bytes]:
    """JSON lists of BATCH findings each, as a file import would deliver them."""
    return [("[" + ",".join(texts[i : i + BATCH]) + "]").encode() for i in range(0, len(texts), BATCH)]


def eventbridge_body(doc: dict[str, Any]) -> str:
    """One finding as EventBridge delivers it to SQS."""
    event = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": doc["accountId"],
        "time": doc["updatedAt"],
        "region": doc["region"],
        "resources": [],
        "detail": doc,
    }
    return dumps(event)


def doc_key(doc: dict[str, Any]) -> str:
    return f"{doc['accountId']}/{doc['region']}/{doc['id']}"


# --- Passes ----------------------------------------------------------------------------------------------


@dataclass
class Pass:
    name: str
    items: int
    seconds: float
    client_cpu_s: float
    db_cpu_s: float | None = None
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.items / self.seconds

    def per_item_ms(self) -> dict[str, float | None]:
        return {
            "wall_ms": round(self.seconds * 1000 / self.items, 3),
            "client_cpu_ms": round(self.client_cpu_s * 1000 / self.items, 3),
            "db_backend_cpu_ms": round(self.db_cpu_s * 1000 / self.items, 3) if self.db_cpu_s is not None else None,
        }


@contextmanager
def timed(name: str, items: int, out: list[Pass]) -> Iterator[dict[str, int]]:
    """Wall time, our CPU and our PostgreSQL backend's CPU around a block; appends a Pass to `out`."""
    pid = backend_pid()
    statuses: dict[str, int] = {}
    db0, cpu0, t0 = process_cpu(pid), own_cpu(), time.perf_counter()
    yield statuses
    t1, cpu1, db1 = time.perf_counter(), own_cpu(), process_cpu(pid)
    db = (db1 - db0) if db0 is not None and db1 is not None else None
    out.append(Pass(name, items, t1 - t0, cpu1 - cpu0, db, statuses))


def copy_pass(keys: list[str], texts: list[str], name: str) -> Pass:
    """The reference: raw COPY of the same documents (jsonb + unique key), one transaction, committed."""
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE bench_ingest_copy")
    out: list[Pass] = []
    with timed(name, len(texts), out):
        # COPY text format: backslashes doubled; compact JSON holds no raw tab or newline.
        rows = (f"{k}\t{t.replace(chr(92), chr(92) * 2)}\n" for k, t in zip(keys, texts, strict=True))
        buffer = io.StringIO("".join(rows))
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.cursor.copy_expert("COPY bench_ingest_copy (key, doc) FROM STDIN", buffer)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_ingest_copy")
        copied = cursor.fetchone()[0]
    if copied != len(texts):
        raise RuntimeError(f"COPY stored {copied} rows, expected {len(texts)}")
    return out[0]


def service_pass(bodies: list[bytes], items: int, name: str) -> Pass:
    """The subject: every payload through payload_receive (source "import"), as a file import does.

    Before each payload, `close_old_connections()`, as Django does per request and Celery per task: the
    connection is replaced after CONN_MAX_AGE (60 s). Without it, one connection would keep, for the whole
    run, the foreign-key check plans PostgreSQL cached while the tables were empty (sequential scans; this
    server runs with autovacuum off, so nothing invalidates them) and the pass slows down quadratically.
    """
    from django.db import close_old_connections

    from incidents.models import InboundPayload
    from incidents.services.findings import payload_receive

    counted: Counter[str] = Counter()
    every = max(len(bodies) // 5, 1)
    db_total: float | None = 0.0
    cpu0, t0 = own_cpu(), time.perf_counter()
    mark = (t0, 0.0, 0)
    for i, body in enumerate(bodies, start=1):
        close_old_connections()
        pid = backend_pid()
        db0 = process_cpu(pid)
        counted.update(payload_receive(source=InboundPayload.Source.IMPORT, body=body).counts)
        db1 = process_cpu(pid)
        db_total = db_total + (db1 - db0) if db_total is not None and db0 is not None and db1 is not None else None
        if i % every == 0 and len(bodies) > 1:  # progress: does the rate drift as the tables grow?
            now, done = time.perf_counter(), sum(counted.values()) - mark[2]
            db_ms = f"{((db_total or 0) - mark[1]) * 1000 / done:.2f}" if db_total is not None else "n/a"
            print(f"      {i:3d}/{len(bodies)} payloads: {done / (now - mark[0]):7.1f}/s, "
                  f"PG backend CPU {db_ms} ms/finding", flush=True)  # fmt: skip
            mark = (now, db_total or 0.0, sum(counted.values()))
    seconds, cpu = time.perf_counter() - t0, own_cpu() - cpu0
    return Pass(name, items, seconds, cpu, db_total, dict(counted))


def import_pass(paths: list[Path], items: int, name: str, jobs: int) -> Pass:
    """The subject: the files through `paths_import`, as `manage.py import_findings --jobs N` takes them.

    Each of the `jobs` processes has its own PostgreSQL session, so the server's CPU is read for the
    whole server (every backend, and those that ended, from the postmaster's reaped children's time),
    and this process's CPU includes its children's.
    """
    from incidents.services.file_imports import paths_import

    counted: Counter[str] = Counter()
    db0, cpu0, t0 = server_cpu(), own_cpu_with_children(), time.perf_counter()
    for imported in paths_import(paths, jobs=jobs):
        assert imported.report is not None, imported.unreadable
        counted.update(imported.report.counts)
    seconds = time.perf_counter() - t0
    cpu, db1 = own_cpu_with_children() - cpu0, server_cpu()
    db = db1 - db0 if db0 is not None and db1 is not None else None
    return Pass(name, items, seconds, cpu, db, dict(counted))


def own_cpu_with_children() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def server_cpu() -> float | None:
    """CPU seconds of the whole local PostgreSQL server: its live processes and the ones it reaped."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW data_directory")
        data = Path(cursor.fetchone()[0])
    try:
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    total = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # reaped children
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if int(rest[1]) == postmaster:
            total += (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
    return total


# --- Profile ----------------------------------------------------------------------------------------------

# (label, file suffix, function name): cumulative time of each, read from the profile.
BREAKDOWN = [
    ("payload_store (body kept, own commit)", "incidents/services/findings.py", "payload_store"),
    ("documents_from_bytes (json.loads of the payload)", "integrations/aws/guardduty.py", "documents_from_bytes"),
    ("parse_finding", "integrations/aws/guardduty.py", "parse_finding"),
    ("  to_wire_document (model type check)", "integrations/aws/guardduty.py", "to_wire_document"),
    ("  _boto3_view (the read fields' boto3 view)", "integrations/aws/guardduty.py", "_boto3_view"),
    ("findings_ingest (set-based, per chunk)", "incidents/services/findings_batch.py", "findings_ingest"),
    ("  _create_all (first sightings)", "incidents/services/findings_batch.py", "_create_all"),
        ("finding_ingest (locked, one finding)", "incidents/services/findings.py", "finding_ingest"),
    ("  _finding_create", "incidents/services/findings.py", "_finding_create"),
    ("    incident_open", "incidents/services/incidents.py", "incident_open"),
    ("      playbook_for_finding_type", "playbooks/selectors.py", "playbook_for_finding_type"),
    ("      timeline.incident_created_event", "incidents/timeline.py", "incident_created_event"),
    ("    observables_link (both paths)", "incidents/services/findings.py", "observables_link"),
    ("    timeline.event_add (all callers)", "incidents/timeline.py", "event_add"),
    ("  _finding_repeat", "incidents/services/findings.py", "_finding_repeat"),
    ("_payload_close", "incidents/services/findings.py", "_payload_close"),
    ("psycopg2 cursor.execute (waiting on PostgreSQL)", "~",
     "<method 'execute' of 'psycopg2.extensions.cursor' objects>"),
    ("psycopg2 connection.commit (incl. deferred FK checks)", "~",
     "<method 'commit' of 'psycopg2.extensions.connection' objects>"),
    ("Django SQL compilation (as_sql)", "django/db/models/sql/compiler.py", "as_sql"),
    ("transaction.atomic enter+exit", "django/db/transaction.py", "__enter__|__exit__"),
]  # fmt: skip


def _cumulative(stats: pstats.Stats, suffix: str, names: str) -> float:
    wanted = set(names.split("|"))
    total = 0.0
    for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if name in wanted and filename.endswith(suffix):
            total += ct
    return total


def _query_counter() -> tuple[Counter[str], Callable[..., Any]]:
    counted: Counter[str] = Counter()

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        counted[sql.lstrip().split(None, 1)[0].upper()] += 1
        return execute(sql, params, many, context)

    return counted, wrapper


def profile_pass(bodies: list[bytes], items: int, name: str) -> dict[str, Any]:
    """cProfile one pass; queries counted by statement kind (SAVEPOINT/RELEASE included)."""
    from django.db import connection

    connection.close()  # a fresh connection (see service_pass)
    counted, wrapper = _query_counter()
    profiler = cProfile.Profile()
    with connection.execute_wrapper(wrapper):
        start = time.perf_counter()
        profiler.enable()
        result = service_pass(bodies, items, name)
        profiler.disable()
        wall = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.stats.values())  # type: ignore[attr-defined]
    breakdown = []
    for label, suffix, names in BREAKDOWN:
        seconds = _cumulative(stats, suffix, names)
        if seconds:
            breakdown.append({"part": label, "ms_per_finding": round(seconds * 1000 / items, 3),
                              "share": round(seconds / total, 3)})  # fmt: skip
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).strip_dirs().sort_stats("tottime").print_stats(15)
    top = [line for line in text.getvalue().splitlines() if line.strip()]
    start_at = next((i for i, line in enumerate(top) if line.lstrip().startswith("ncalls")), 0)
    return {
        "name": name,
        "findings": items,
        "statuses": result.statuses,
        "wall_s_profiled": round(wall, 3),
        "profiled_total_s": round(total, 3),
        "queries_per_finding": {k: round(v / items, 2) for k, v in sorted(counted.items(), key=lambda kv: -kv[1])},
        "queries_per_finding_total": round(sum(counted.values()) / items, 2),
        "breakdown": breakdown,
        "top15_tottime": top[start_at:],
    }


# --- Celery (P3) ------------------------------------------------------------------------------------------


def redis_client() -> Any:
    import redis
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        sys.exit("P3 needs the Redis broker: run it with `make bench-ingest` (CELERY_BROKER_URL=redis://…).")
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def worker_start() -> subprocess.Popen:
    """A real worker, its own process group, the bench's own queue; the project's Celery settings."""
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", "-c", "2",
               "--prefetch-multiplier", "1", "-Q", QUEUE, "-I", "benchmarks.tasks_bench",
               "-n", f"bench-ingest-{os.getpid()}@%h", "--without-mingle", "--without-gossip"]  # fmt: skip
    log = WORKER_LOG.open("w")
    return subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # noqa: S603  # fmt: skip


def worker_stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    pgid = os.getpgid(process.pid)
    os.killpg(pgid, signal.SIGTERM)  # warm shutdown of the main process and its pool children
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(pgid, signal.SIGKILL)
        process.wait(timeout=5)
    try:
        os.killpg(pgid, signal.SIGKILL)  # any orphaned pool child left in the group
    except ProcessLookupError:
        pass


def drain(name: str, task: str, args: list[list[Any]], counter: str, r: Any, worker: subprocess.Popen) -> Pass:
    """Enqueue every task (one apply per task), then wait for the counter; first enqueue → last done."""
    from config.celery import app

    r.delete(counter, f"{counter}:errors", f"{counter}:rejected")
    n = len(args)
    worker_cpu0 = process_group_cpu(worker.pid)
    t0, cpu0 = time.perf_counter(), own_cpu()
    with app.producer_or_acquire() as producer:
        for task_args in args:
            app.send_task(task, args=task_args, queue=QUEUE, producer=producer)
    enqueued = time.perf_counter() - t0
    last, last_change = 0, time.perf_counter()
    while True:
        done = int(r.get(counter) or 0)
        now = time.perf_counter()
        if done >= n:
            break
        if done != last:
            last, last_change = done, now
        elif now - last_change > STALL_SECONDS:
            raise RuntimeError(f"{name}: stalled at {done}/{n} tasks for {STALL_SECONDS:g} s; see {WORKER_LOG}")
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.returncode}); see {WORKER_LOG}")
        time.sleep(0.005)
    result = Pass(name, n, now - t0, own_cpu() - cpu0)
    result.statuses = {
        "enqueue_s": round(enqueued, 3),  # type: ignore[dict-item]
        "worker_cpu_ms_per_task": round((process_group_cpu(worker.pid) - worker_cpu0) * 1000 / n, 3),  # type: ignore[dict-item]
        "errors": int(r.get(f"{counter}:errors") or 0),
        "rejected": int(r.get(f"{counter}:rejected") or 0),
    }
    r.delete(counter, f"{counter}:errors", f"{counter}:rejected")
    return result


def celery_passes(events: int, noops: int, r: Any) -> dict[str, Any]:
    from django.db import connection

    from incidents.models import InboundPayload
    from incidents.services.findings import payload_receive

    warm = [eventbridge_body(d) for d in make_documents(6, salt="warm", seed=3)]
    bodies = [eventbridge_body(d) for d in make_documents(events * 2, salt="sqs", seed=2)]  # two runs, all new
    prefix = f"bench-ingest:{os.getpid()}"
    # In-process, serial: what one process does per event without Celery (is the worker CPU- or lock-bound?).
    serial_bodies = [eventbridge_body(d).encode() for d in make_documents(max(events // 20, 50), "serial", 5)]
    out: list[Pass] = []
    connection.close()  # a fresh connection, as a worker process has (see service_pass)
    with timed("serial in-process events", len(serial_bodies), out):
        for body in serial_bodies:
            payload_receive(source=InboundPayload.Source.SQS, body=body)
    serial = out[0]
    print(f"  serial in-process: {serial.rate:.1f} events/s", flush=True)
    r.delete(QUEUE)  # leftovers of an aborted run
    worker = worker_start()
    try:
        print(f"  worker pid {worker.pid} (log {WORKER_LOG.relative_to(ROOT)}); warming up", flush=True)
        start = time.perf_counter()
        drain("warm-up no-op", "benchmarks.tasks_bench.noop", [[f"{prefix}:w"]] * 20, f"{prefix}:w", r, worker)
        drain("warm-up ingest", "benchmarks.tasks_bench.ingest_one", [[b, f"{prefix}:w"] for b in warm],
              f"{prefix}:w", r, worker)  # fmt: skip
        print(f"  worker ready and warm after {time.perf_counter() - start:.1f} s", flush=True)
        before = row_counts()
        runs = []
        # Two drains of each, interleaved, and the faster of each counts: noise (another process, the
        # machine's speed drifting) only ever slows a drain down, so neither side keeps an unlucky run.
        for label, task, args in [
            ("no-op", "benchmarks.tasks_bench.noop", [[f"{prefix}:n"]] * noops),
            ("ingest", "benchmarks.tasks_bench.ingest_one", [[b, f"{prefix}:i"] for b in bodies[:events]]),
            ("no-op", "benchmarks.tasks_bench.noop", [[f"{prefix}:n"]] * noops),
            ("ingest", "benchmarks.tasks_bench.ingest_one", [[b, f"{prefix}:i"] for b in bodies[events:]]),
        ]:
            counter = f"{prefix}:{label[0]}"
            run = drain(label, task, args, counter, r, worker)
            runs.append(run)
            print(f"    {label:7} {run.items:6,} tasks  {run.seconds:7.2f} s  {run.rate:8.1f} tasks/s  "
                  f"(enqueue {run.statuses['enqueue_s']:.2f} s)", flush=True)  # fmt: skip
        after = row_counts()
    finally:
        worker_stop(worker)
        r.delete(QUEUE)
    sqs = InboundPayload.objects.filter(source=InboundPayload.Source.SQS)
    return {
        "runs": runs,
        "serial": serial,
        "new_rows": {k: after[k] - before[k] for k in after},
        "sqs_payloads_by_status": dict(Counter(sqs.values_list("status", flat=True))),
    }


# --- Report -----------------------------------------------------------------------------------------------


@dataclass
class Goal:
    goal_id: str
    name: str
    figure: str
    reference: str
    ratio: float | None
    target: str
    passed: bool


def _rate(p: Pass, unit: str = "/s") -> str:
    return f"{p.rate:,.0f} {unit}"


def report_lines(goals: list[Goal], details: list[str]) -> list[str]:
    header = f"{'Goal':4} {'What':52} {'figure':>14} {'reference (same run)':>26} {'ratio':>6}  {'goal':9} result"
    lines = [header, "-" * (len(header) + 6)]
    for g in goals:
        ratio = f"{g.ratio:6.3f}" if g.ratio is not None else f"{'':6}"
        result = "PASS" if g.passed else "FAIL <<<"
        lines.append(f"{g.goal_id:4} {g.name:52} {g.figure:>14} {g.reference:>26} {ratio}  {g.target:9} {result}")
    return lines + [""] + details


def pass_detail(p: Pass) -> str:
    per = p.per_item_ms()
    db = f"{per['db_backend_cpu_ms']:.3f}" if per["db_backend_cpu_ms"] is not None else "n/a"
    return (f"    {p.name:44} {p.items:6,} in {p.seconds:7.2f} s = {p.rate:8,.0f}/s   per item: "
            f"wall {per['wall_ms']:.3f} ms, bench CPU {per['client_cpu_ms']:.3f} ms, "
            f"PG backend CPU {db} ms")  # fmt: skip


def profile_lines(profile: dict[str, Any]) -> list[str]:
    queries = ", ".join(f"{k} {v:g}" for k, v in profile["queries_per_finding"].items())
    lines = [
        f"  {profile['name']}: {profile['findings']:,} findings, statuses {profile['statuses']}",
        f"    queries per finding: {profile['queries_per_finding_total']:g} ({queries})",
        f"    {'part (cumulative, under cProfile)':52} {'ms/finding':>10} {'share':>6}",
    ]
    for part in profile["breakdown"]:
        lines.append(f"    {part['part']:52} {part['ms_per_finding']:10.3f} {part['share']:6.1%}")
    lines.append("    top 15 by own time:")
    lines += [f"      {line}" for line in profile["top15_tottime"]]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2,000 findings and 500 events")
    parser.add_argument("--findings", type=int, default=None, help="findings for P1/P2 (default 20,000)")
    parser.add_argument("--events", type=int, default=None, help="Celery events for P3 (default 5,000)")
    parser.add_argument("--skip-celery", action="store_true", help="leave out P3")
    parser.add_argument("--skip-profile", action="store_true", help="leave out the cProfile passes")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="import processes for P1/P2")
    args = parser.parse_args()
    n = args.findings or (2_000 if args.quick else 20_000)
    events = args.events or (500 if args.quick else 5_000)
    jobs = args.jobs
    began = time.perf_counter()

    version = code_version()
    load_at_start = os.getloadavg()
    print(f"Code under test: {version}")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    print(f"Bench database {settings.DATABASES['default']['NAME']}")
    if settings.DEBUG:
        print("  WARNING: DEBUG is on (every query is kept in memory): the figures are not representative")
    database_ensure()
    call_command("migrate", verbosity=0)
    call_command("sync_playbooks", verbosity=0)
    tables_reset()
    r = None if args.skip_celery else redis_client()
    RESULTS.mkdir(parents=True, exist_ok=True)

    print(f"Documents: {n:,} distinct findings from {len(templates())} wire fixtures", flush=True)
    docs = make_documents(n, salt="bulk", seed=1)
    texts = [dumps(d) for d in docs]
    keys = [doc_key(d) for d in docs]
    assert len(set(keys)) == n
    bodies = payload_bodies(texts)
    # The parsed documents (~300 objects each) are not the subject's: kept alive, they made every full
    # collection in the passes below walk another ~6 million objects (the text and bytes are not tracked).
    del docs
    gc.collect()
    avg_bytes = sum(len(t) for t in texts) / n
    print(f"  average {avg_bytes:,.0f} B per finding, {len(bodies)} payloads of {BATCH}", flush=True)

    passes: dict[str, Pass] = {}
    print("P1 reference: COPY into bench_ingest_copy (jsonb + unique key)", flush=True)
    passes["copy1"] = copy_pass(keys, texts, "COPY (reference), run 1")
    print(pass_detail(passes["copy1"]), flush=True)
    print("One process (info): payload_receive(source=import) per payload, serially", flush=True)
    passes["serial"] = service_pass(bodies, n, "one process, payload_receive (all new)")
    print(pass_detail(passes["serial"]), f"\n    statuses {passes['serial'].statuses}", flush=True)
    tables_reset()  # the import below starts from the same empty tables
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        paths = []
        for i, body in enumerate(bodies):
            paths.append(Path(folder) / f"findings-{i:04d}.json")
            paths[-1].write_bytes(body)
        before = row_counts()
        print(f"P1 subject: the {len(paths)} files through paths_import, {jobs} at a time (all new)", flush=True)
        passes["first"] = import_pass(paths, n, f"first pass, import --jobs {jobs} (all new)", jobs)
        print(pass_detail(passes["first"]), f"\n    statuses {passes['first'].statuses}", flush=True)
        middle = row_counts()
        print("P2: the same files again (all duplicate)", flush=True)
        passes["second"] = import_pass(paths, n, f"second pass, import --jobs {jobs} (all duplicate)", jobs)
        print(pass_detail(passes["second"]), f"\n    statuses {passes['second'].statuses}", flush=True)
        after = row_counts()
    passes["copy2"] = copy_pass(keys, texts, "COPY (reference), run 2")
    print(pass_detail(passes["copy2"]), flush=True)

    profiles: list[dict[str, Any]] = []
    if not args.skip_profile:
        print(f"Profile: {PROFILE_FINDINGS:,} further findings, first pass and repeat, under cProfile", flush=True)
        extra = payload_bodies([dumps(d) for d in make_documents(PROFILE_FINDINGS, salt="profile", seed=4)])
        profiles.append(profile_pass(extra, PROFILE_FINDINGS, "profiled first pass (all new)"))
        profiles.append(profile_pass(extra, PROFILE_FINDINGS, "profiled second pass (all duplicate)"))

    celery: dict[str, Any] | None = None
    if r is not None:
        print(f"P3: {events:,} EventBridge events, one Celery task each; reference {events:,} no-op tasks", flush=True)
        celery = celery_passes(events, events, r)

    # --- goals
    copy_ref = max(passes["copy1"], passes["copy2"], key=lambda p: p.rate)  # the faster COPY: the stricter ref
    first, second = passes["first"], passes["second"]
    created_new = {k: middle[k] - before[k] for k in middle}
    second_new = {k: after[k] - middle[k] for k in after}
    # Payloads are stored on every delivery by design (each body is kept); every other table must stay put.
    second_new_rows = {k: v for k, v in second_new.items() if k != "payloads"}
    all_duplicate = second.statuses.get("duplicate", 0) == n and sum(second.statuses.values()) == n
    all_created = first.statuses.get("created", 0) == n
    p1_ratio = first.rate / copy_ref.rate
    p2_ratio = second.rate / first.rate
    goals = [
        Goal("P1", f"ingest {n:,} new findings, import --jobs {jobs}, {BATCH}/file", _rate(first),
             f"COPY {_rate(copy_ref)}", p1_ratio, f"≥{GOAL_P1:g}×", p1_ratio >= GOAL_P1 and all_created),
        Goal("P2", f"second pass, same {n:,} findings", _rate(second), f"first pass {_rate(first)}",
             p2_ratio, f"≥{GOAL_P2:g}×", p2_ratio >= GOAL_P2),
        Goal("P2", "second pass: all duplicate, 0 new rows", f"{sum(second_new_rows.values())} new rows",
             f"{second.statuses.get('duplicate', 0):,}/{n:,} duplicate", None, "0 rows",
             all_duplicate and not any(second_new_rows.values())),
    ]  # fmt: skip
    serial = passes["serial"]
    details = [f"  one process (info): {_rate(serial)} = {serial.rate / copy_ref.rate:.3f} × COPY; the import with "
               f"{jobs} processes ran {first.rate / serial.rate:.2f} × as fast"]  # fmt: skip
    details.append("Passes (per item: wall time, this process's CPU, its PostgreSQL backend's CPU; for the import: "
                   "with its processes, and the whole server's CPU):")  # fmt: skip
    details += [pass_detail(p) for p in passes.values()]
    details.append(f"  first pass created rows: {created_new}")
    details.append(f"  second pass new rows:    {second_new}  (payloads are kept on every delivery, by design)")
    details.append(f"  statuses: first {first.statuses}; second {second.statuses}")
    if celery is not None:
        noop = max((p for p in celery["runs"] if p.name == "no-op"), key=lambda p: p.rate)
        ingest_runs = [p for p in celery["runs"] if p.name == "ingest"]
        ingest = max(ingest_runs, key=lambda p: p.rate)
        p3_ratio = ingest.rate / noop.rate
        backlog = 10_000 / ingest.rate
        ok = all(p.statuses["errors"] == 0 and p.statuses["rejected"] == 0 for p in ingest_runs)
        goals += [
            Goal("P3", f"event path: {events:,} tasks, 1 finding each", _rate(ingest, "tasks/s"),
                 f"no-op {_rate(noop, 'tasks/s')}", p3_ratio, f"≥{GOAL_P3:g}×", p3_ratio >= GOAL_P3 and ok),
            Goal("P3", "10k backlog drain time (projected from the rate)", f"{backlog:.0f} s", "", None,
                 f"≤{GOAL_P3_BACKLOG_S:g} s", backlog <= GOAL_P3_BACKLOG_S),
        ]  # fmt: skip
        details.append("Celery (prefork -c 2, prefetch 1, acks_late; first enqueue → last task done):")
        for p in celery["runs"]:
            details.append(f"    {p.name:8} {p.items:6,} tasks {p.seconds:7.2f} s = {p.rate:8,.1f}/s, "
                           f"enqueue {p.statuses['enqueue_s']:.2f} s, worker CPU "
                           f"{p.statuses['worker_cpu_ms_per_task']:.2f} ms/task, errors {p.statuses['errors']}, "
                           f"rejected {p.statuses['rejected']}")  # fmt: skip
        serial = celery["serial"]
        details.append(f"  in-process, one event per payload_receive, serial: {pass_detail(serial).strip()}")
        details.append(f"  worker rate / serial in-process rate: {ingest.rate / serial.rate:.2f} (2 processes)")
        pairs = [f"{i.rate / n.rate:.3f}" for i in ingest_runs for n in celery["runs"] if n.name == "no-op"]
        details.append(f"  the faster of each side's two drains counts; each ingest drain against each no-op drain: "
                       f"{', '.join(pairs)}")  # fmt: skip
        details.append(f"  rows created by the event runs: {celery['new_rows']}")
        details.append(f"  sqs payloads by status: {celery['sqs_payloads_by_status']}")
    if profiles:
        details += ["", "Profile (cProfile inflates Python time; use the shares, not the absolute ms):"]
        for profile in profiles:
            details += profile_lines(profile)

    lines = report_lines(goals, details)
    version_after = code_version()
    header = [
        "",
        f"Code under test: {version}",
        f"{n:,} findings, avg {avg_bytes:,.0f} B; database {BENCH_DB}; load average at start "
        f"{load_at_start[0]:.2f}, at end {os.getloadavg()[0]:.2f}; run took {time.perf_counter() - began:.0f} s",
    ]
    if version_after != version:
        header.append(f"WARNING: the code changed during the run ({version} -> {version_after}); measure again.")
    lines = header + lines
    print("\n".join(lines))
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": {"at_start": version, "at_end": version_after},
        "host": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "loadavg_start": load_at_start,
            "loadavg_end": os.getloadavg(),
        },
        "settings": {
            "findings": n,
            "events": events,
            "batch": BATCH,
            "avg_bytes": round(avg_bytes),
            "database": BENCH_DB,
            "clusters": CLUSTERS,
            "ip_pool": IP_POOL,
            "asn_pool": ASN_POOL,
        },
        "goals": [asdict(g) for g in goals],
        "passes": {k: asdict(p) | {"rate": round(p.rate, 1), "per_item": p.per_item_ms()} for k, p in passes.items()},
        "rows": {"before": before, "after_first": middle, "after_second": after},
        "celery": (
            {
                "runs": [asdict(p) | {"rate": round(p.rate, 1)} for p in celery["runs"]],
                "serial_in_process": asdict(celery["serial"]) | {"rate": round(celery["serial"].rate, 1)},
                "new_rows": celery["new_rows"],
                "sqs_payloads_by_status": celery["sqs_payloads_by_status"],
            }
            if celery
            else None
        ),
        "profiles": profiles,
        "report": lines,
        "seconds": round(time.perf_counter() - began, 1),
    }
    (RESULTS / "ingest-latest.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nWritten {(RESULTS / 'ingest-latest.json').relative_to(ROOT)} (a measurement: exit status 0 even on FAIL)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
