"""Fuzz the RBAC exposure analyser (integrations/kubernetes/rbac.py, `exposure_analyse`).

Inputs are lists of (Cluster)Roles and (Cluster)RoleBindings as the API server returns them (raw
JSON dicts), with fuzzer-chosen names, subjects, role references (existing or dangling), rules and
missing or empty fields. Invariants:

- it never raises;
- it reports exactly the anonymous (User system:anonymous, Group system:unauthenticated) subjects the
  bindings name, each once per binding, and nothing else;
- a row whose role grants a wildcard or bind/escalate/impersonate is rated critical, whatever else
  the role holds (the analyser must never under-rate the rules an attacker wants);
- `role_missing` is set exactly when the referenced role is absent.
"""

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import django_setup, fuzz, instrumented  # noqa: E402

django_setup()
rbac = instrumented("integrations.kubernetes.rbac")

NAMES = ["system:anonymous", "system:unauthenticated", "system:authenticated", "system:discovery",
         "system:basic-user", "system:public-info-viewer", "cluster-admin", "view", "edit", "dev", ""]  # fmt: skip
# Few role names, so bindings often find their role; anonymous subjects are likely.
ROLE_NAMES = ["dev", "view", "system:discovery", "system:public-info-viewer"]
SUBJECT_NAMES = ["system:anonymous", "system:unauthenticated", "system:unauthenticated", "system:authenticated", "dev"]
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "bind", "escalate",
         "impersonate", "*", "use", "Get"]  # fmt: skip
RESOURCES = ["pods", "pods/exec", "secrets", "secrets/*", "configmaps", "*", "selfsubjectaccessreviews",
             "selfsubjectrulesreviews", "nodes", "clusterrolebindings", ""]  # fmt: skip
URLS = ["/healthz", "/version", "/api", "/apis/*", "*", "/metrics", "/livez"]
NAMESPACES = ["default", "kube-system", "team-a"]
# The oracle's own list (CIS 5.1.8; PERF-REL-SEC C6), not the analyser's: a verb dropped there is caught here.
ESCALATION = {"bind", "escalate", "impersonate"}


def _word(data: atheris.FuzzedDataProvider, vocabulary: list[str]) -> str:
    if data.ConsumeIntInRange(0, 7) == 0:
        return data.ConsumeUnicodeNoSurrogates(12)
    return data.PickValueInList(vocabulary)


def _words(data: atheris.FuzzedDataProvider, vocabulary: list[str]) -> list[str] | None:
    count = data.ConsumeIntInRange(-1, 3)
    return None if count < 0 else [_word(data, vocabulary) for _ in range(count)]


def _rule(data: atheris.FuzzedDataProvider) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    for key, vocabulary in (("verbs", VERBS), ("apiGroups", ["", "", "rbac.authorization.k8s.io", "apps", "*"]),
                            ("resources", RESOURCES), ("nonResourceURLs", URLS), ("resourceNames", NAMES)):  # fmt: skip
        words = _words(data, vocabulary)
        if words is not None:
            rule[key] = words
    return rule


def _metadata(data: atheris.FuzzedDataProvider, *, namespaced: bool, names: list[str]) -> dict[str, Any] | None:
    if data.ConsumeIntInRange(0, 15) == 0:
        return None
    meta: dict[str, Any] = {"name": _word(data, names)}
    if namespaced:
        meta["namespace"] = data.PickValueInList(NAMESPACES)
    if data.ConsumeBool():
        meta["labels"] = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    if data.ConsumeIntInRange(0, 5) == 0:
        meta["annotations"] = {"argocd.argoproj.io/tracking-id": _word(data, NAMES)}
    return meta


def _role(data: atheris.FuzzedDataProvider, *, namespaced: bool) -> dict[str, Any]:
    role: dict[str, Any] = {"kind": "Role" if namespaced else "ClusterRole"}
    if (meta := _metadata(data, namespaced=namespaced, names=ROLE_NAMES)) is not None:
        role["metadata"] = meta
    count = data.ConsumeIntInRange(-1, 3)
    if count >= 0:
        role["rules"] = [_rule(data) for _ in range(count)]
    return role


def _binding(data: atheris.FuzzedDataProvider, *, namespaced: bool) -> dict[str, Any]:
    binding: dict[str, Any] = {"kind": "RoleBinding" if namespaced else "ClusterRoleBinding"}
    if (meta := _metadata(data, namespaced=namespaced, names=NAMES)) is not None:
        binding["metadata"] = meta
    if data.ConsumeIntInRange(0, 9):
        kind = "ClusterRole" if not namespaced or data.ConsumeBool() else "Role"
        binding["roleRef"] = {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": _word(data, ROLE_NAMES)}
    count = data.ConsumeIntInRange(-1, 4)
    if count >= 0:
        binding["subjects"] = [
            {"kind": data.PickValueInList(["User", "Group", "ServiceAccount"]), "name": _word(data, SUBJECT_NAMES)}
            for _ in range(count)
        ]
    return binding


def _expected(bindings: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    expected: Counter[tuple[str, str]] = Counter()
    for binding in bindings:
        for subject in binding.get("subjects") or ():
            if rbac.is_anonymous(subject):
                expected[(rbac.binding_label(binding), rbac.subject_label(subject))] += 1
    return expected


def _dangerous(role: dict[str, Any] | None) -> bool:
    for rule in (role or {}).get("rules") or ():
        keys = ("verbs", "resources", "apiGroups", "nonResourceURLs")
        if any("*" in (rule.get(key) or ()) for key in keys) or set(rule.get("verbs") or ()) & ESCALATION:
            return True
    return False


def test_one_input(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    objects = rbac.RbacObjects(
        cluster_roles=tuple(_role(data, namespaced=False) for _ in range(data.ConsumeIntInRange(0, 4))),
        cluster_role_bindings=tuple(_binding(data, namespaced=False) for _ in range(data.ConsumeIntInRange(0, 4))),
        roles=tuple(_role(data, namespaced=True) for _ in range(data.ConsumeIntInRange(0, 3))),
        role_bindings=tuple(_binding(data, namespaced=True) for _ in range(data.ConsumeIntInRange(0, 3))),
    )
    report = rbac.exposure_analyse(objects)
    bindings = [*objects.cluster_role_bindings, *objects.role_bindings]
    reported = Counter((row.binding, row.subject) for row in report.rows)
    assert reported == _expected(bindings), (reported, _expected(bindings))
    roles = rbac._Roles(objects)
    by_label: dict[str, list[dict[str, Any]]] = {}
    for binding in bindings:
        by_label.setdefault(rbac.binding_label(binding), []).append(binding)
    for row in [*report.rows, *report.authenticated]:
        assert row.risk in rbac.RISKS
        candidates = [roles.resolve(binding)[0] for binding in by_label[row.binding]]
        if len(candidates) == 1:  # a label shared by two input bindings cannot say which role was meant
            role = candidates[0]
            assert row.role_missing == (role is None), row
            if _dangerous(role):
                assert row.risk == "critical", (row, role)


if __name__ == "__main__":
    fuzz(test_one_input, seeds=[bytes(range(64)), b"\x00" * 64, b"\xff" * 256], name="rbac")
