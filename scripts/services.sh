#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on loopback before the test suite runs.
# Starts them when they are installed but stopped; says exactly what is missing otherwise.
set -u

pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null || python3 - <<'PY' 2>/dev/null
import socket; socket.create_connection(("127.0.0.1", 5432), 1).close()
PY
}
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is not running: starting it"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { echo "ERROR: PostgreSQL is not reachable on 127.0.0.1:5432 and is not installed here (apt-get install postgresql)." >&2; exit 1; }
fi

if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "Redis is not running: starting it"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  fi
  redis_up || { echo "ERROR: Redis is not reachable on 127.0.0.1:6379 and is not installed here (apt-get install redis-server)." >&2; exit 1; }
fi
echo "PostgreSQL and Redis are up."
