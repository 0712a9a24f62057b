"""RBAC actions on a case, end to end against the sandbox over HTTP: inspect, propose, approve, apply,
verify, roll back; approval rules; a concurrent edit stops the run and re-plans; evidence and timeline."""

import hashlib
import json

import pytest
from django.test import Client
from django.urls import reverse

from incidents.errors import ValidationError
from incidents.models import Evidence, Incident, TimelineEvent
from incidents.permissions import PermissionDeniedError
from incidents.services.rbac import rbac_remediation_propose, rbac_rollback_propose
from integrations.models import Cluster
from playbooks.actions import action_run_approve, action_run_request
from playbooks.models import ActionRun, ChecklistItem, PlaybookStep
from playbooks.tasks import action_run_task
from tests.sandbox_fixtures import Sandbox

pytestmark = pytest.mark.django_db
Status = ActionRun.Status


@pytest.fixture
def rbac_case(incident: Incident, sandbox, settings, tmp_path):  # type: ignore[no-untyped-def]
    """The incident's part-2 steps carry the RBAC actions; its cluster is the upgraded-cluster sandbox."""
    settings.MEDIA_ROOT = tmp_path / "media"
    PlaybookStep.objects.filter(playbook=incident.playbook, step_id="p2-isolate").update(action="rbac.inspect")
    PlaybookStep.objects.filter(playbook=incident.playbook, step_id="p2-revoke").update(action="rbac.remediate")
    box = sandbox("upgraded-pre-1.14")
    Incident.objects.filter(pk=incident.pk).update(cluster_name="payments-prod")
    cluster = Cluster.objects.create(
        name="payments-prod", via=Cluster.Via.KUBECONFIG, kubeconfig_path=str(box.kubeconfig), is_sandbox=True
    )
    items = {i.step.step_id: i for i in ChecklistItem.objects.filter(incident=incident).select_related("step")}
    return {
        "incident": incident,
        "box": box,
        "cluster": cluster,
        "inspect_item": items["p2-isolate"],
        "remediate_item": items["p2-revoke"],
    }


def _run(run: ActionRun) -> ActionRun:
    action_run_task.apply(args=[run.pk])
    run.refresh_from_db()
    return run


def _inspect(case, actor) -> ActionRun:  # type: ignore[no-untyped-def]
    run = action_run_request(
        incident_id=case["incident"].pk,
        action="rbac.inspect",
        actor=actor,
        params={"cluster": str(case["cluster"].pk)},
        item_id=case["inspect_item"].pk,
    )
    return _run(run)


def _probe(table: list[dict], label: str) -> tuple[bool, bool]:
    row = next(row for row in table if row["probe"] == label)
    return row["before"], row["after"]


def test_inspection_stores_the_report_and_raw_objects_as_hashed_evidence(rbac_case, responder, events) -> None:
    run = _inspect(rbac_case, responder)
    assert run.status == Status.SUCCEEDED, run.error
    rows = [(r["subject"], r["binding"], r["classification"]) for r in run.result["report"]["rows"]]
    assert ("Group/system:unauthenticated", "ClusterRoleBinding/system:discovery", "legacy-default") in rows
    assert [c["target"] for c in run.result["plan"]["changes"]] == [
        "ClusterRoleBinding/system:basic-user",
        "ClusterRoleBinding/system:discovery",
    ]
    assert {check["ok"] for check in run.result["dry_run"]} == {"yes"}
    for key in ("objects", "report"):
        evidence = Evidence.objects.get(pk=run.result["evidence"][key])
        assert evidence.custody.get().detail == f"captured by rbac.inspect run #{run.pk}"
        with evidence.file.open("rb") as stored:
            assert hashlib.sha256(stored.read()).hexdigest() == evidence.sha256
    report = json.loads(Evidence.objects.get(pk=run.result["evidence"]["report"]).file.read())
    assert report["rows"] == run.result["report"]["rows"]
    summaries = [e.summary for e in events(rbac_case["incident"])]
    assert any(s.startswith("RBAC inspected: payments-prod (sandbox): 2 anonymous grant(s)") for s in summaries)
    assert sum(s.startswith("Evidence added: rbac-") for s in summaries) == 2


