"""EKS RBAC on a case: inspect, propose a remediation, apply it, verify it, roll it back.

Handlers for the `rbac.*` actions (`playbooks.actions`): the task claims the ActionRun, then calls
one of `rbac_inspect_run`, `rbac_remediate_run`, `rbac_rollback_run`. Raw objects, reports and
snapshots are stored as hashed evidence (each with its timeline row); a summary row goes on the
timeline for every inspection, remediation and rollback.

A remediation plan is always computed by Watchpost (by an inspection, or by a remediation that hit
a 409 and re-planned) and frozen into the proposed run's parameters, so the manager approves exactly
what will be applied. Progress is saved after each object, so a run repeated after a crash converges.
"""

import json
import logging
from typing import Any, NoReturn

from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from incidents import permissions, timeline
from incidents.errors import ValidationError
from incidents.models import Evidence, Incident
from incidents.selectors import incident_queryset_for_user
from incidents.services.evidence import evidence_add
from integrations.errors import PermanentIntegrationError
from integrations.kubernetes import rbac as k8s_rbac
from integrations.kubernetes import remediation
from integrations.kubernetes.client import KubernetesConflictError, api_client
from integrations.models import Cluster
from integrations.services import cluster_connection
from playbooks.actions import action_run_progress, action_run_request
from playbooks.models import ActionRun

INSPECT, REMEDIATE, ROLLBACK = "rbac.inspect", "rbac.remediate", "rbac.rollback"
security_log = logging.getLogger("watchpost.security")


# -- clusters -------------------------------------------------------------------------------------
def clusters_for_incident(*, incident: Incident) -> tuple[list[Cluster], int | None]:
    """Enabled clusters, and the one the incident's finding names (if configured)."""
    clusters = list(Cluster.objects.filter(enabled=True).select_related("account"))
    match = next((c.pk for c in clusters if c.name == incident.cluster_name), None)
    return clusters, match


def _cluster(*, run: ActionRun) -> Cluster:
    raw = str(run.params.get("cluster") or "")
    queryset = Cluster.objects.filter(enabled=True).select_related("account")
    cluster = queryset.filter(pk=int(raw)).first() if raw.isdigit() else None
    if cluster is None:
        cluster = queryset.filter(name=run.incident.cluster_name).first()
    if cluster is None:
        raise ValidationError(
            f"No enabled cluster {'#' + raw if raw else run.incident.cluster_name or '(none named)'}: "
            "add it under Admin → Clusters."
        )
    return cluster


def finding_call(*, incident: Incident) -> dict[str, str]:
    """The Kubernetes API call of the incident's latest finding (verb, resource, namespace, URI)."""
    finding = incident.findings.order_by("-finding_updated_at").only("raw").first()
    if finding is None:
        return {}
    call = ((finding.raw.get("service") or {}).get("action") or {}).get("kubernetesApiCallAction") or {}
    return {
        "verb": str(call.get("verb") or ""),
        "resource": str(call.get("resource") or ""),
        "namespace": str(call.get("namespace") or ""),
        "name": str(call.get("resourceName") or ""),
        "request_uri": str(call.get("requestUri") or ""),
    }


# -- evidence and timeline ------------------------------------------------------------------------
def _evidence(*, run: ActionRun, actor: User | None, name: str, data: Any, description: str) -> Evidence:
    body = json.dumps(data, indent=1, sort_keys=True).encode()
    who = actor or run.requested_by
    assert who is not None  # a run always has its requester (the FK is only nulled if the user is deleted)
    upload = SimpleUploadedFile(name, body, content_type="application/json")
    return evidence_add(
        incident_id=run.incident_id,
        actor=who,
        upload=upload,
        description=f"{description} (action run #{run.pk})",
        acquired_by=f"captured by {run.action} run #{run.pk}",
    )


def _remember(run: ActionRun, **values: Any) -> dict[str, Any]:
    """Progress that survives a crash: what was stored and applied so far."""
    run.progress = {**run.progress, **values}
    action_run_progress(run_id=run.pk, progress=run.progress)
    return run.progress


def _evidence_once(*, run: ActionRun, key: str, actor: User | None, name: str, data: Any, description: str) -> int:
    if run.progress.get(key):
        return int(run.progress[key])  # a repeated run: stored already
    evidence = _evidence(run=run, actor=actor, name=name, data=data, description=description)
    _remember(run, **{key: evidence.pk})
    return evidence.pk


def _event(*, run: ActionRun, actor: User | None, summary: str, data: dict[str, Any]) -> None:
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=run.incident_id)
        timeline.event_add(
            incident=incident, kind=timeline.Kind.ACTION, actor=actor, summary=summary, data={"run": run.pk} | data
        )


