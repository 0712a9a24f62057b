"""Remove anonymous access: plan, server-side dry run, apply with resourceVersion, verify, roll back.

The plan is data (frozen dataclasses, JSON round-trip) computed from the raw objects:
- `system:unauthenticated` / `system:anonymous` subjects come off `system:discovery` and
  `system:basic-user` (and any other binding that also serves real subjects);
- a custom binding whose only subjects are anonymous is deleted;
- rules someone added to a default ClusterRole that anonymous reaches are removed;
- every default object edited gets `rbac.authorization.kubernetes.io/autoupdate: "false"`, so the API
  server's reconciliation does not restore it (DOMAIN.md §2.3);
- `system:public-info-viewer` is never changed, even when asked (load-balancer health checks; it would
  come back at the next API-server restart anyway): the request becomes a refusal with the reason.

Every write names the resourceVersion it planned from (a JSON patch that replaces
/metadata/resourceVersion, or a delete precondition), so a concurrent edit gives 409 and is never
overwritten. Writes are declarative: a change whose end state already holds is skipped, so a run
that is repeated after a crash converges instead of failing or writing twice.

Kubernetes permissions: get on the objects changed; patch and delete on clusterrolebindings and
rolebindings; patch on clusterroles (only to remove added rules from a default role); create on
clusterrolebindings/rolebindings only for rolling back a deletion (a break-glass grant,
docs/kubernetes-rbac.md). Note: the API server lets a caller patch a binding only if it holds the
bound role's permissions or `bind` on it; deleting has no such check.
"""

import copy
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from integrations.kubernetes.client import (
    REQUEST_TIMEOUT,
    KubernetesConflictError,
    KubernetesNotFoundError,
    k8s_errors,
    response_json,
)
from integrations.kubernetes.rbac import (
    AUTOUPDATE,
    PUBLIC_INFO_VIEWER,
    RbacObjects,
    binding_label,
    extra_default_rules,
    gitops_owner,
    is_anonymous,
    is_default,
    subject_label,
)

if TYPE_CHECKING:
    from kubernetes import client as k8s  # imported where a cluster is called: see integrations.kubernetes.client

REMOVE_SUBJECTS, DELETE, REMOVE_RULES = "remove-subjects", "delete", "remove-rules"
APPLIED, ALREADY, RESTORED = "applied", "already", "restored"
# Fields a rollback puts back exactly as they were.
RESTORED_FIELDS = ("subjects", "rules")
RESTORED_META = ("labels", "annotations")


@dataclass(frozen=True)
class Change:
    kind: str  # ClusterRoleBinding | RoleBinding | ClusterRole
    namespace: str
    name: str
    operation: str  # remove-subjects | delete | remove-rules
    resource_version: str
    uid: str
    before: dict[str, Any]
    after: dict[str, Any] | None  # None for a delete
    removed: tuple[str, ...]  # subject labels, or rule summaries
    annotate: bool  # set autoupdate "false" (a default object)
    reason: str
    gitops: str = ""

    @property
    def target(self) -> str:
        if self.kind == "ClusterRole":
            return f"ClusterRole/{self.name}"
        return binding_label(self.before)