def test_propose_approve_apply_verify_and_roll_back(rbac_case, responder, manager, events) -> None:
    box: Sandbox = rbac_case["box"]
    incident = rbac_case["incident"]
    inspection = _inspect(rbac_case, responder)
    # a responder proposes; the manager approves; the worker applies
    proposed = rbac_remediation_propose(
        incident_id=incident.pk, actor=responder, source_run_id=inspection.pk, item_id=rbac_case["remediate_item"].pk
    )
    assert proposed.status == Status.PROPOSED and len(proposed.params["plan"]["changes"]) == 2
    action_run_approve(run_id=proposed.pk, actor=manager)
    applied = _run(proposed)
    assert applied.status == Status.SUCCEEDED, applied.error
    # anonymous discovery is denied afterwards, /healthz stays allowed
    assert _probe(applied.result["probes"], "get /apis") == (True, False)
    assert _probe(applied.result["probes"], "get /api") == (True, False)
    assert _probe(applied.result["probes"], "get /healthz") == (True, True)
    assert box.subjects("clusterrolebindings", "system:discovery") == ["Group/system:authenticated"]
    snapshot = json.loads(Evidence.objects.get(pk=applied.result["evidence"]["snapshot"]).file.read())
    assert [obj["metadata"]["name"] for obj in snapshot] == ["system:basic-user", "system:discovery"]
    # roll back, approved the same way
    rollback = rbac_rollback_propose(incident_id=incident.pk, actor=responder, remediation_run_id=applied.pk)
    assert rollback.status == Status.PROPOSED and rollback.parent_id == applied.pk
    action_run_approve(run_id=rollback.pk, actor=manager)
    rolled = _run(rollback)
    assert rolled.status == Status.SUCCEEDED, rolled.error
    assert _probe(rolled.result["probes"], "get /apis") == (False, True)
    assert box.subjects("clusterrolebindings", "system:discovery") == [
        "Group/system:authenticated",
        "Group/system:unauthenticated",
    ]
    assert box.store.get("clusterrolebindings", "", "system:discovery")["metadata"]["annotations"] == {
        "rbac.authorization.kubernetes.io/autoupdate": "true"
    }
    summaries = [e.summary for e in events(incident, TimelineEvent.Kind.ACTION)]
    assert any(s.startswith("Remediation applied on payments-prod") for s in summaries)
    assert any(s.startswith(f"Remediation #{applied.pk} rolled back") for s in summaries)
    # the page shows both before/after tables and no longer offers a second rollback
    client = Client()
    client.force_login(responder)
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert page.count('class="dense rbac-probes"') == 2 and "Propose rollback of run" not in page
    with pytest.raises(ValidationError, match="already proposed or done"):
        rbac_rollback_propose(incident_id=incident.pk, actor=responder, remediation_run_id=applied.pk)


def test_approval_rules(rbac_case, responder, manager, viewer) -> None:
    incident = rbac_case["incident"]
    inspection = _inspect(rbac_case, responder)
    with pytest.raises(PermissionDeniedError):  # a viewer cannot propose
        rbac_remediation_propose(incident_id=incident.pk, actor=viewer, source_run_id=inspection.pk)
    proposed = rbac_remediation_propose(incident_id=incident.pk, actor=manager, source_run_id=inspection.pk)
    with pytest.raises(ValidationError, match="Two-person rule"):  # the proposer cannot approve, manager or not
        action_run_approve(run_id=proposed.pk, actor=manager)
    other = rbac_remediation_propose(incident_id=incident.pk, actor=responder, source_run_id=inspection.pk)
    with pytest.raises(PermissionDeniedError):  # only a manager approves
        action_run_approve(run_id=other.pk, actor=responder)
    assert ActionRun.objects.get(pk=other.pk).status == Status.PROPOSED


