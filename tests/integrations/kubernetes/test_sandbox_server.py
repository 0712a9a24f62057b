"""The sandbox API server speaks enough real Kubernetes for the official client: checked through that client."""

import json

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from integrations.kubernetes.client import Connection, api_client

GROUP = "rbac.authorization.k8s.io"


def _binding(name: str, *subjects: tuple[str, str], role: str = "view") -> dict:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": kind, "name": who, "apiGroup": GROUP} for kind, who in subjects],
    }


def _raw(response) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(response.data)


def test_requests_without_a_valid_token_get_401(sandbox, tmp_path) -> None:
    box = sandbox()
    config = box.cluster.kubeconfig(token="not-a-token")  # noqa: S106
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(config))
    api = api_client(Connection(name="bad", kubeconfig=str(path)))
    with pytest.raises(ApiException) as caught:
        k8s.RbacAuthorizationV1Api(api).list_cluster_role_binding(_preload_content=False)
    assert caught.value.status == 401


def test_lists_page_with_limit_and_continue(sandbox) -> None:
    box = sandbox("clean-modern", *[_binding(f"b-{i:03}", ("User", f"u{i}")) for i in range(7)])
    rbac = k8s.RbacAuthorizationV1Api(box.api())
    names, token, pages = [], None, 0
    while True:
        page = _raw(rbac.list_cluster_role_binding(limit=3, _continue=token, _preload_content=False))
        pages += 1
        names += [item["metadata"]["name"] for item in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
    assert pages == 4  # 4 defaults + 7 = 11 objects, 3 a page
    assert names == sorted(names) and len(set(names)) == 11


def test_a_patch_naming_a_stale_resource_version_gets_409_and_changes_nothing(sandbox) -> None:
    box = sandbox("upgraded-pre-1.14")
    rbac = k8s.RbacAuthorizationV1Api(box.api())
    read = _raw(rbac.read_cluster_role_binding("system:discovery", _preload_content=False))
    box.store.patch(
        "clusterrolebindings",
        "",
        "system:discovery",
        {"metadata": {"labels": {"x": "y"}}},
        content_type="application/merge-patch+json",
        dry_run=False,
    )  # someone else edits
    stale = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": read["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/subjects", "value": []},
    ]
    with pytest.raises(ApiException) as caught:
        rbac.patch_cluster_role_binding("system:discovery", body=stale, _content_type="application/json-patch+json")
    assert caught.value.status == 409
    assert box.subjects("clusterrolebindings", "system:discovery") == [
        "Group/system:authenticated",
        "Group/system:unauthenticated",
    ]


def test_dry_run_validates_but_stores_nothing(sandbox) -> None:
    box = sandbox("custom-cluster-admin-anonymous")
    rbac = k8s.RbacAuthorizationV1Api(box.api())
    before = box.store.get("clusterrolebindings", "", "debug-anonymous-admin")
    rbac.delete_cluster_role_binding("debug-anonymous-admin", dry_run="All", _preload_content=False)
    rbac.patch_cluster_role_binding(
        "debug-anonymous-admin", body={"subjects": []}, dry_run="All", _preload_content=False
    )
    assert box.store.get("clusterrolebindings", "", "debug-anonymous-admin") == before


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json-patch+json", [{"op": "remove", "path": "/subjects/1"}]),
        (
            "application/merge-patch+json",
            {"subjects": [{"kind": "Group", "name": "system:authenticated", "apiGroup": GROUP}]},
        ),
        (
            "application/strategic-merge-patch+json",
            {"subjects": [{"kind": "Group", "name": "system:authenticated", "apiGroup": GROUP}]},
        ),
    ],
)
def test_the_three_patch_formats(sandbox, content_type, body) -> None:
    box = sandbox("upgraded-pre-1.14")
    rbac = k8s.RbacAuthorizationV1Api(box.api())
    rbac.patch_cluster_role_binding("system:basic-user", body=body, _content_type=content_type, _preload_content=False)
    assert box.subjects("clusterrolebindings", "system:basic-user") == ["Group/system:authenticated"]


