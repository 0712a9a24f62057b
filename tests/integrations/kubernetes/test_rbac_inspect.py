"""Inspection over HTTP against the sandbox: each scenario's exposure report, row for row; errors; the command."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from kubernetes import client as k8s

from integrations.errors import PermanentIntegrationError, TransientIntegrationError
from integrations.kubernetes import rbac
from integrations.kubernetes.client import Connection, api_client

PUBLIC = (
    "Group/system:unauthenticated",
    "cluster-wide",
    "ClusterRole/system:public-info-viewer",
    "ClusterRoleBinding/system:public-info-viewer",
    "expected",
    "low",
)
EXPECTED_ROWS = {
    "clean-modern": [PUBLIC],
    "upgraded-pre-1.14": [
        (
            "Group/system:unauthenticated",
            "cluster-wide",
            "ClusterRole/system:basic-user",
            "ClusterRoleBinding/system:basic-user",
            "legacy-default",
            "medium",
        ),
        (
            "Group/system:unauthenticated",
            "cluster-wide",
            "ClusterRole/system:discovery",
            "ClusterRoleBinding/system:discovery",
            "legacy-default",
            "medium",
        ),
        PUBLIC,
    ],
    "custom-cluster-admin-anonymous": [
        (
            "User/system:anonymous",
            "cluster-wide",
            "ClusterRole/cluster-admin",
            "ClusterRoleBinding/debug-anonymous-admin",
            "custom",
            "critical",
        ),
        PUBLIC,
    ],
    "namespaced-secrets-unauthenticated": [
        (
            "Group/system:unauthenticated",
            "payments",
            "Role/secret-reader",
            "RoleBinding/payments/read-secrets",
            "custom",
            "critical",
        ),
        PUBLIC,
    ],
    "gitops-anonymous-binding": [
        (
            "User/system:anonymous",
            "cluster-wide",
            "ClusterRole/view",
            "ClusterRoleBinding/public-dashboard-view",
            "custom",
            "high",
        ),
        PUBLIC,
    ],
}
# Probes that SubjectAccessReview allows per scenario (every other fixed probe is denied).
ALLOWED_PROBES = {
    "clean-modern": {"get /version", "get /healthz"},
    "upgraded-pre-1.14": {"get /version", "get /healthz", "get /api", "get /apis"},
    "custom-cluster-admin-anonymous": {
        label
        for label in (
            "get /version",
            "get /healthz",
            "get /api",
            "get /apis",
            "list pods (all namespaces)",
            "list secrets (all namespaces)",
            "list namespaces (all namespaces)",
            "create clusterrolebindings.rbac.authorization.k8s.io (all namespaces)",
        )
    },
    "namespaced-secrets-unauthenticated": {"get /version", "get /healthz"},
    "gitops-anonymous-binding": {
        "get /version",
        "get /healthz",
        "list pods (all namespaces)",
        "list namespaces (all namespaces)",
    },
}


def _rows(report: rbac.ExposureReport) -> list[tuple[str, ...]]:
    return [(r.subject, r.scope, r.role, r.binding, r.classification, r.risk) for r in report.rows]


@pytest.mark.parametrize("scenario", sorted(EXPECTED_ROWS))
def test_each_scenario_gives_its_exposure_report_row_for_row(scenario_cluster, scenario) -> None:
    _, report = rbac.rbac_inspect(scenario_cluster(scenario).api())
    assert _rows(report) == EXPECTED_ROWS[scenario]
    allowed = {probe.label for probe in report.probes if probe.allowed}
    assert allowed == ALLOWED_PROBES[scenario]
    assert len(report.probes) == len(rbac.FIXED_PROBES)


def test_gitops_ownership_is_noted(sandbox) -> None:
    _, report = rbac.rbac_inspect(sandbox("gitops-anonymous-binding").api())
    assert report.rows[0].gitops.startswith("Argo CD (argocd.argoproj.io/tracking-id=platform-rbac")
    assert report.rows[1].gitops == ""


def test_effective_permissions_list_verbs_resources_and_urls(sandbox) -> None:
    _, report = rbac.rbac_inspect(sandbox("namespaced-secrets-unauthenticated").api())
    assert report.rows[0].permissions == (rbac.Permission(verbs=("get", "list", "watch"), resources=("secrets",)),)
    assert "/healthz" in report.rows[1].permissions[0].non_resource_urls


def test_the_findings_own_call_is_probed_too(sandbox) -> None:
    api = sandbox("namespaced-secrets-unauthenticated").api()
    finding = {"verb": "get", "resource": "secrets", "namespace": "payments", "request_uri": "/api/v1/..."}
    _, report = rbac.rbac_inspect(api, finding=finding)
    probe = report.probes[-1]
    assert (probe.source, probe.label, probe.allowed) == ("finding", "get secrets in payments", True)
    assert 'RoleBinding "read-secrets/payments"' in probe.reason


def test_authenticated_bound_to_a_powerful_role_is_flagged_separately(sandbox) -> None:
    grant = {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "everyone-edits"},
        "roleRef": {"kind": "ClusterRole", "name": "edit", "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [{"kind": "Group", "name": "system:authenticated"}],
    }
    _, report = rbac.rbac_inspect(sandbox("clean-modern", grant).api())
    assert [(r.binding, r.risk) for r in report.authenticated] == [("ClusterRoleBinding/everyone-edits", "critical")]
    assert _rows(report) == [PUBLIC]  # not an anonymous row


def test_listing_follows_continue_tokens(sandbox, monkeypatch) -> None:
    monkeypatch.setattr(rbac, "PAGE_SIZE", 2)
    many = [
        {
            "kind": "RoleBinding",
            "metadata": {"name": f"rb-{i}", "namespace": f"ns-{i % 3}"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": f"u{i}"}],
        }
        for i in range(9)
    ]
    box = sandbox("clean-modern", *many)
    objects = rbac.rbac_objects_fetch(box.api())
    assert len(objects.role_bindings) == 10  # the scenario's one + 9
    pages = [path for method, path in box.cluster.requests if "/rolebindings?" in path]
    assert len(pages) == 5 and sum("continue=" in path for path in pages) == 4


def test_a_missing_permission_is_named(sandbox, tmp_path) -> None:
    box = sandbox()
    token = box.cluster.token_add("watchpost")
    path = tmp_path / "limited.yaml"
    path.write_text(json.dumps(box.cluster.kubeconfig(token=token)))
    with pytest.raises(PermanentIntegrationError) as caught:
        rbac.rbac_inspect(api_client(Connection(name="limited", kubeconfig=str(path))))
    assert "403 Forbidden: missing permission: list clusterroles.rbac.authorization.k8s.io (cluster scope)" in str(
        caught.value
    )


def test_a_bad_token_says_401(sandbox, tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(sandbox().cluster.kubeconfig(token="expired")))  # noqa: S106
    with pytest.raises(PermanentIntegrationError, match="401 Unauthorized"):
        rbac.rbac_inspect(api_client(Connection(name="bad", kubeconfig=str(path))))


def test_an_unreachable_endpoint_is_transient_and_says_so(sandbox, tmp_path) -> None:
    box = sandbox()
    config = box.cluster.kubeconfig()
    box.cluster.stop()  # nothing listens there any more
    path = tmp_path / "gone.yaml"
    path.write_text(json.dumps(config))
    api = api_client(Connection(name="gone", kubeconfig=str(path)))
    api.configuration.retries = 0
    with pytest.raises(TransientIntegrationError, match="endpoint unreachable"):
        rbac.rbac_inspect(api)


def test_the_command_prints_the_report_as_json(sandbox) -> None:
    box = sandbox("upgraded-pre-1.14")
    out = StringIO()
    call_command("rbac_inspect", "--kubeconfig", str(box.kubeconfig), "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert [(r["subject"], r["binding"], r["classification"], r["risk"]) for r in data["rows"]][:2] == [
        ("Group/system:unauthenticated", "ClusterRoleBinding/system:basic-user", "legacy-default", "medium"),
        ("Group/system:unauthenticated", "ClusterRoleBinding/system:discovery", "legacy-default", "medium"),
    ]
    apis = next(p for p in data["probes"] if p["path"] == "/apis")
    assert apis["allowed"] is True and apis["verb"] == "get" and apis["namespace"] == ""
    assert [c["target"] for c in data["plan"]["changes"]] == [
        "ClusterRoleBinding/system:basic-user",
        "ClusterRoleBinding/system:discovery",
    ]


def test_the_scan_never_builds_the_clients_model_classes(sandbox, monkeypatch) -> None:
    # P10: responses are parsed with json.loads; deserialising into models is what made big lists slow
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("a response was deserialised into model classes")

    monkeypatch.setattr(k8s.ApiClient, "response_deserialize", refuse)
    monkeypatch.setattr(k8s.ApiClient, "deserialize", refuse)
    objects, report = rbac.rbac_inspect(sandbox("upgraded-pre-1.14").api())
    assert len(objects.cluster_role_bindings) == 4 and len(report.probes) == len(rbac.FIXED_PROBES)


def test_the_playbooks_sample_user_on_discovery_is_a_custom_grant(sandbox) -> None:
    # The playbook's rbac-lookup sample: the USER system:anonymous on system:discovery, which no
    # Kubernetes version ever shipped (DOMAIN.md §2.2): someone added it.
    discovery = {
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": "system:discovery",
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:discovery"},
        "subjects": [
            {"kind": "Group", "name": "system:authenticated"},
            {"kind": "User", "name": "system:anonymous"},
            {"kind": "Group", "name": "system:unauthenticated"},
        ],
    }
    _, report = rbac.rbac_inspect(sandbox("clean-modern", discovery).api())
    assert [(r.subject, r.classification) for r in report.rows if r.binding.endswith("system:discovery")] == [
        ("Group/system:unauthenticated", "legacy-default"),
        ("User/system:anonymous", "custom"),
    ]