def _security_log(*, run: ActionRun, what: str, targets: list[str]) -> None:
    """Remediation actions in the security log (S13): who asked, who approved, which objects."""
    security_log.info(
        "%s run=%s incident=%s requested_by=%s approved_by=%s objects=%s",
        what,
        run.pk,
        run.incident_id,
        run.requested_by.get_username() if run.requested_by else "-",
        run.approved_by.get_username() if run.approved_by else "-",
        ",".join(targets),
    )


def _probe_line(probes: list[dict[str, Any]]) -> str:
    return "; ".join(f"{p['label']} {'allowed' if p['allowed'] else 'denied'}" for p in probes)


# -- inspect --------------------------------------------------------------------------------------
def rbac_inspect_run(*, run: ActionRun) -> dict[str, Any]:
    cluster = _cluster(run=run)
    api = api_client(cluster_connection(cluster))
    objects, report = k8s_rbac.rbac_inspect(api, finding=finding_call(incident=run.incident))
    plan = remediation.plan_compute(objects)
    dry_run = remediation.plan_dry_run(api, plan)
    report_data = report.as_dict()
    objects_id = _evidence_once(
        run=run,
        key="objects_evidence",
        actor=run.requested_by,
        name=f"rbac-objects-{cluster.name}.json",
        data=objects.as_dict(),
        description=f"RBAC objects of {cluster} as listed",
    )
    report_id = _evidence_once(
        run=run,
        key="report_evidence",
        actor=run.requested_by,
        name=f"rbac-exposure-{cluster.name}.json",
        data=report_data | {"plan": plan.as_dict(), "dry_run": dry_run},
        description=f"Anonymous exposure of {cluster}",
    )
    risky = [row for row in report.rows if row.classification != "expected"]
    summary = (
        f"{cluster}: {len(risky)} anonymous grant(s) beyond public-info-viewer"
        + (f", worst {max(risky, key=lambda r: k8s_rbac.RISKS.index(r.risk)).risk}" if risky else "")
        + f"; {len(plan.changes)} change(s) planned"
    )
    _event(
        run=run,
        actor=None,
        summary=f"RBAC inspected: {summary}",
        data={
            "cluster": cluster.name,
            "rows": [[r.subject, r.binding, r.classification, r.risk] for r in report.rows],
            "probes": _probe_line(report_data["probes"]),
            "evidence": [objects_id, report_id],
        },
    )
    return {
        "summary": summary,
        "cluster": {"id": cluster.pk, "name": str(cluster)},
        "report": report_data,
        "plan": plan.as_dict(),
        "dry_run": dry_run,
        "evidence": {"objects": objects_id, "report": report_id},
    }


# -- propose --------------------------------------------------------------------------------------
def _source_plan(run: ActionRun) -> dict[str, Any]:
    if run.action == INSPECT and run.status == ActionRun.Status.SUCCEEDED:
        return dict(run.result.get("plan") or {})
    if run.action == REMEDIATE and run.result.get("replan"):
        return dict(run.result["replan"])
    raise ValidationError(f"Run #{run.pk} has no plan to propose: inspect the cluster first.")


def rbac_remediation_propose(
    *, incident_id: int, actor: User, source_run_id: int, targets: list[str] | None = None, item_id: int | None = None
) -> ActionRun:
    """Freeze a Watchpost-computed plan (optionally narrowed to `targets`) into a proposed rbac.remediate run."""
    permissions.require(permissions.can_work(actor), "Viewers cannot propose a remediation.")
    source = ActionRun.objects.get(
        pk=source_run_id, incident_id=incident_id, incident__in=incident_queryset_for_user(actor)
    )
    plan = remediation.Plan.from_dict(_source_plan(source))
    asked_public = [t for t in targets or [] if t.rsplit("/", 1)[-1] == k8s_rbac.PUBLIC_INFO_VIEWER]
    if asked_public:
        raise ValidationError(
            f"Refused: {', '.join(asked_public)} is never changed. Anonymous /healthz through "
            "system:public-info-viewer is what the API server's load balancer health checks use, and the API "
            "server would restore it at its next restart."
        )
    if targets is not None:
        known = {change.target for change in plan.changes}
        unknown = [t for t in targets if t not in known]
        if unknown:
            raise ValidationError(f"Not in the plan: {', '.join(unknown)}.")
        plan = remediation.Plan(changes=tuple(c for c in plan.changes if c.target in targets), refusals=plan.refusals)
    if not plan.changes:
        raise ValidationError("Nothing to remediate: the plan is empty.")
    cluster = source.params.get("cluster") or (source.result.get("cluster") or {}).get("id", "")
    return action_run_request(
        incident_id=incident_id,
        action=REMEDIATE,
        actor=actor,
        params={"cluster": str(cluster), "plan": plan.as_dict(), "source_run": source.pk},
        item_id=item_id,
        parent_id=source.pk,
    )


