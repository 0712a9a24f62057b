"""Remediation against the sandbox over HTTP: plans, SAR before/after, 409 without overwrite, exact rollback."""

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.kubernetes import rbac, remediation
from integrations.kubernetes.client import KubernetesConflictError
from tests.sandbox_fixtures import SCENARIO_NAMES

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"


def _allowed(api) -> set[str]:  # type: ignore[no-untyped-def]
    return {p.label for p in rbac.probes_run(api, rbac.probes_default()) if p.allowed}


@pytest.mark.parametrize("scenario", SCENARIO_NAMES)
def test_no_plan_ever_touches_public_info_viewer(sandbox, scenario) -> None:
    objects = rbac.rbac_objects_fetch(sandbox(scenario).api())
    everything = remediation.plan_compute(objects)
    asked = remediation.plan_compute(objects, targets=["ClusterRoleBinding/system:public-info-viewer"])
    assert all(rbac.PUBLIC_INFO_VIEWER not in change.target for change in everything.changes)
    assert asked.changes == ()
    assert asked.refusals[0].target == "ClusterRoleBinding/system:public-info-viewer"
    assert "health checks" in asked.refusals[0].reason


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    extra=st.lists(
        st.sampled_from(
            ["User/system:anonymous", "Group/system:unauthenticated", "Group/system:authenticated", "User/alice"]
        ),
        max_size=4,
    )
)
def test_public_info_viewer_is_never_planned_whatever_its_subjects(extra: list[str]) -> None:
    # given: any subjects on the public-info-viewer binding, and the same on a custom binding
    subjects = [{"kind": s.split("/")[0], "name": s.split("/")[1]} for s in extra]
    binding = {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": rbac.PUBLIC_INFO_VIEWER, "resourceVersion": "1"},
        "roleRef": {"kind": "ClusterRole", "name": rbac.PUBLIC_INFO_VIEWER},
        "subjects": subjects,
    }
    custom = copy.deepcopy(binding) | {"metadata": {"name": "custom", "resourceVersion": "2"}}
    objects = rbac.RbacObjects(cluster_roles=(), cluster_role_bindings=(binding, custom), roles=(), role_bindings=())
    # when
    plan = remediation.plan_compute(objects)
    # then
    assert [c.target for c in plan.changes] == (
        ["ClusterRoleBinding/custom"] if any(rbac.is_anonymous(s) for s in subjects) else []
    )


def test_upgraded_cluster_loses_anonymous_discovery_but_keeps_healthz(sandbox) -> None:
    box = sandbox("upgraded-pre-1.14")
    api = box.api()
    assert {"get /api", "get /apis", "get /healthz", "get /version"} <= _allowed(api)
    plan = remediation.plan_compute(rbac.rbac_objects_fetch(api))
    assert all(check["ok"] == "yes" for check in remediation.plan_dry_run(api, plan))
    assert "get /apis" in _allowed(api)  # the dry run changed nothing
    # when
    outcomes = [remediation.change_apply(api, change) for change in plan.changes]
    # then
    assert [o.result for o in outcomes] == ["applied", "applied"]
    assert _allowed(api) == {"get /healthz", "get /version"}
    for name in ("system:discovery", "system:basic-user"):
        stored = box.store.get("clusterrolebindings", "", name)
        assert box.subjects("clusterrolebindings", name) == ["Group/system:authenticated"]
        assert stored["metadata"]["annotations"][AUTOUPDATE] == "false"
    assert box.subjects("clusterrolebindings", rbac.PUBLIC_INFO_VIEWER) == [
        "Group/system:authenticated",
        "Group/system:unauthenticated",
    ]


def test_a_concurrent_edit_gives_409_and_is_not_overwritten(sandbox) -> None:
    box = sandbox("upgraded-pre-1.14")
    api = box.api()
    plan = remediation.plan_compute(rbac.rbac_objects_fetch(api))
    # given: someone adds a subject after the plan was made
    discovery = box.store.get("clusterrolebindings", "", "system:discovery")
    discovery["subjects"].append({"kind": "User", "name": "carol"})
    box.store.update("clusterrolebindings", "", "system:discovery", discovery, dry_run=False)
    change = next(c for c in plan.changes if c.name == "system:discovery")
    # when / then
    with pytest.raises(KubernetesConflictError, match="subjects added: User/carol"):
        remediation.change_apply(api, change)
    assert box.subjects("clusterrolebindings", "system:discovery") == [
        "Group/system:authenticated",
        "Group/system:unauthenticated",
        "User/carol",
    ]


