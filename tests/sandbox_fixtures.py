"""Fixtures that start the sandbox Kubernetes API server on loopback (`sandbox`, made global in conftest).

`sandbox("upgraded-pre-1.14")` starts a server with that scenario (or a list of objects) and writes a
kubeconfig with the admin token; `sandbox_api(cluster)` is a real `kubernetes` ApiClient for it.
Every server is stopped at the end of the test. `scenario_cluster` runs the same test on a real cluster
too when KUBECONFIG is set and WATCHPOST_K8S_TESTS=1 (docs/kubernetes-rbac.md), restoring it afterwards.
"""

import json
import os
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


# -- the same scenarios on a real cluster (opt-in) ------------------------------------------------
REAL_CLUSTER = bool(os.environ.get("KUBECONFIG")) and os.environ.get("WATCHPOST_K8S_TESTS") == "1"
_KINDS = {
    "ClusterRole": "cluster_role",
    "ClusterRoleBinding": "cluster_role_binding",
    "Role": "namespaced_role",
    "RoleBinding": "namespaced_role_binding",
}


class RealCluster:
    """A scenario applied to the cluster KUBECONFIG names; `restore()` puts every object back as it was."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.connection = Connection(name="real", kubeconfig=os.environ["KUBECONFIG"])
        self._api = api_client(self.connection)
        self.rbac = k8s.RbacAuthorizationV1Api(self._api)
        self.created: list[dict[str, Any]] = []
        self.replaced: list[dict[str, Any]] = []
        self.namespaces: list[str] = []
        for namespace in sorted({o["metadata"].get("namespace") for o in objects} - {None, "default"}):
            self._namespace_ensure(namespace)
        for obj in objects:
            self._apply(obj)

    def _namespace_ensure(self, name: str) -> None:
        core = k8s.CoreV1Api(self._api)
        try:
            core.read_namespace(name, _preload_content=False)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            core.create_namespace(
                body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, _preload_content=False
            )
            self.namespaces.append(name)

    def api(self) -> k8s.ApiClient:
        return self._api

    def _call(self, verb: str, obj: dict[str, Any], **kwargs: Any) -> Any:
        meta = obj["metadata"]
        args = {"namespace": meta.get("namespace", "default")} if obj["kind"] in ("Role", "RoleBinding") else {}
        if verb != "create":
            args["name"] = meta["name"]
        method = getattr(self.rbac, f"{verb}_{_KINDS[obj['kind']]}")
        response = method(**args, **kwargs, _preload_content=False)
        return json.loads(response.data) if verb != "delete" else None

    def _apply(self, obj: dict[str, Any]) -> None:
        obj = {"apiVersion": "rbac.authorization.k8s.io/v1", **obj}
        try:
            current = self._call("read", obj)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            self._call("create", obj, body=obj)
            self.created.append(obj)
            return
        self.replaced.append(current)
        body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
        self._call("replace", obj, body=body)

    def restore(self) -> None:
        for obj in self.created:
            try:
                self._call("delete", obj)
            except k8s.ApiException:
                pass
        for name in self.namespaces:
            k8s.CoreV1Api(self._api).delete_namespace(name, _preload_content=False)
        for original in self.replaced:
            now = self._call("read", original)
            body = {
                **original,
                "metadata": {**original["metadata"], "resourceVersion": now["metadata"]["resourceVersion"]},
            }
            self._call("replace", original, body=body)


@pytest.fixture(
    params=[
        "sandbox",
        pytest.param(
            "kubeconfig",
            marks=pytest.mark.skipif(
                not REAL_CLUSTER, reason="a real cluster only with KUBECONFIG=... WATCHPOST_K8S_TESTS=1"
            ),
        ),
    ]
)
def scenario_cluster(request: pytest.FixtureRequest, sandbox: Callable[..., Sandbox]) -> Iterator[Callable[..., Any]]:
    """`scenario_cluster("upgraded-pre-1.14")`: the scenario on the sandbox, and on a real cluster when opted in."""
    applied: list[RealCluster] = []

    def start(scenario: str) -> Any:
        if request.param == "sandbox":
            return sandbox(scenario)
        applied.append(RealCluster(scenario_load(SCENARIOS / f"{scenario}.yaml")))
        return applied[-1]

    yield start
    for cluster in applied:
        cluster.restore()
