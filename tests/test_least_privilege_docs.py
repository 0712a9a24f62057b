"""The published least-privilege ClusterRole and IAM policy stay minimal, and are enough (checked on the sandbox)."""

import json
from pathlib import Path

import yaml

from integrations.kubernetes import rbac, remediation
from integrations.kubernetes.client import Connection, api_client

DOCS = Path(__file__).resolve().parent.parent / "docs" / "kubernetes"
RBAC_GROUP = "rbac.authorization.k8s.io"
# Every (API group, resource, verb, resourceNames) the app's identity may hold, and nothing more.
EXPECTED = {
    *(
        (RBAC_GROUP, resource, verb, ())
        for resource in ("clusterroles", "clusterrolebindings", "roles", "rolebindings")
        for verb in ("get", "list")
    ),
    *(
        (RBAC_GROUP, resource, verb, ())
        for resource in ("clusterrolebindings", "rolebindings")
        for verb in ("patch", "delete")
    ),
    (RBAC_GROUP, "clusterroles", "patch", ("system:basic-user", "system:discovery")),
    ("authorization.k8s.io", "subjectaccessreviews", "create", ()),
}


def _documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DOCS / name).read_text()) if doc]


def _grants(role: dict) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {
        (group, resource, verb, tuple(sorted(rule.get("resourceNames") or ())))
        for rule in role["rules"]
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule["verbs"]
    }


def test_the_cluster_role_grants_exactly_what_the_app_uses() -> None:
    role = next(doc for doc in _documents("watchpost-clusterrole.yaml") if doc["kind"] == "ClusterRole")
    grants = _grants(role)
    assert grants == EXPECTED
    text = json.dumps(role)
    assert "*" not in text and "secrets" not in text and "nonResourceURLs" not in text
    assert not {verb for _, _, verb, _ in grants} & {"impersonate", "bind", "escalate", "watch", "update"}


def test_the_break_glass_rollback_role_only_creates_bindings() -> None:
    (role,) = _documents("watchpost-rollback-clusterrole.yaml")
    assert _grants(role) == {
        (RBAC_GROUP, "clusterrolebindings", "create", ()),
        (RBAC_GROUP, "rolebindings", "create", ()),
    }


def test_the_iam_policy_allows_only_describe_cluster_on_clusters() -> None:
    policy = json.loads((DOCS / "watchpost-iam-policy.json").read_text())
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "eks:DescribeCluster"
    assert statement["Resource"].startswith("arn:aws:eks:") and statement["Resource"].endswith(":cluster/*")
    assert "NotAction" not in statement and "NotResource" not in statement


def test_the_cluster_role_is_enough_to_inspect_and_remediate(sandbox, tmp_path) -> None:
    # given: the sandbox holds the published role, bound to the group Watchpost's identity is mapped to
    box = sandbox(
        "namespaced-secrets-unauthenticated",
        *_documents("watchpost-clusterrole.yaml"),
        *[
            o
            for o in yaml.safe_load(
                (Path(rbac.__file__).parent / "sandbox" / "scenarios" / "upgraded-pre-1.14.yaml").read_text()
            )
        ],
    )
    token = box.cluster.token_add("arn:aws:iam::111122223333:role/watchpost", ["watchpost:responders"])
    path = tmp_path / "watchpost.yaml"
    path.write_text(json.dumps(box.cluster.kubeconfig(token=token)))
    api = api_client(Connection(name="least-privilege", kubeconfig=str(path)))
    # when: a whole inspection, dry run and remediation as that identity
    objects, report = rbac.rbac_inspect(api)
    plan = remediation.plan_compute(objects)
    assert {check["ok"] for check in remediation.plan_dry_run(api, plan)} == {"yes"}
    outcomes = [remediation.change_apply(api, change) for change in plan.changes]
    # then
    assert {o.result for o in outcomes} == {"applied"} and len(outcomes) == 3
    assert {p.label for p in rbac.probes_run(api, rbac.probes_default()) if p.allowed} == {
        "get /version",
        "get /healthz",
    }