def test_the_server_refuses_a_stale_write_even_after_our_own_check(sandbox) -> None:
    box = sandbox("custom-cluster-admin-anonymous")
    api = box.api()
    change = remediation.plan_compute(rbac.rbac_objects_fetch(api)).changes[0]

    # given: the edit lands between our read and our delete (the server's precondition must catch it)
    def edit_first(verb: str, resource: str, name: str) -> None:
        box.store.before_write = None
        box.store.patch(
            resource,
            "",
            name,
            {"metadata": {"labels": {"owner": "bob"}}},
            content_type="application/merge-patch+json",
            dry_run=False,
        )

    box.store.before_write = edit_first
    with pytest.raises(KubernetesConflictError, match="409"):
        remediation.change_apply(api, change)
    assert box.store.get("clusterrolebindings", "", "debug-anonymous-admin")["metadata"]["labels"] == {"owner": "bob"}


def test_a_repeated_apply_converges_without_writing_again(sandbox) -> None:
    box = sandbox("namespaced-secrets-unauthenticated")
    api = box.api()
    change = remediation.plan_compute(rbac.rbac_objects_fetch(api)).changes[0]
    first = remediation.change_apply(api, change)
    writes = [r for r in box.cluster.requests if r[0] == "PATCH"]
    second = remediation.change_apply(api, change)
    assert (first.result, second.result) == ("applied", "already")
    assert [r for r in box.cluster.requests if r[0] == "PATCH"] == writes
    assert box.subjects("rolebindings", "read-secrets", "payments") == ["ServiceAccount/payments-api"]


@pytest.mark.parametrize(
    "scenario",
    [
        "upgraded-pre-1.14",
        "custom-cluster-admin-anonymous",
        "namespaced-secrets-unauthenticated",
        "gitops-anonymous-binding",
    ],
)
def test_rollback_restores_exactly_the_snapshot(sandbox, scenario) -> None:
    box = sandbox(scenario)
    api = box.api()
    objects = rbac.rbac_objects_fetch(api)
    before_probes = _allowed(api)
    plan = remediation.plan_compute(objects)
    assert plan.changes
    outcomes = [remediation.change_apply(api, change) for change in plan.changes]
    # when
    restored = [
        remediation.change_restore(api, c, expected_rv=o.resource_version_after)
        for c, o in zip(reversed(plan.changes), reversed(outcomes), strict=True)
    ]
    # then: subjects, rules, labels and annotations are the snapshot's, and anonymous can do what it could
    assert {r.result for r in restored} == {"restored"}
    for change in plan.changes:
        now = remediation.object_read(api, change.kind, change.namespace, change.name)
        assert now is not None
        assert now.get("subjects") == change.before.get("subjects")
        assert now["metadata"].get("annotations") == change.before["metadata"].get("annotations")
        assert now["metadata"].get("labels") == change.before["metadata"].get("labels")
    assert _allowed(api) == before_probes


def test_rollback_does_not_overwrite_a_later_edit(sandbox) -> None:
    box = sandbox("upgraded-pre-1.14")
    api = box.api()
    change = next(
        c for c in remediation.plan_compute(rbac.rbac_objects_fetch(api)).changes if c.name == "system:discovery"
    )
    outcome = remediation.change_apply(api, change)
    box.store.patch(
        "clusterrolebindings",
        "",
        "system:discovery",
        {"metadata": {"labels": {"later": "edit"}}},
        content_type="application/merge-patch+json",
        dry_run=False,
    )
    with pytest.raises(KubernetesConflictError, match="changed since the remediation"):
        remediation.change_restore(api, change, expected_rv=outcome.resource_version_after)
    assert box.store.get("clusterrolebindings", "", "system:discovery")["metadata"]["labels"]["later"] == "edit"


def test_rules_added_to_a_default_role_are_removed_and_pinned(sandbox) -> None:
    tampered = copy.deepcopy(rbac.DEFAULT_RULES["system:discovery"][0])
    role = {
        "kind": "ClusterRole",
        "metadata": {
            "name": "system:discovery",
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {AUTOUPDATE: "true"},
        },
        "rules": [tampered, {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
    }
    box = sandbox("upgraded-pre-1.14", role)
    api = box.api()
    assert "list pods (all namespaces)" in _allowed(api)
    plan = remediation.plan_compute(rbac.rbac_objects_fetch(api))
    rule_change = next(c for c in plan.changes if c.kind == "ClusterRole")
    assert rule_change.removed == ("list pods",)
    for change in plan.changes:
        remediation.change_apply(api, change)
    stored = box.store.get("clusterroles", "", "system:discovery")
    assert stored["rules"] == [tampered] and stored["metadata"]["annotations"][AUTOUPDATE] == "false"
    assert _allowed(api) == {"get /healthz", "get /version"}
