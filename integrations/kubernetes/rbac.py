"""Who can do what anonymously: fetch RBAC as raw JSON, analyse it, confirm with SubjectAccessReviews.

Fetching lists ClusterRoleBindings, RoleBindings (all namespaces), ClusterRoles and Roles with
`limit`/`continue` pagination and `_preload_content=False` + `json.loads`: the client's model classes
are never built on this path (deserialising them dominated a 3.6k-object list in [S16], and goal P10
allows 3× a json.loads of the payload). The analysis (`exposure_analyse`) is pure over those dicts.

Kubernetes permissions needed (ClusterRole in docs/kubernetes-rbac.md):
  get, list on clusterroles, clusterrolebindings, roles, rolebindings (rbac.authorization.k8s.io);
  create on subjectaccessreviews (authorization.k8s.io).
"""

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from integrations.kubernetes.client import REQUEST_TIMEOUT, k8s_errors, response_json

if TYPE_CHECKING:
    from kubernetes import client as k8s  # imported where a cluster is called: see integrations.kubernetes.client

ANONYMOUS_USER = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
AUTHENTICATED = "system:authenticated"
PUBLIC_INFO_VIEWER = "system:public-info-viewer"
LEGACY_DEFAULTS = ("system:discovery", "system:basic-user")
DEFAULTS_LABEL = ("kubernetes.io/bootstrapping", "rbac-defaults")
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
PAGE_SIZE = 500
RISKS = ("low", "medium", "high", "critical")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
ESCALATION_VERBS = frozenset({"escalate", "bind", "impersonate"})
READ_VERBS = frozenset({"get", "list", "watch"})
# Creating a self-review only asks about oneself: not a write in any sense that matters here.
SELF_REVIEWS = frozenset({"selfsubjectaccessreviews", "selfsubjectrulesreviews", "selfsubjectreviews"})
PUBLIC_INFO_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version", "/version/"})
# The rules the bootstrap policy gives the defaults anonymous may reach (bootstrappolicy/policy.go).
# A rule on one of these roles that is not covered here was added by someone: remediation removes it.
DEFAULT_RULES: dict[str, tuple[dict[str, Any], ...]] = {
    PUBLIC_INFO_VIEWER: ({"nonResourceURLs": sorted(PUBLIC_INFO_PATHS), "verbs": ["get"]},),
    "system:discovery": (
        {
            "nonResourceURLs": [
                *sorted(PUBLIC_INFO_PATHS),
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/openapi",
                "/openapi/*",
            ],
            "verbs": ["get"],
        },
    ),
    "system:basic-user": (
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            "verbs": ["create"],
        },
        {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
    ),
}
# GitOps owners re-apply what they manage: a removed grant comes back unless it is removed at the source.
GITOPS_MARKERS = (
    ("Argo CD", "annotations", "argocd.argoproj.io/tracking-id"),
    ("Argo CD", "labels", "argocd.argoproj.io/instance"),
    ("Argo CD", "labels", "app.kubernetes.io/instance"),
    ("Flux", "labels", "kustomize.toolkit.fluxcd.io/name"),
    ("Flux", "labels", "helm.toolkit.fluxcd.io/name"),
    ("Helm", "annotations", "meta.helm.sh/release-name"),
    ("Helm", "labels", "app.kubernetes.io/managed-by"),
)
# (verb, resource, group, path): the fixed probe set asked for `system:anonymous` + `system:unauthenticated`.
FIXED_PROBES = (
    ("get", "", "", "/version"),
    ("get", "", "", "/healthz"),
    ("get", "", "", "/api"),
    ("get", "", "", "/apis"),
    ("list", "pods", "", ""),
    ("list", "secrets", "", ""),
    ("list", "namespaces", "", ""),
    ("create", "clusterrolebindings", "rbac.authorization.k8s.io", ""),
)