def test_public_info_viewer_is_refused_even_when_asked(rbac_case, responder) -> None:
    inspection = _inspect(rbac_case, responder)
    with pytest.raises(ValidationError, match="never changed"):
        rbac_remediation_propose(
            incident_id=rbac_case["incident"].pk,
            actor=responder,
            source_run_id=inspection.pk,
            targets=["ClusterRoleBinding/system:public-info-viewer"],
        )
    assert not ActionRun.objects.filter(action="rbac.remediate").exists()


def test_a_concurrent_edit_stops_the_run_shows_what_changed_and_re_plans(rbac_case, responder, manager) -> None:
    box: Sandbox = rbac_case["box"]
    incident = rbac_case["incident"]
    inspection = _inspect(rbac_case, responder)
    proposed = rbac_remediation_propose(incident_id=incident.pk, actor=responder, source_run_id=inspection.pk)
    action_run_approve(run_id=proposed.pk, actor=manager)
    # given: between approval and apply, someone adds a subject to system:discovery
    discovery = box.store.get("clusterrolebindings", "", "system:discovery")
    discovery["subjects"].append({"kind": "User", "name": "system:anonymous"})
    box.store.update("clusterrolebindings", "", "system:discovery", discovery, dry_run=False)
    # when
    run = _run(proposed)
    # then: failed with the reason, nothing overwritten, a fresh plan that covers the new subject
    assert run.status == Status.FAILED and "409 Conflict" in run.error and "User/system:anonymous" in run.error
    assert "User/system:anonymous" in box.subjects("clusterrolebindings", "system:discovery")
    replanned = {c["target"]: c["removed"] for c in run.result["replan"]["changes"]}
    assert replanned["ClusterRoleBinding/system:discovery"] == ["Group/system:unauthenticated", "User/system:anonymous"]
    again = rbac_remediation_propose(incident_id=incident.pk, actor=responder, source_run_id=run.pk)
    action_run_approve(run_id=again.pk, actor=manager)
    assert _run(again).status == Status.SUCCEEDED
    assert box.subjects("clusterrolebindings", "system:discovery") == ["Group/system:authenticated"]


def test_an_unreachable_cluster_fails_the_run_with_the_reason(rbac_case, responder, settings) -> None:
    rbac_case["box"].cluster.stop()
    run = action_run_request(
        incident_id=rbac_case["incident"].pk,
        action="rbac.inspect",
        actor=responder,
        params={"cluster": str(rbac_case["cluster"].pk)},
    )
    action_run_task.apply(args=[run.pk], retries=5)  # the last allowed attempt: no more retries
    run.refresh_from_db()
    assert run.status == Status.FAILED and "endpoint unreachable" in run.error


# -- the page -------------------------------------------------------------------------------------
def test_the_incident_page_shows_report_plan_and_approval(rbac_case, responder, manager) -> None:
    incident = rbac_case["incident"]
    url = reverse("incidents:detail", args=[incident.pk])
    client = Client()
    client.force_login(responder)
    assert "Inspect RBAC" in client.get(url).content.decode()
    _inspect(rbac_case, responder)
    page = client.get(url).content.decode()
    assert "legacy-default" in page and "ClusterRoleBinding/system:discovery" in page
    assert "Propose remediation" in page and "<del>− Group/system:unauthenticated</del>" in page
    # propose through the form, then the manager sees Approve
    inspection = ActionRun.objects.get(action="rbac.inspect")
    response = client.post(
        reverse("incidents:rbac-propose", args=[incident.pk]),
        {
            "source_run": inspection.pk,
            "item": rbac_case["remediate_item"].pk,
            "target": ["ClusterRoleBinding/system:discovery"],
        },
    )
    assert response.status_code == 303
    run = ActionRun.objects.get(action="rbac.remediate")
    assert [c["target"] for c in run.params["plan"]["changes"]] == ["ClusterRoleBinding/system:discovery"]
    client.force_login(manager)
    assert "Approve</button>" in client.get(url).content.decode()