def rbac_rollback_propose(*, incident_id: int, actor: User, remediation_run_id: int) -> ActionRun:
    permissions.require(permissions.can_work(actor), "Viewers cannot propose a rollback.")
    parent = ActionRun.objects.get(
        pk=remediation_run_id, incident_id=incident_id, action=REMEDIATE, incident__in=incident_queryset_for_user(actor)
    )
    if not _applied(parent):
        raise ValidationError(f"Run #{parent.pk} changed nothing in the cluster: there is nothing to roll back.")
    if (
        parent.children.filter(action=ROLLBACK)
        .exclude(status__in=[ActionRun.Status.REJECTED, ActionRun.Status.CANCELLED, ActionRun.Status.FAILED])
        .exists()
    ):
        raise ValidationError(f"A rollback of run #{parent.pk} is already proposed or done.")
    return action_run_request(
        incident_id=incident_id,
        action=ROLLBACK,
        actor=actor,
        params={"cluster": str(parent.params.get("cluster", ""))},
        item_id=parent.checklist_item_id,
        parent_id=parent.pk,
    )


def _applied(run: ActionRun) -> list[dict[str, Any]]:
    outcomes = run.result.get("outcomes") or run.progress.get("outcomes") or []
    return [o for o in outcomes if o.get("result") in (remediation.APPLIED, remediation.ALREADY)]


# -- remediate ------------------------------------------------------------------------------------
def _probes(api: Any, run: ActionRun) -> list[dict[str, Any]]:
    probes = k8s_rbac.probes_run(api, k8s_rbac.probes_default(finding_call(incident=run.incident)))
    return [k8s_rbac.probe_as_dict(probe) for probe in probes]