# -- results --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RbacObjects:
    """Raw API JSON, as listed."""

    cluster_roles: tuple[dict[str, Any], ...]
    cluster_role_bindings: tuple[dict[str, Any], ...]
    roles: tuple[dict[str, Any], ...]
    role_bindings: tuple[dict[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "clusterroles": list(self.cluster_roles),
            "clusterrolebindings": list(self.cluster_role_bindings),
            "roles": list(self.roles),
            "rolebindings": list(self.role_bindings),
        }


@dataclass(frozen=True)
class Permission:
    verbs: tuple[str, ...]
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExposureRow:
    subject: str  # Group/system:unauthenticated
    scope: str  # cluster-wide | <namespace>
    role: str  # ClusterRole/x | Role/x
    binding: str  # ClusterRoleBinding/x | RoleBinding/<ns>/x
    classification: str  # expected | legacy-default | custom
    risk: str  # low | medium | high | critical
    reasons: tuple[str, ...] = ()
    gitops: str = ""  # "Argo CD (argocd.argoproj.io/tracking-id=…)" when a GitOps tool owns the binding
    role_missing: bool = False
    permissions: tuple[Permission, ...] = ()


@dataclass(frozen=True)
class Probe:
    verb: str
    resource: str = ""
    group: str = ""
    namespace: str = ""
    path: str = ""
    name: str = ""
    allowed: bool | None = None
    reason: str = ""
    source: str = "fixed"  # fixed | finding

    @property
    def label(self) -> str:
        if self.path:
            return f"{self.verb} {self.path}"
        where = f" in {self.namespace}" if self.namespace else " (all namespaces)"
        named = f"/{self.name}" if self.name else ""
        return f"{self.verb} {self.resource}{'.' + self.group if self.group else ''}{named}{where}"


@dataclass(frozen=True)
class ExposureReport:
    rows: tuple[ExposureRow, ...]
    authenticated: tuple[ExposureRow, ...]  # system:authenticated bound to high/critical roles
    probes: tuple[Probe, ...] = ()
    counts: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": [asdict(row) for row in self.rows],
            "authenticated": [asdict(row) for row in self.authenticated],
            "probes": [probe_as_dict(probe) for probe in self.probes],
            "counts": dict(self.counts),
        }


def probe_as_dict(probe: Probe) -> dict[str, Any]:
    data = asdict(probe)
    data["label"] = probe.label
    return data


