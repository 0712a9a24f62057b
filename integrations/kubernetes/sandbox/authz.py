"""RBAC authorisation as the API server does it, over plain JSON objects.

Reference: kubernetes `plugin/pkg/auth/authorizer/rbac/rbac.go` and `pkg/apis/rbac/v1/evaluation_helpers.go`
(VerbMatches, APIGroupMatches, ResourceMatches, ResourceNameMatches, NonResourceURLMatches), and the RBAC docs:
ClusterRoleBindings grant everywhere (non-resource URLs only through them); RoleBindings grant in their
namespace only; `system:masters` is allowed everything before RBAC is asked. Not modelled: aggregation
rules (the bootstrap roles carry their rules directly), and bind/escalate checks on writes.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MASTERS = "system:masters"


@dataclass(frozen=True)
class Attributes:
    user: str
    groups: tuple[str, ...]
    verb: str
    # resource request
    resource: str = ""
    group: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    # non-resource request
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return not self.path


def _subject_matches(subject: Mapping[str, Any], user: str, groups: tuple[str, ...], binding_ns: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(name == user)
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_ns
        return user == f"system:serviceaccount:{namespace}:{name}"
    return False


def _resource_matches(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    resources = rule.get("resources") or []
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    for item in resources:
        if item == "*" or item == combined:
            return True
        if attrs.subresource and item == f"*/{attrs.subresource}":
            return True
    return False


def _path_matches(rule: Mapping[str, Any], path: str) -> bool:
    for url in rule.get("nonResourceURLs") or []:
        if url == "*" or url == path or (url.endswith("*") and path.startswith(url[:-1])):
            return True
    return False


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or []
    if "*" not in verbs and attrs.verb not in verbs:
        return False
    if not attrs.is_resource:
        return _path_matches(rule, attrs.path)
    groups = rule.get("apiGroups") or []
    if "*" not in groups and attrs.group not in groups:
        return False
    if not _resource_matches(rule, attrs):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def _describe(binding: Mapping[str, Any], subject: Mapping[str, Any]) -> str:
    meta = binding.get("metadata", {})
    ref = binding.get("roleRef", {})
    where = (
        f'RoleBinding "{meta.get("name")}/{meta.get("namespace")}"'
        if binding.get("kind") == "RoleBinding"
        else (f'ClusterRoleBinding "{meta.get("name")}"')
    )
    role = f'{ref.get("kind")} "{ref.get("name")}"'
    return f'RBAC: allowed by {where} of {role} to {subject.get("kind")} "{subject.get("name")}"'


def authorize(
    attrs: Attributes,
    *,
    cluster_roles: Mapping[str, Mapping[str, Any]],
    cluster_role_bindings: Iterable[Mapping[str, Any]],
    roles: Mapping[tuple[str, str], Mapping[str, Any]],
    role_bindings: Iterable[Mapping[str, Any]],
) -> tuple[bool, str]:
    """(allowed, reason) for one request, reason worded like the API server's."""
    if MASTERS in attrs.groups:
        return True, f"allowed: group {MASTERS!r}"
    for binding in cluster_role_bindings:
        hit = _binding_allows(binding, attrs, cluster_roles=cluster_roles, roles=roles, namespace="")
        if hit:
            return True, hit
    if attrs.is_resource and attrs.namespace:
        for binding in role_bindings:
            if binding.get("metadata", {}).get("namespace") != attrs.namespace:
                continue
            hit = _binding_allows(binding, attrs, cluster_roles=cluster_roles, roles=roles, namespace=attrs.namespace)
            if hit:
                return True, hit
    return False, ""


def _binding_allows(
    binding: Mapping[str, Any],
    attrs: Attributes,
    *,
    cluster_roles: Mapping[str, Mapping[str, Any]],
    roles: Mapping[tuple[str, str], Mapping[str, Any]],
    namespace: str,
) -> str:
    subject = next(
        (s for s in binding.get("subjects") or [] if _subject_matches(s, attrs.user, attrs.groups, namespace)), None
    )
    if subject is None:
        return ""
    ref = binding.get("roleRef") or {}
    role = (
        cluster_roles.get(ref.get("name", ""))
        if ref.get("kind") == "ClusterRole"
        else (roles.get((namespace, ref.get("name", ""))))
    )
    if role is None:
        return ""
    if any(rule_allows(rule, attrs) for rule in role.get("rules") or []):
        return _describe(binding, subject)
    return ""
