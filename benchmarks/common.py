"""What both benchmark scripts need: the code version under test and the bench database."""

import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """The commit under test, with "+dirty" when tracked files differ from it (read-only git calls)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        # Tracked changes outside benchmarks/ (the bench's own files do not change what is measured).
        status = ["git", "status", "--porcelain", "-uno", "--", ".", ":!benchmarks"]
        dirty = subprocess.run(status, cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if head.returncode == 0 else "unknown"


# --- Database ----------------------------------------------------------------------------------------


def database_ensure() -> None:
    """Create the bench database (on the server DATABASE_URL points at) when it is missing."""
    import psycopg2
    from django.conf import settings

    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        sys.exit("The bench needs PostgreSQL: run it with `make bench` (DATABASE_URL=postgres://…).")
    params = {"dbname": "postgres", "user": db.get("USER") or None, "password": db.get("PASSWORD") or None}
    params |= {"host": db.get("HOST") or None, "port": db.get("PORT") or None}
    conn = psycopg2.connect(**{k: v for k, v in params.items() if v is not None})
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]])
            if cursor.fetchone() is None:
                print(f"  creating database {db['NAME']}")
                cursor.execute(f'CREATE DATABASE "{db["NAME"]}"')
    finally:
        conn.close()


def process_group_cpu(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its direct children (server or worker pool)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue
        if pid == root_pid or int(fields[1]) == root_pid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds used by this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
