"""`make bench-ingest-floor`: what PostgreSQL alone costs per ingested event (the floor under P3).

One EventBridge event that opens a case sends these statements (as `payload_receive` does; compare
the SQL a test run logs): store the payload and commit; look the finding key up; insert the incident,
(before checklists waited for the first read) its checklist, the finding with its raw document,
the observables and their links, two timeline rows; close the payload; commit. Here they are prebuilt
and replayed with the bare database cursor, with no ORM, no parsing and no Celery, so the figures
are the database's own price for the rows an event writes. Run with and without the checklist rows
(ingestion now leaves them to the case's first read; the "with" runs show what they cost an event).

Per event: wall time, this process's CPU and its PostgreSQL backend's CPU (from /proc). The database
is the ingest bench's own (`watchpost_bench_ingest`, made and reset as `make bench-ingest` does).
A measurement, not a test.
"""

import argparse
import hashlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Importing benchmarks.ingest points DATABASE_URL at the bench database before Django is set up.
from benchmarks.ingest import backend_pid, make_documents, process_cpu, tables_reset  # noqa: E402

ACCOUNT, REGION = "210987654321", "eu-west-1"


def _tables() -> dict[str, str]:
    from incidents.models import Finding, InboundPayload, Incident, Observable, TimelineEvent
    from playbooks.models import ChecklistItem, PlaybookStep

    models = {"payload": InboundPayload, "finding": Finding, "incident": Incident, "observable": Observable,
              "link": Observable.incidents.through, "event": TimelineEvent, "item": ChecklistItem,
              "step": PlaybookStep}  # fmt: skip
    return {name: model._meta.db_table for name, model in models.items()}


def _event(
    cursor: Any, connection: Any, t: dict[str, str], doc: dict[str, Any], playbook: int, checklist: bool
) -> None:
    body = json.dumps(doc).encode()
    key = doc["id"]
    cursor.execute(
        f'INSERT INTO "{t["payload"]}" (source, received_at, body, sha256, size, meta, status, counts) '  # noqa: S608
        "VALUES ('sqs', now(), %s, %s, %s, '{}', 'received', '{}') RETURNING id",
        [body, hashlib.sha256(body).hexdigest(), len(body)],
    )
    (payload,) = cursor.fetchone()
    connection.commit()  # the payload is kept before it is parsed, on its own
    cursor.execute(
        f'SELECT finding_updated_at, count, incident_id FROM "{t["finding"]}" '  # noqa: S608
        "WHERE account_id = %s AND region = %s AND finding_id = %s",
        [ACCOUNT, REGION, key],
    )
    cursor.fetchall()
    cursor.execute(
        f'INSERT INTO "{t["incident"]}" (title, summary, severity, priority, phase, resolution, finding_type, '  # noqa: S608
        "playbook_id, restricted, cluster_name, account_id, region, source, external_ref, created_at, updated_at, "
        "detected_at, sla_due_at, acknowledged, close_override_reason) VALUES (%s, %s, 3, 2, 'new', '', %s, %s, "
        "false, %s, %s, %s, 'guardduty', %s, now(), now(), now(), now(), false, '') RETURNING id",
        [doc["title"], doc["description"], doc["type"], playbook, "bench-floor", ACCOUNT, REGION,
         f"{ACCOUNT}/{REGION}/{key}"],
    )  # fmt: skip
    (incident,) = cursor.fetchone()
    if checklist:
        cursor.execute(
            f'INSERT INTO "{t["item"]}" (incident_id, step_id, position, status, comment, decision) '  # noqa: S608
            f"SELECT %s, s.id, s.position, 'todo', '', '' FROM \"{t['step']}\" s WHERE s.playbook_id = %s",
            [incident, playbook],
        )
    cursor.execute(
        f'INSERT INTO "{t["finding"]}" (incident_id, account_id, region, finding_id, finding_type, title, '  # noqa: S608
        "description, severity, count, first_seen, last_seen, finding_created_at, finding_updated_at, is_sample, "
        "cluster_name, cluster_arn, raw, last_payload_id, received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 8.0, 1, "
        "now(), now(), now(), now(), false, 'bench-floor', '', %s, %s, now()) RETURNING id",
        [incident, ACCOUNT, REGION, key, doc["type"], doc["title"], doc["description"], json.dumps(doc), payload],
    )
    (finding,) = cursor.fetchone()
    call = doc["service"]["action"].get("kubernetesApiCallAction") or {}
    observed = [("ip", ip) for ip in call.get("sourceIps", [])[:1]]
    observed += [("cluster", "bench-floor"), ("user_agent", call.get("userAgent", "-"))]
    cursor.execute(
        f'INSERT INTO "{t["observable"]}" (kind, value) '  # noqa: S608
        "SELECT * FROM unnest(%s::varchar[], %s::varchar[]) ON CONFLICT DO NOTHING",
        [[k for k, _ in observed], [v for _, v in observed]],
    )
    cursor.execute(
        f'INSERT INTO "{t["link"]}" (observable_id, incident_id) SELECT o.id, w.column1 '  # noqa: S608
        f"FROM (VALUES {', '.join(['(%s, %s, %s)'] * len(observed))}) AS w "
        f'JOIN "{t["observable"]}" o ON o.kind = w.column2 AND o.value = w.column3 WHERE true ON CONFLICT DO NOTHING',
        [cell for k, v in observed for cell in (incident, k, v)],
    )
    cursor.execute(
        f'INSERT INTO "{t["event"]}" (incident_id, kind, occurred_at, recorded_at, summary, data) '  # noqa: S608
        "VALUES (%s, 'created', now(), now(), 'opened', %s), (%s, 'finding', now(), now(), 'finding', %s)",
        [incident, json.dumps({"playbook": playbook}), incident, json.dumps({"finding": finding})],
    )
    cursor.execute(
        f"UPDATE \"{t['payload']}\" SET status = 'accepted', processed_at = now() WHERE id = %s",  # noqa: S608
        [payload],
    )
    connection.commit()