def test_the_forms_refuse_viewers_and_anonymous_visitors(rbac_case, responder, viewer) -> None:
    incident = rbac_case["incident"]
    inspection = _inspect(rbac_case, responder)
    propose = reverse("incidents:rbac-propose", args=[incident.pk])
    assert Client().post(propose, {"source_run": inspection.pk}).status_code == 302  # to the login page
    client = Client()
    client.force_login(viewer)
    assert client.post(propose, {"source_run": inspection.pk}).status_code == 403
    assert not ActionRun.objects.filter(action="rbac.remediate").exists()


def test_a_plan_typed_into_the_generic_action_form_is_refused(rbac_case, responder, manager) -> None:
    box: Sandbox = rbac_case["box"]
    incident = rbac_case["incident"]
    inspection = _inspect(rbac_case, responder)
    # given: a proposal whose plan is not the inspection's (here: the public-info-viewer binding, emptied)
    forged = json.loads(json.dumps(inspection.result["plan"]))
    forged["changes"][0]["name"] = "system:public-info-viewer"
    forged["changes"][0]["after"]["subjects"] = []
    run = action_run_request(
        incident_id=incident.pk,
        action="rbac.remediate",
        actor=responder,
        params={"plan": forged, "source_run": str(inspection.pk)},
    )
    typed = action_run_request(
        incident_id=incident.pk,
        action="rbac.remediate",
        actor=responder,
        params={"plan": "{}", "source_run": str(inspection.pk)},
    )
    for proposal in (run, typed):
        action_run_approve(run_id=proposal.pk, actor=manager)
        # when
        done = _run(proposal)
        # then
        assert done.status == Status.FAILED and done.error.startswith("Refused:")
    assert box.subjects("clusterrolebindings", "system:public-info-viewer") == [
        "Group/system:authenticated",
        "Group/system:unauthenticated",
    ]
    assert not [r for r in box.cluster.requests if r[0] in ("PATCH", "DELETE") and "dryRun" not in r[1]]


def test_the_panel_polls_itself_while_a_run_is_queued_and_shows_the_report_when_done(
    rbac_case, responder, outsider
) -> None:
    incident, item = rbac_case["incident"], rbac_case["inspect_item"]
    panel = reverse("incidents:rbac-panel", args=[incident.pk, item.pk])
    run = action_run_request(
        incident_id=incident.pk,
        action="rbac.inspect",
        actor=responder,
        params={"cluster": str(rbac_case["cluster"].pk)},
        item_id=item.pk,
    )
    client = Client()
    client.force_login(responder)
    queued = client.get(panel).content.decode()
    assert f'hx-get="{panel}"' in queued and "Exposure report" not in queued
    _run(run)
    done = client.get(panel).content.decode()
    assert f'hx-get="{panel}"' not in done and "Exposure report" in done
    client.force_login(outsider)
    assert client.get(panel).status_code == 404
    assert Client().get(panel).status_code == 302


def test_a_missing_permission_is_named_on_the_case(rbac_case, responder, tmp_path) -> None:
    box: Sandbox = rbac_case["box"]
    limited = tmp_path / "limited.yaml"
    limited.write_text(json.dumps(box.cluster.kubeconfig(token=box.cluster.token_add("watchpost"))))
    Cluster.objects.filter(pk=rbac_case["cluster"].pk).update(kubeconfig_path=str(limited))
    run = _inspect(rbac_case, responder)
    assert run.status == Status.FAILED
    assert "403 Forbidden: missing permission: list clusterroles.rbac.authorization.k8s.io (cluster scope)" in run.error
    client = Client()
    client.force_login(responder)
    page = client.get(reverse("incidents:detail", args=[rbac_case["incident"].pk])).content.decode()
    assert "missing permission: list clusterroles.rbac.authorization.k8s.io" in page
