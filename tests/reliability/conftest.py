"""Fixtures of the fault-injection suite (`make test-reliability`): each test owns its processes."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group

from incidents import permissions
from incidents.models import InboundPayload
from incidents.services.findings import payload_store
from tests.fixtures import load_guardduty
from tests.reliability.procs import RedisServer

TEMPLATE = load_guardduty("wire/Discovery_Kubernetes_SuccessfulAnonymousAccess.json")


@pytest.fixture(autouse=True)
def roles(transactional_db: None) -> None:
    """Transactional tests flush every table after each test, the migration-made role groups too."""
    for name in permissions.ROLES:
        Group.objects.get_or_create(name=name)


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Any]:
    """`redis_factory(appendonly=...)`: a private redis-server, stopped after the test whatever happens."""
    started: list[RedisServer] = []

    def make(*, appendonly: bool) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", appendonly=appendonly)
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()


def wire_finding(n: int, *, tag: str = "rel") -> dict[str, Any]:
    """A distinct wire-spelling finding: its own id, so each opens its own incident."""
    document = json.loads(json.dumps(TEMPLATE))
    document["id"] = f"{tag}{n:020d}"
    document["arn"] = document["arn"].rsplit("/", 1)[0] + "/" + document["id"]
    return document


def payloads_store(count: int, *, tag: str = "rel") -> list[int]:
    """`count` SQS-shaped payloads of one finding each, stored and left unprocessed (status "received")."""
    return [
        payload_store(source=InboundPayload.Source.SQS, body=json.dumps(wire_finding(n, tag=tag)).encode()).pk
        for n in range(count)
    ]


START_MS = 1_714_600_000_000  # 2024-05-01T21:46:40Z


def timed_findings(count: int, *, tag: str = "gd") -> list[dict[str, Any]]:
    """`count` wire findings, number n updated at START_MS + n seconds (so the cursor order is the number order)."""
    from datetime import UTC, datetime

    documents = []
    for n in range(count):
        document = wire_finding(n, tag=tag)
        moment = datetime.fromtimestamp((START_MS + n * 1000) / 1000, tz=UTC)
        document["updatedAt"] = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        documents.append(document)
    return documents


def finding_ids_stored() -> set[str]:
    from incidents.models import Finding

    return set(Finding.objects.values_list("finding_id", flat=True))