# -- fetch ----------------------------------------------------------------------------------------
def _list_all(call: Callable[..., Any], what: str, api: "k8s.ApiClient") -> tuple[dict[str, Any], ...]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        with k8s_errors(f"list {what}", api=api):
            page = response_json(
                call(limit=PAGE_SIZE, _continue=token, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
            )
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue") or None
        if not token:
            return tuple(items)


def rbac_objects_fetch(api: "k8s.ApiClient") -> RbacObjects:
    from kubernetes import client as k8s

    rbac = k8s.RbacAuthorizationV1Api(api)
    return RbacObjects(
        cluster_roles=_list_all(rbac.list_cluster_role, "clusterroles", api),
        cluster_role_bindings=_list_all(rbac.list_cluster_role_binding, "clusterrolebindings", api),
        roles=_list_all(rbac.list_role_for_all_namespaces, "roles", api),
        role_bindings=_list_all(rbac.list_role_binding_for_all_namespaces, "rolebindings", api),
    )


# -- analysis -------------------------------------------------------------------------------------
def subject_label(subject: Mapping[str, Any]) -> str:
    return f"{subject.get('kind')}/{subject.get('name')}"


def is_anonymous(subject: Mapping[str, Any]) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    return (kind == "User" and name == ANONYMOUS_USER) or (kind == "Group" and name == UNAUTHENTICATED)


def binding_label(binding: Mapping[str, Any]) -> str:
    meta = binding.get("metadata") or {}
    if binding.get("kind") == "RoleBinding" or meta.get("namespace"):
        return f"RoleBinding/{meta.get('namespace')}/{meta.get('name')}"
    return f"ClusterRoleBinding/{meta.get('name')}"


def is_default(obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(DEFAULTS_LABEL[0]) == DEFAULTS_LABEL[1]


def gitops_owner(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    for tool, where, key in GITOPS_MARKERS:
        value = (meta.get(where) or {}).get(key)
        if value and not (key == "app.kubernetes.io/managed-by" and value != "Helm"):
            return f"{tool} ({key}={value})"
    return ""


def _permission(rule: Mapping[str, Any]) -> Permission:
    groups = rule.get("apiGroups") or [""]
    resources = tuple(
        resource if group in ("", "*") and resource == "*" else (f"{resource}.{group}" if group else resource)
        for group in groups
        for resource in rule.get("resources") or []
    )
    return Permission(
        verbs=tuple(rule.get("verbs") or ()),
        resources=resources,
        resource_names=tuple(rule.get("resourceNames") or ()),
        non_resource_urls=tuple(rule.get("nonResourceURLs") or ()),
    )


def rule_risk(rule: Mapping[str, Any]) -> tuple[str, str]:
    """(risk, why) for one rule."""
    verbs = set(rule.get("verbs") or ())
    resources = set(rule.get("resources") or ())
    urls = set(rule.get("nonResourceURLs") or ())
    groups = set(rule.get("apiGroups") or ())
    if "*" in verbs or "*" in resources or "*" in groups or "*" in urls:
        return "critical", "wildcard"
    if verbs & ESCALATION_VERBS:
        return "critical", "/".join(sorted(verbs & ESCALATION_VERBS))
    if resources & {"secrets", "secrets/*"} and verbs & READ_VERBS:
        return "critical", "reads secrets"
    if resources and verbs & WRITE_VERBS and not resources <= SELF_REVIEWS:
        return "critical", f"writes {', '.join(sorted(resources))}"
    if resources and verbs & READ_VERBS:
        return "high", f"reads {', '.join(sorted(resources))}"
    if urls - PUBLIC_INFO_PATHS:
        return "medium", f"discovery ({', '.join(sorted(urls - PUBLIC_INFO_PATHS)[:3])}…)"
    if resources:
        return "medium", "self reviews"
    return "low", "public info (health, version)"


def role_risk(rules: Iterable[Mapping[str, Any]]) -> tuple[str, tuple[str, ...]]:
    level, reasons = 0, []
    for rule in rules:
        risk, why = rule_risk(rule)
        rank = RISKS.index(risk)
        if rank > level:
            level, reasons = rank, [why]
        elif rank == level and why not in reasons:
            reasons.append(why)
    return RISKS[level], tuple(reasons)


def _covered(rule: Mapping[str, Any], defaults: Iterable[Mapping[str, Any]]) -> bool:
    def keys(item: Mapping[str, Any], name: str) -> set[str]:
        return set(item.get(name) or ())

    return any(
        all(keys(rule, name) <= keys(default, name) for name in ("verbs", "apiGroups", "resources", "nonResourceURLs"))
        and not rule.get("resourceNames")
        for default in defaults
    )


def extra_default_rules(role: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rules on a default ClusterRole that the bootstrap policy does not give it (added by someone)."""
    defaults = DEFAULT_RULES.get((role.get("metadata") or {}).get("name", ""))
    if defaults is None or not is_default(role):
        return []
    return [dict(rule) for rule in role.get("rules") or [] if not _covered(rule, defaults)]


def _classify(binding: Mapping[str, Any], ref: Mapping[str, Any], subject: Mapping[str, Any]) -> str:
    name = (binding.get("metadata") or {}).get("name")
    cluster_scoped = binding.get("kind") == "ClusterRoleBinding"
    if cluster_scoped and name == ref.get("name") == PUBLIC_INFO_VIEWER and ref.get("kind") == "ClusterRole":
        return "expected"
    # Carried over from a cluster created before 1.14 (KEP-789): the group, on the default binding.
    if (
        cluster_scoped
        and name in LEGACY_DEFAULTS
        and ref.get("name") == name
        and subject.get("kind") == "Group"
        and subject.get("name") == UNAUTHENTICATED
    ):
        return "legacy-default"
    return "custom"


class _Roles:
    """Role lookup with the risk of each role computed once."""

    def __init__(self, objects: RbacObjects) -> None:
        self.cluster = {(r.get("metadata") or {}).get("name"): r for r in objects.cluster_roles}
        self.namespaced = {
            ((r.get("metadata") or {}).get("namespace"), (r.get("metadata") or {}).get("name")): r
            for r in objects.roles
        }
        self._risk: dict[int, tuple[str, tuple[str, ...]]] = {}

    def resolve(self, binding: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            return self.cluster.get(ref.get("name")), f"ClusterRole/{ref.get('name')}"
        namespace = (binding.get("metadata") or {}).get("namespace")
        return self.namespaced.get((namespace, ref.get("name"))), f"Role/{ref.get('name')}"

    def risk(self, role: dict[str, Any] | None) -> tuple[str, tuple[str, ...]]:
        if role is None:
            return "low", ("role not found: grants nothing until someone creates it",)
        key = id(role)
        if key not in self._risk:
            self._risk[key] = role_risk(role.get("rules") or ())
        return self._risk[key]


def _row(binding: dict[str, Any], subject: Mapping[str, Any], roles: _Roles, *, detail: bool) -> ExposureRow:
    role, role_label = roles.resolve(binding)
    risk, reasons = roles.risk(role)
    extra = extra_default_rules(role) if role is not None else []
    if extra:
        reasons = (*reasons, f"{len(extra)} rule(s) added to a default ClusterRole")
    namespace = (binding.get("metadata") or {}).get("namespace")
    return ExposureRow(
        subject=subject_label(subject),
        scope=str(namespace) if binding.get("kind") == "RoleBinding" else "cluster-wide",
        role=role_label,
        binding=binding_label(binding),
        classification=_classify(binding, binding.get("roleRef") or {}, subject),
        risk=risk,
        reasons=reasons,
        gitops=gitops_owner(binding),
        role_missing=role is None,
        permissions=tuple(_permission(rule) for rule in (role or {}).get("rules") or ()) if detail else (),
    )


def exposure_analyse(objects: RbacObjects) -> ExposureReport:
    """The rbac-lookup-style table for anonymous subjects, plus system:authenticated on powerful roles."""
    roles = _Roles(objects)
    rows: list[ExposureRow] = []
    authenticated: list[ExposureRow] = []
    for bindings in (objects.cluster_role_bindings, objects.role_bindings):
        for binding in bindings:
            for subject in binding.get("subjects") or ():
                if subject.get("name") == AUTHENTICATED and subject.get("kind") == "Group":
                    row = _row(binding, subject, roles, detail=False)
                    if row.risk in ("high", "critical"):
                        authenticated.append(row)
                elif is_anonymous(subject):
                    rows.append(_row(binding, subject, roles, detail=True))
    rows.sort(key=lambda row: (-RISKS.index(row.risk), row.binding, row.subject))
    counts = {
        "clusterroles": len(objects.cluster_roles),
        "clusterrolebindings": len(objects.cluster_role_bindings),
        "roles": len(objects.roles),
        "rolebindings": len(objects.role_bindings),
    }
    return ExposureReport(rows=tuple(rows), authenticated=tuple(authenticated), counts=counts)


# -- SubjectAccessReview --------------------------------------------------------------------------
def probes_default(finding: Mapping[str, str] | None = None) -> list[Probe]:
    """The fixed set, plus the finding's own verb and resource (or URI) when given."""
    probes = [Probe(verb=v, resource=r, group=g, path=p) for v, r, g, p in FIXED_PROBES]
    if finding:
        probe = finding_probe(finding)
        if probe is not None and all(probe.label != known.label for known in probes):
            probes.append(probe)
    return probes


def finding_probe(finding: Mapping[str, str]) -> Probe | None:
    """The call GuardDuty saw (verb, resource, namespace; or the request URI's path) as a probe."""
    verb = (finding.get("verb") or "").lower()
    if not verb:
        return None
    resource = finding.get("resource") or ""
    if resource:
        return Probe(
            verb=verb,
            resource=resource,
            namespace=finding.get("namespace") or "",
            name=finding.get("name") or "",
            source="finding",
        )
    path = (finding.get("path") or finding.get("request_uri") or "").split("?", 1)[0]
    return Probe(verb=verb, path=path, source="finding") if path else None


def probes_run(api: "k8s.ApiClient", probes: Iterable[Probe]) -> tuple[Probe, ...]:
    from kubernetes import client as k8s

    """Ask the authorizer about user system:anonymous WITH group system:unauthenticated (DOMAIN.md §2.6)."""
    authorization = k8s.AuthorizationV1Api(api)
    results = []
    for probe in probes:
        if probe.path:
            attributes: dict[str, Any] = {"nonResourceAttributes": {"verb": probe.verb, "path": probe.path}}
        else:
            attributes = {
                "resourceAttributes": {
                    "verb": probe.verb,
                    "resource": probe.resource,
                    "group": probe.group,
                    "namespace": probe.namespace,
                    **({"name": probe.name} if probe.name else {}),
                }
            }
        review = k8s.V1SubjectAccessReview(
            api_version="authorization.k8s.io/v1",
            kind="SubjectAccessReview",
            spec=k8s.V1SubjectAccessReviewSpec(user=ANONYMOUS_USER, groups=[UNAUTHENTICATED], **_snake(attributes)),
        )
        with k8s_errors(f"SubjectAccessReview {probe.label}", api=api):
            status = (
                response_json(
                    authorization.create_subject_access_review(
                        body=review, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                    )
                ).get("status")
                or {}
            )
        results.append(_with(probe, allowed=bool(status.get("allowed")), reason=str(status.get("reason") or "")))
    return tuple(results)


def _snake(attributes: dict[str, Any]) -> dict[str, Any]:
    from kubernetes import client as k8s

    if "nonResourceAttributes" in attributes:
        return {"non_resource_attributes": k8s.V1NonResourceAttributes(**attributes["nonResourceAttributes"])}
    return {"resource_attributes": k8s.V1ResourceAttributes(**attributes["resourceAttributes"])}


def _with(probe: Probe, **changes: Any) -> Probe:
    return Probe(**{**asdict(probe), **changes})


def report_with_probes(report: ExposureReport, probes: Iterable[Probe]) -> ExposureReport:
    return ExposureReport(
        rows=report.rows, authenticated=report.authenticated, probes=tuple(probes), counts=report.counts
    )


def rbac_inspect(
    api: "k8s.ApiClient", *, finding: Mapping[str, str] | None = None
) -> tuple[RbacObjects, ExposureReport]:
    """Fetch, analyse and confirm: the whole inspection of one cluster."""
    objects = rbac_objects_fetch(api)
    report = exposure_analyse(objects)
    return objects, report_with_probes(report, probes_run(api, probes_default(finding)))


def report_json(report: ExposureReport) -> str:
    return json.dumps(report.as_dict(), indent=2, sort_keys=False)
