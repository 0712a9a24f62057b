"""The same inspect → remediate → verify → roll back path against a real cluster (kind), opt-in only.

Runs when KUBECONFIG is set AND WATCHPOST_K8S_TESTS=1 (it briefly grants anonymous read on secrets in
`default`); see docs/kubernetes-rbac.md. Skipped otherwise, including in `make test`.
"""

import os

import pytest
from kubernetes import client as k8s

from integrations.kubernetes import rbac, remediation
from integrations.kubernetes.client import Connection, api_client

pytestmark = pytest.mark.skipif(
    not (os.environ.get("KUBECONFIG") and os.environ.get("WATCHPOST_K8S_TESTS") == "1"),
    reason="needs a disposable cluster: KUBECONFIG=... WATCHPOST_K8S_TESTS=1",
)
NAME, NAMESPACE = "watchpost-test-anonymous-secrets", "default"


def _create(api: k8s.ApiClient) -> None:
    rbac_api = k8s.RbacAuthorizationV1Api(api)
    rbac_api.create_namespaced_role(
        NAMESPACE,
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": NAME},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
        },
    )
    rbac_api.create_namespaced_role_binding(
        NAMESPACE,
        body={
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:unauthenticated"}],
        },
    )


def _cleanup(api: k8s.ApiClient) -> None:
    rbac_api = k8s.RbacAuthorizationV1Api(api)
    for delete in (rbac_api.delete_namespaced_role_binding, rbac_api.delete_namespaced_role):
        try:
            delete(NAME, NAMESPACE)
        except k8s.ApiException:
            pass


def test_inspect_remediate_verify_and_roll_back_on_a_real_cluster() -> None:
    api = api_client(Connection(name="real", kubeconfig=os.environ["KUBECONFIG"]))
    probe = rbac.Probe(verb="get", resource="secrets", namespace=NAMESPACE)
    _cleanup(api)
    _create(api)
    try:
        objects, report = rbac.rbac_inspect(api)
        target = f"RoleBinding/{NAMESPACE}/{NAME}"
        assert any(row.binding == target and row.risk == "critical" for row in report.rows)
        assert rbac.probes_run(api, [probe])[0].allowed
        plan = remediation.plan_compute(objects, targets=[target])
        assert {check["ok"] for check in remediation.plan_dry_run(api, plan)} == {"yes"}
        (outcome,) = [remediation.change_apply(api, change) for change in plan.changes]
        assert not rbac.probes_run(api, [probe])[0].allowed
        remediation.change_restore(api, plan.changes[0], expected_rv=outcome.resource_version_after)
        assert rbac.probes_run(api, [probe])[0].allowed
    finally:
        _cleanup(api)