def _probe_table(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    now = {probe["label"]: probe["allowed"] for probe in after}
    return [{"probe": p["label"], "before": p["allowed"], "after": now.get(p["label"])} for p in before]


def _cluster_ref(*, run: ActionRun) -> dict[str, Any]:
    cluster = _cluster(run=run)
    return {"id": cluster.pk, "name": str(cluster)}


def _conflict(*, run: ActionRun, api: Any, error: KubernetesConflictError, outcomes: list[dict[str, Any]]) -> NoReturn:
    """Stop, re-plan from what the cluster holds now, show it, and fail the run with the reason."""
    replan = remediation.plan_compute(k8s_rbac.rbac_objects_fetch(api))
    result = {
        "summary": "stopped by a concurrent change; re-planned",
        "conflict": str(error),
        "outcomes": outcomes,
        "replan": replan.as_dict(),
        "cluster": run.params.get("cluster"),
    }
    ActionRun.objects.filter(pk=run.pk).update(result=result)
    _event(
        run=run,
        actor=None,
        summary=f"Remediation stopped: {error}. Re-planned: {len(replan.changes)} change(s)",
        data={"conflict": str(error), "replan": [c.target for c in replan.changes]},
    )
    raise PermanentIntegrationError(f"{error}. Nothing was overwritten; a new plan is shown for approval.") from error


def _verified_plan(run: ActionRun) -> remediation.Plan:
    """The run's plan, only if every change is one Watchpost computed in the run it names as its source.

    Run parameters can also arrive through the generic action form; a plan typed into a form is refused.
    """
    data, source_id = run.params.get("plan"), str(run.params.get("source_run") or "")
    source = (
        ActionRun.objects.filter(pk=int(source_id), incident_id=run.incident_id).first()
        if source_id.isdigit()
        else None
    )
    if not isinstance(data, dict) or source is None:
        raise ValidationError("Refused: this run carries no plan computed by Watchpost. Propose from an inspection.")
    plan = remediation.Plan.from_dict(data)
    computed = remediation.Plan.from_dict(_source_plan(source)).changes
    if not plan.changes or any(change not in computed for change in plan.changes):
        raise ValidationError(f"Refused: the plan differs from the one run #{source.pk} computed.")
    if any(c.name == k8s_rbac.PUBLIC_INFO_VIEWER for c in plan.changes):
        raise ValidationError("Refused: system:public-info-viewer is never changed.")  # defence in depth
    return plan


def rbac_remediate_run(*, run: ActionRun) -> dict[str, Any]:
    plan = _verified_plan(run)
    cluster = _cluster(run=run)
    api = api_client(cluster_connection(cluster))
    actor = run.approved_by or run.requested_by
    before = run.progress.get("probes_before") or _remember(run, probes_before=_probes(api, run))["probes_before"]
    snapshot_id = _evidence_once(
        run=run,
        key="snapshot_evidence",
        actor=actor,
        name=f"rbac-snapshot-before-{cluster.name}.json",
        data=[change.before for change in plan.changes],
        description=f"Snapshot before remediation of {cluster}",
    )
    for check in remediation.plan_dry_run(api, plan):
        if check["ok"] != "yes":
            _conflict(run=run, api=api, error=KubernetesConflictError(check["message"]), outcomes=[])
    _security_log(run=run, what="rbac remediation", targets=[c.target for c in plan.changes])
    outcomes: list[dict[str, Any]] = []
    for change in plan.changes:
        try:
            outcome = remediation.change_apply(api, change)
        except KubernetesConflictError as error:
            _conflict(run=run, api=api, error=error, outcomes=outcomes)
        outcomes.append(_outcome_row(outcome))
        _remember(run, outcomes=outcomes)
    after_objects = _objects_now(api, plan)
    after_id = _evidence_once(
        run=run,
        key="after_evidence",
        actor=actor,
        name=f"rbac-after-{cluster.name}.json",
        data=[o for o in after_objects if o is not None],
        description=f"Objects after remediation of {cluster}",
    )
    after = _probes(api, run)
    table = _probe_table(before, after)
    summary = f"{cluster}: " + "; ".join(f"{o['target']} {o['operation']} ({o['result']})" for o in outcomes)
    _event(
        run=run,
        actor=actor,
        summary=f"Remediation applied on {summary}",
        data={
            "outcomes": outcomes,
            "probes": table,
            "evidence": [snapshot_id, after_id],
        },
    )
    return {
        "summary": summary,
        "cluster": {"id": cluster.pk, "name": str(cluster)},
        "outcomes": outcomes,
        "probes": table,
        "evidence": {"snapshot": snapshot_id, "after": after_id},
    }


def _outcome_row(outcome: Any) -> dict[str, Any]:
    """An applied change as kept on the run: the object itself goes to evidence, not the row."""
    return {k: v for k, v in remediation.outcome_as_dict(outcome).items() if k != "object_after"}


def _objects_now(api: Any, plan: remediation.Plan) -> list[Any]:
    """The plan's objects re-read after the run (None for one that no longer exists)."""
    return [remediation.object_read(api, c.kind, c.namespace, c.name) for c in plan.changes]


# -- rollback -------------------------------------------------------------------------------------
def rbac_rollback_run(*, run: ActionRun) -> dict[str, Any]:
    parent = run.parent
    if parent is None or parent.action != REMEDIATE:
        raise ValidationError("A rollback must point at the remediation it undoes.")
    plan = remediation.Plan.from_dict(parent.params.get("plan") or {})
    applied = {o["target"]: o for o in _applied(parent)}
    cluster = _cluster(run=run)
    api = api_client(cluster_connection(cluster))
    actor = run.approved_by or run.requested_by
    before = run.progress.get("probes_before") or _remember(run, probes_before=_probes(api, run))["probes_before"]
    outcomes: list[dict[str, Any]] = list(run.progress.get("outcomes") or [])
    done = {o["target"] for o in outcomes}
    _security_log(run=run, what="rbac rollback", targets=sorted(applied))
    for change in reversed(plan.changes):
        if change.target not in applied or change.target in done:
            continue
        try:
            outcome = remediation.change_restore(
                api, change, expected_rv=applied[change.target]["resource_version_after"]
            )
        except KubernetesConflictError as error:
            _event(run=run, actor=None, summary=f"Rollback stopped: {error}", data={"outcomes": outcomes})
            raise PermanentIntegrationError(f"{error}. Restore it by hand from snapshot evidence.") from error
        outcomes.append(_outcome_row(outcome))
        _remember(run, outcomes=outcomes)
    restored = _objects_now(api, plan)
    evidence_id = _evidence_once(
        run=run,
        key="after_evidence",
        actor=actor,
        name=f"rbac-after-rollback-{cluster.name}.json",
        data=[o for o in restored if o is not None],
        description=f"Objects after rollback on {cluster}",
    )
    table = _probe_table(before, _probes(api, run))
    summary = f"{cluster}: " + "; ".join(f"{o['target']} ({o['result']})" for o in outcomes)
    _event(
        run=run,
        actor=actor,
        summary=f"Remediation #{parent.pk} rolled back on {summary}",
        data={
            "outcomes": outcomes,
            "probes": table,
            "evidence": [evidence_id],
        },
    )
    return {
        "summary": summary,
        "cluster": {"id": cluster.pk, "name": str(cluster)},
        "outcomes": outcomes,
        "probes": table,
        "evidence": {"after": evidence_id},
    }