@dataclass(frozen=True)
class Refusal:
    target: str
    reason: str


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    refusals: tuple[Refusal, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "changes": [asdict(change) | {"target": change.target} for change in self.changes],
            "refusals": [asdict(refusal) for refusal in self.refusals],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Plan":
        fields = {name for name in Change.__dataclass_fields__}
        changes = tuple(
            Change(**{k: (tuple(v) if k == "removed" else v) for k, v in item.items() if k in fields})  # type: ignore[arg-type]
            for item in data.get("changes") or []
        )
        refusals = tuple(Refusal(**item) for item in data.get("refusals") or [])
        return cls(changes=changes, refusals=refusals)


@dataclass(frozen=True)
class Outcome:
    target: str
    operation: str
    result: str  # applied | already | restored
    resource_version_before: str
    resource_version_after: str  # "" when the object no longer exists
    object_after: dict[str, Any] | None = field(default=None, compare=False)


# -- plan -----------------------------------------------------------------------------------------
def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _with_autoupdate_off(obj: dict[str, Any]) -> None:
    obj.setdefault("metadata", {}).setdefault("annotations", {})[AUTOUPDATE] = "false"


def _is_public_info(target: str) -> bool:
    return target.rsplit("/", 1)[-1] == PUBLIC_INFO_VIEWER


def _binding_change(binding: dict[str, Any]) -> Change | None:
    subjects = binding.get("subjects") or []
    anonymous = [s for s in subjects if is_anonymous(s)]
    if not anonymous:
        return None
    keep = [s for s in subjects if not is_anonymous(s)]
    meta, default = _meta(binding), is_default(binding)
    common: dict[str, Any] = {
        "kind": binding.get("kind") or "ClusterRoleBinding",
        "namespace": meta.get("namespace") or "",
        "name": meta.get("name") or "",
        "resource_version": meta.get("resourceVersion") or "",
        "uid": meta.get("uid") or "",
        "before": binding,
        "removed": tuple(subject_label(s) for s in anonymous),
        "gitops": gitops_owner(binding),
    }
    if not keep and not default:
        return Change(
            operation=DELETE,
            after=None,
            annotate=False,
            reason="custom binding granting only anonymous subjects: deleted",
            **common,
        )
    after = copy.deepcopy(binding)
    after["subjects"] = keep
    if default:
        _with_autoupdate_off(after)
    reason = "default binding: anonymous subjects removed" if default else "custom binding: anonymous subjects trimmed"
    return Change(operation=REMOVE_SUBJECTS, after=after, annotate=default, reason=reason, **common)


def _role_change(role: dict[str, Any]) -> Change | None:
    extra = extra_default_rules(role)
    if not extra:
        return None
    meta = _meta(role)
    after = copy.deepcopy(role)
    after["rules"] = [rule for rule in role.get("rules") or [] if rule not in extra]
    _with_autoupdate_off(after)
    return Change(
        kind="ClusterRole",
        namespace="",
        name=meta.get("name") or "",
        operation=REMOVE_RULES,
        resource_version=meta.get("resourceVersion") or "",
        uid=meta.get("uid") or "",
        before=role,
        after=after,
        removed=tuple(_rule_summary(rule) for rule in extra),
        annotate=True,
        reason="rules added to a default ClusterRole that anonymous can reach",
        gitops=gitops_owner(role),
    )


def _rule_summary(rule: Mapping[str, Any]) -> str:
    what = rule.get("nonResourceURLs") or [
        f"{r}.{g}" if g else r for g in rule.get("apiGroups") or [""] for r in rule.get("resources") or []
    ]
    return f"{','.join(rule.get('verbs') or [])} {','.join(what)}"


def plan_compute(objects: RbacObjects, *, targets: Iterable[str] | None = None) -> Plan:
    """The changes that remove anonymous access; `targets` (e.g. `ClusterRoleBinding/x`) narrows it."""
    wanted = set(targets) if targets is not None else None
    changes: list[Change] = []
    refusals: list[Refusal] = []
    anonymous_roles: set[str] = set()
    for binding in (*objects.cluster_role_bindings, *objects.role_bindings):
        label = binding_label(binding)
        change = _binding_change(binding)
        if change is None:
            continue
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            anonymous_roles.add(ref.get("name", ""))
        if _is_public_info(label) and binding.get("kind") == "ClusterRoleBinding":
            continue  # expected; never part of a plan
        changes.append(change)
    for role in objects.cluster_roles:
        name = _meta(role).get("name", "")
        if name in anonymous_roles and name != PUBLIC_INFO_VIEWER:
            role_change = _role_change(role)
            if role_change is not None:
                changes.append(role_change)
        elif name == PUBLIC_INFO_VIEWER and extra_default_rules(role):
            refusals.append(
                Refusal(
                    f"ClusterRole/{name}",
                    "rules were added to system:public-info-viewer; it is "
                    "never changed automatically, so review them by hand",
                )
            )
    for target in sorted(wanted or ()):
        if _is_public_info(target):
            refusals.append(
                Refusal(
                    target,
                    "system:public-info-viewer is never changed: the API server's load "
                    "balancer health checks need anonymous /healthz, and reconciliation would "
                    "restore it at the next restart (DOMAIN.md §2.3)",
                )
            )
    if wanted is not None:
        changes = [change for change in changes if change.target in wanted]
    return Plan(changes=tuple(changes), refusals=tuple(refusals))


# -- the API calls --------------------------------------------------------------------------------
_METHODS = {
    "ClusterRoleBinding": ("cluster_role_binding", False),
    "RoleBinding": ("namespaced_role_binding", True),
    "ClusterRole": ("cluster_role", False),
    "Role": ("namespaced_role", True),
}


def _call(api: "k8s.ApiClient", verb: str, kind: str, namespace: str, name: str, **kwargs: Any) -> Any:
    from kubernetes import client as k8s

    suffix, namespaced = _METHODS[kind]
    method = getattr(k8s.RbacAuthorizationV1Api(api), f"{verb}_{suffix}")
    args: dict[str, Any] = {"namespace": namespace} if namespaced else {}
    if verb != "create":
        args["name"] = name
    with k8s_errors(f"{verb} {kind} {namespace + '/' if namespace else ''}{name}", api=api):
        return response_json(method(**args, **kwargs, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))


def object_read(api: "k8s.ApiClient", kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = _call(api, "read", kind, namespace, name)
        return result
    except KubernetesNotFoundError:
        return None


def _json_patch(current_rv: str, before: Mapping[str, Any], target: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Ops that turn `before` into `target` for the fields remediation touches, pinned to a resourceVersion."""
    ops: list[dict[str, Any]] = [{"op": "replace", "path": "/metadata/resourceVersion", "value": current_rv}]
    for name in RESTORED_FIELDS:
        if name in target:
            ops.append({"op": "add", "path": f"/{name}", "value": target[name]})
        elif name in before:
            ops.append({"op": "remove", "path": f"/{name}"})
    for name in RESTORED_META:
        if name in _meta(target):
            ops.append({"op": "add", "path": f"/metadata/{name}", "value": _meta(target)[name]})
        elif name in _meta(before):
            ops.append({"op": "remove", "path": f"/metadata/{name}"})
    return ops


def _patch(
    api: "k8s.ApiClient", change: Change, current: Mapping[str, Any], target: Mapping[str, Any], *, dry_run: bool
) -> dict[str, Any]:
    ops = _json_patch(_meta(current).get("resourceVersion", ""), current, target)
    result: dict[str, Any] = _call(
        api,
        "patch",
        change.kind,
        change.namespace,
        change.name,
        body=ops,
        _content_type="application/json-patch+json",
        **({"dry_run": "All"} if dry_run else {}),
    )
    return result


def _delete(api: "k8s.ApiClient", change: Change, *, dry_run: bool) -> None:
    from kubernetes import client as k8s

    options = k8s.V1DeleteOptions(
        preconditions=k8s.V1Preconditions(resource_version=change.resource_version, uid=change.uid or None),
        dry_run=["All"] if dry_run else None,
    )
    _call(
        api,
        "delete",
        change.kind,
        change.namespace,
        change.name,
        body=options,
        **({"dry_run": "All"} if dry_run else {}),
    )


# -- apply ----------------------------------------------------------------------------------------
def _subjects(obj: Mapping[str, Any] | None) -> set[str]:
    return {subject_label(s) for s in (obj or {}).get("subjects") or []}


def change_satisfied(change: Change, current: Mapping[str, Any] | None) -> bool:
    """Does the end state the change asks for already hold?"""
    if change.operation == DELETE:
        return current is None
    if current is None:
        return False
    annotated = not change.annotate or (_meta(current).get("annotations") or {}).get(AUTOUPDATE) == "false"
    if change.operation == REMOVE_SUBJECTS:
        return annotated and not (_subjects(current) & set(change.removed))
    removed_rules = [
        rule for rule in change.before.get("rules") or [] if rule not in (change.after or {}).get("rules", [])
    ]
    return annotated and not any(rule in (current.get("rules") or []) for rule in removed_rules)


def _changed_since(change: Change, current: Mapping[str, Any] | None) -> KubernetesConflictError:
    if current is None:
        what = "was deleted"
    else:
        gained = sorted(_subjects(current) - _subjects(change.before))
        lost = sorted(_subjects(change.before) - _subjects(current))
        what = f"changed (resourceVersion {change.resource_version} → {_meta(current).get('resourceVersion')}"
        what += f"; subjects added: {', '.join(gained)}" if gained else ""
        what += f"; subjects removed: {', '.join(lost)}" if lost else ""
        what += ")"
    return KubernetesConflictError(f"409 Conflict: {change.target} {what} since the plan was made; re-plan")


def change_apply(api: "k8s.ApiClient", change: Change, *, dry_run: bool = False) -> Outcome:
    current = object_read(api, change.kind, change.namespace, change.name)
    rv_now = _meta(current).get("resourceVersion", "") if current else ""
    if change_satisfied(change, current):
        return Outcome(change.target, change.operation, ALREADY, change.resource_version, rv_now, current)
    if current is None or rv_now != change.resource_version:
        raise _changed_since(change, current)
    if change.operation == DELETE:
        _delete(api, change, dry_run=dry_run)
        return Outcome(change.target, change.operation, APPLIED, rv_now, rv_now if dry_run else "", None)
    assert change.after is not None
    written = _patch(api, change, current, change.after, dry_run=dry_run)
    return Outcome(change.target, change.operation, APPLIED, rv_now, _meta(written).get("resourceVersion", ""), written)


def plan_dry_run(api: "k8s.ApiClient", plan: Plan) -> list[dict[str, str]]:
    """Each change sent with dryRun=All: the server validates and authorises it, nothing is stored."""
    results = []
    for change in plan.changes:
        try:
            outcome = change_apply(api, change, dry_run=True)
            results.append({"target": change.target, "ok": "yes", "result": outcome.result, "message": ""})
        except (KubernetesConflictError, KubernetesNotFoundError) as exc:
            results.append({"target": change.target, "ok": "no", "result": "conflict", "message": str(exc)})
    return results


# -- rollback -------------------------------------------------------------------------------------
def _restorable(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    if obj is None:
        return {}
    return {name: obj.get(name) for name in RESTORED_FIELDS} | {name: _meta(obj).get(name) for name in RESTORED_META}


def _for_create(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(dict(snapshot))
    meta = obj.setdefault("metadata", {})
    for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink"):
        meta.pop(key, None)
    return obj


def change_restore(api: "k8s.ApiClient", change: Change, *, expected_rv: str) -> Outcome:
    """Put the object back exactly as the snapshot (`change.before`) had it, if nobody changed it since."""
    current = object_read(api, change.kind, change.namespace, change.name)
    rv_now = _meta(current).get("resourceVersion", "") if current else ""
    if current is not None and _restorable(current) == _restorable(change.before):
        return Outcome(change.target, change.operation, ALREADY, rv_now, rv_now, current)
    if change.operation == DELETE:
        if current is not None:
            raise KubernetesConflictError(
                f"409 Conflict: {change.target} was re-created since the remediation; not overwritten"
            )
        created = _call(api, "create", change.kind, change.namespace, change.name, body=_for_create(change.before))
        return Outcome(
            change.target, change.operation, RESTORED, "", _meta(created).get("resourceVersion", ""), created
        )
    if current is None or rv_now != expected_rv:
        raise KubernetesConflictError(
            f"409 Conflict: {change.target} changed since the remediation (resourceVersion {expected_rv} → "
            f"{rv_now or 'deleted'}); not overwritten"
        )
    written = _patch(api, change, current, change.before, dry_run=False)
    return Outcome(
        change.target, change.operation, RESTORED, rv_now, _meta(written).get("resourceVersion", ""), written
    )


def outcome_as_dict(outcome: Outcome) -> dict[str, Any]:
    return asdict(outcome)
