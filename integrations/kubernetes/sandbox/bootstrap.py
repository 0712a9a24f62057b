"""The default ClusterRoles and ClusterRoleBindings of a cluster created on Kubernetes 1.14 or later.

Reference: kubernetes `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go` and the RBAC docs,
"Default roles and role bindings" / "API discovery roles" (DOMAIN.md §2.2). Only the roles Watchpost
reasons about are here, with their rules inlined (the real admin/edit/view are aggregated).
Every default carries the `rbac-defaults` label and `autoupdate: "true"`, as on a real cluster.
"""

from typing import Any

GROUP = "rbac.authorization.k8s.io"
PUBLIC_INFO_PATHS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]
DISCOVERY_PATHS = [*PUBLIC_INFO_PATHS, "/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*"]
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
WORKLOADS = ["pods", "services", "configmaps", "persistentvolumeclaims", "serviceaccounts", "events"]


def _meta(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    }


def cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole", "metadata": _meta(name), "rules": rules}


def cluster_role_binding(name: str, subjects: list[tuple[str, str]], role: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role or name},
        "subjects": [{"apiGroup": GROUP, "kind": kind, "name": subject} for kind, subject in subjects],
    }


def default_objects() -> list[dict[str, Any]]:
    authenticated = ("Group", "system:authenticated")
    return [
        cluster_role(
            "cluster-admin",
            [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}],
        ),
        cluster_role(
            "admin",
            [
                {
                    "apiGroups": ["", "apps", "batch"],
                    "resources": [*WORKLOADS, "secrets", "deployments", "jobs", "pods/exec"],
                    "verbs": READ + WRITE,
                },
                {"apiGroups": [GROUP], "resources": ["roles", "rolebindings"], "verbs": READ + WRITE},
            ],
        ),
        cluster_role(
            "edit",
            [
                {
                    "apiGroups": ["", "apps", "batch"],
                    "resources": [*WORKLOADS, "secrets", "deployments", "jobs", "pods/exec"],
                    "verbs": READ + WRITE,
                }
            ],
        ),
        cluster_role(
            "view",
            [
                {
                    "apiGroups": ["", "apps", "batch"],
                    "resources": [*WORKLOADS, "deployments", "jobs", "namespaces"],
                    "verbs": READ,
                }
            ],
        ),
        cluster_role("system:discovery", [{"nonResourceURLs": DISCOVERY_PATHS, "verbs": ["get"]}]),
        cluster_role("system:public-info-viewer", [{"nonResourceURLs": PUBLIC_INFO_PATHS, "verbs": ["get"]}]),
        cluster_role(
            "system:basic-user",
            [
                {
                    "apiGroups": ["authorization.k8s.io"],
                    "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    "verbs": ["create"],
                },
                {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
            ],
        ),
        cluster_role_binding("cluster-admin", [("Group", "system:masters")]),
        cluster_role_binding("system:discovery", [authenticated]),
        cluster_role_binding("system:basic-user", [authenticated]),
        cluster_role_binding("system:public-info-viewer", [authenticated, ("Group", "system:unauthenticated")]),
    ]
