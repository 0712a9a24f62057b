"""Fixtures that start the sandbox Kubernetes API server on loopback (import them into a test module).

`sandbox("upgraded-pre-1.14")` starts a server with that scenario (or a list of objects) and writes a
kubeconfig with the admin token; `sandbox_api(cluster)` is a real `kubernetes` ApiClient for it.
Every server is stopped at the end of the test.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from integrations.kubernetes.client import Connection, api_client
from integrations.kubernetes.sandbox.server import SandboxCluster, scenario_load

SCENARIOS = Path(__file__).resolve().parent.parent / "integrations" / "kubernetes" / "sandbox" / "scenarios"
SCENARIO_NAMES = sorted(path.stem for path in SCENARIOS.glob("*.yaml"))


class Sandbox:
    def __init__(self, cluster: SandboxCluster, kubeconfig: Path) -> None:
        self.cluster = cluster
        self.kubeconfig = kubeconfig

    @property
    def store(self) -> Any:
        return self.cluster.store

    def connection(self) -> Connection:
        return Connection(name="sandbox", kubeconfig=str(self.kubeconfig))

    def api(self) -> k8s.ApiClient:
        return api_client(self.connection())

    def subjects(self, resource: str, name: str, namespace: str = "") -> list[str]:
        obj = self.store.get(resource, namespace, name)
        return [f"{s['kind']}/{s['name']}" for s in obj.get("subjects") or []]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    started: list[SandboxCluster] = []

    def start(scenario: str | list[dict[str, Any]] = "clean-modern", *extra: dict[str, Any]) -> Sandbox:
        objects = scenario_load(SCENARIOS / f"{scenario}.yaml") if isinstance(scenario, str) else list(scenario)
        cluster = SandboxCluster([*objects, *extra]).start()
        started.append(cluster)
        kubeconfig = cluster.kubeconfig_write(tmp_path / f"kubeconfig-{len(started)}.yaml")
        return Sandbox(cluster, kubeconfig)

    yield start
    for cluster in started:
        cluster.stop()