def replay(docs: list[dict[str, Any]], checklist: bool) -> dict[str, float]:
    from django.db import connection

    from playbooks.selectors import playbook_for_finding_type

    tables = _tables()
    playbook = playbook_for_finding_type(finding_type=docs[0]["type"]).pk
    connection.ensure_connection()
    pid = backend_pid()
    raw = connection.connection  # the psycopg2 connection itself: no Django layer in the loop
    raw.autocommit = False  # two transactions per event, as the app's: the payload, then the rest
    with raw.cursor() as cursor:
        cpu0, db0, wall0 = time.process_time(), process_cpu(pid) or 0.0, time.perf_counter()
        for doc in docs:
            _event(cursor, raw, tables, doc, playbook, checklist)
        wall, cpu, db = time.perf_counter() - wall0, time.process_time() - cpu0, (process_cpu(pid) or 0.0) - db0
    raw.autocommit = True  # how Django left it
    n = len(docs)
    return {"wall_ms": wall / n * 1000, "client_cpu_ms": cpu / n * 1000, "db_backend_cpu_ms": db / n * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="events per run (default 1,000)")
    args = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command

    from benchmarks.common import database_ensure

    database_ensure()
    call_command("migrate", verbosity=0)
    call_command("sync_playbooks", verbosity=0)
    tables_reset()
    print(f"Floor: {args.events:,} events per run, statements prebuilt, bare psycopg2 cursor")
    for run, checklist in enumerate((True, False, True, False)):
        docs = make_documents(args.events, salt=f"floor-{run}-{uuid.uuid4().hex}", seed=run)
        figures = replay(docs, checklist)
        label = "with the checklist rows   " if checklist else "without the checklist rows"
        print(
            f"  {label}: wall {figures['wall_ms']:.2f} ms/event, this process's CPU "
            f"{figures['client_cpu_ms']:.2f} ms, PostgreSQL backend CPU {figures['db_backend_cpu_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