def test_role_ref_is_immutable(sandbox) -> None:
    box = sandbox()
    rbac = k8s.RbacAuthorizationV1Api(box.api())
    with pytest.raises(ApiException) as caught:
        rbac.patch_cluster_role_binding(
            "system:discovery",
            body={"roleRef": {"name": "cluster-admin"}},
            _content_type="application/merge-patch+json",
        )
    assert caught.value.status == 422


def _sar(api: k8s.ApiClient, user: str, groups: list[str], **attributes: str) -> bool:
    if "path" in attributes:
        spec = k8s.V1SubjectAccessReviewSpec(
            user=user, groups=groups, non_resource_attributes=k8s.V1NonResourceAttributes(**attributes)
        )
    else:
        spec = k8s.V1SubjectAccessReviewSpec(
            user=user, groups=groups, resource_attributes=k8s.V1ResourceAttributes(**attributes)
        )
    review = k8s.V1SubjectAccessReview(spec=spec)
    response = k8s.AuthorizationV1Api(api).create_subject_access_review(body=review, _preload_content=False)
    return bool(_raw(response)["status"]["allowed"])


def test_subject_access_review_uses_only_the_groups_given(sandbox) -> None:
    api = sandbox("upgraded-pre-1.14").api()
    # the group binding is found only when the group is passed (kubectl --as without --as-group misses it)
    assert _sar(api, "system:anonymous", ["system:unauthenticated"], verb="get", path="/apis")
    assert not _sar(api, "system:anonymous", [], verb="get", path="/apis")
    assert _sar(api, "system:anonymous", ["system:unauthenticated"], verb="get", path="/apis/apps/v1")  # prefix *


def test_subject_access_review_wildcards_and_namespaces(sandbox) -> None:
    api = sandbox("namespaced-secrets-unauthenticated").api()
    anonymous = ("system:anonymous", ["system:unauthenticated"])
    assert _sar(api, *anonymous, verb="get", resource="secrets", namespace="payments")
    assert not _sar(api, *anonymous, verb="get", resource="secrets", namespace="default")
    assert not _sar(api, *anonymous, verb="list", resource="secrets")  # a RoleBinding never grants cluster-wide
    assert _sar(
        api, "system:serviceaccount:payments:payments-api", [], verb="watch", resource="secrets", namespace="payments"
    )
    assert _sar(api, "root", ["system:masters"], verb="escalate", resource="clusterroles", group=GROUP)


def test_requests_are_authorised_with_rbac_and_refusals_read_like_the_real_server(sandbox, tmp_path) -> None:
    box = sandbox()
    token = box.cluster.token_add("watchpost", ["watchpost-readers"])
    path = tmp_path / "limited.yaml"
    path.write_text(json.dumps(box.cluster.kubeconfig(token=token)))
    api = api_client(Connection(name="limited", kubeconfig=str(path)))
    with pytest.raises(ApiException) as caught:
        k8s.RbacAuthorizationV1Api(api).list_cluster_role_binding(_preload_content=False)
    assert caught.value.status == 403
    assert (
        'User "watchpost" cannot list resource "clusterrolebindings" in API group "rbac.authorization.k8s.io" '
        "at the cluster scope" in json.loads(caught.value.body)["message"]
    )


def test_create_and_update_follow_the_api_servers_rules(sandbox) -> None:
    box = sandbox()
    rbac = k8s.RbacAuthorizationV1Api(box.api())
    created = _raw(rbac.create_cluster_role_binding(body=_binding("ops", ("User", "dana")), _preload_content=False))
    with pytest.raises(ApiException) as exists:
        rbac.create_cluster_role_binding(body=_binding("ops", ("User", "dana")))
    assert exists.value.status == 409 and json.loads(exists.value.body)["reason"] == "AlreadyExists"
    # an update naming the resourceVersion it read succeeds once; the same stale body then conflicts
    body = created | {"subjects": [{"kind": "User", "name": "erin", "apiGroup": GROUP}]}
    updated = _raw(rbac.replace_cluster_role_binding("ops", body=body, _preload_content=False))
    assert updated["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as stale:
        rbac.replace_cluster_role_binding("ops", body=body)
    assert stale.value.status == 409
    assert box.subjects("clusterrolebindings", "ops") == ["User/erin"]
