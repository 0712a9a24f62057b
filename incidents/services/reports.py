"""The post-incident report, in Markdown and in PDF (WeasyPrint), built from the case as recorded.

Sections: header, metrics, lessons learned and follow-ups, checklist (who and when), decisions, RBAC
before/after, queries with provenance and hashes, evidence with hashes and custody, timeline.
The RBAC and query sections show whatever automation recorded (the case's playbook ActionRun rows:
params, result, approval, and the evidence they produced); a case worked by hand says so.

Reading a report is not a change to the case: nothing is written here. The evidence bundle
(`incidents.services.bundle`) is the export that goes on the custody log.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.template.loader import render_to_string
from django.utils import timezone

from incidents.models import (
    CustodyEvent,
    Evidence,
    FollowUpAction,
    Incident,
    LessonsLearned,
    TimelineEvent,
)
from incidents.selectors import ChecklistPart, checklist_for_incident, incident_queryset_for_user
from incidents.sla import SlaState, short_duration, sla_state
from playbooks.models import ActionRun, ChecklistItem, PlaybookStep

PDF_TIMELINE_CAP = 500  # beyond this the PDF points to the full timeline in the Markdown report and bundle
KIND_LABELS = dict(TimelineEvent.Kind.choices)
REPORT_CSS = Path(settings.BASE_DIR) / "static" / "css" / "report.css"


@dataclass(frozen=True)
class EventLine:
    occurred_at: datetime
    kind: str
    actor: str
    summary: str


@dataclass(frozen=True)
class EvidenceEntry:
    evidence: Evidence
    custody: list[CustodyEvent]


@dataclass(frozen=True)
class ActionEntry:
    """One automated action as recorded: its name, state, times and the fields it stored."""

    action: str
    status: str
    when: str
    by: str
    details: list[tuple[str, str]]
    evidence: list[tuple[str, str]] = field(default_factory=list)  # (name, sha256)


@dataclass(frozen=True)
class ReportData:
    incident: Incident
    generated_at: datetime
    generated_by: str
    sla: SlaState
    metrics: list[tuple[str, str]]
    parts: list[ChecklistPart]
    decisions: list[ChecklistItem]
    rbac: list[ActionEntry]
    queries: list[ActionEntry]
    evidence: list[EvidenceEntry]
    lessons: LessonsLearned | None
    follow_ups: list[FollowUpAction]
    events_total: int


def report_incident_get(*, user: User | AnonymousUser | None, incident_id: int) -> Incident:
    """The case, if the user may read it (None: the command line, which sees everything)."""
    queryset = Incident.objects.all() if user is None else incident_queryset_for_user(user)
    return queryset.select_related("playbook", "commander").prefetch_related("assignees").get(pk=incident_id)


def report_data(*, incident: Incident, generated_by: str) -> ReportData:
    runs = _action_runs(incident)
    lessons = LessonsLearned.objects.filter(incident=incident).select_related("updated_by").first()
    parts = checklist_for_incident(incident=incident)
    return ReportData(
        incident=incident,
        generated_at=timezone.now(),
        generated_by=generated_by,
        sla=sla_state(incident),
        metrics=_metrics(incident),
        parts=parts,
        decisions=[i for p in parts for i in p.items if i.step.kind == PlaybookStep.Kind.DECISION],
        rbac=[run for run in runs if run.action.startswith("rbac")],
        queries=[run for run in runs if run.action.startswith(("query", "audit"))],
        evidence=[
            EvidenceEntry(item, list(item.custody.select_related("actor").order_by("at", "id")))
            for item in incident.evidence.select_related("uploaded_by").order_by("created_at", "id")
        ],
        lessons=lessons,
        follow_ups=list(incident.follow_ups.select_related("owner")),
        events_total=TimelineEvent.objects.filter(incident=incident).count(),
    )


def report_events(*, incident: Incident, limit: int | None = None) -> Iterator[EventLine]:
    rows = (
        TimelineEvent.objects.filter(incident=incident)
        .order_by("occurred_at", "id")
        .values_list("occurred_at", "kind", "actor__username", "summary")
    )
    for occurred_at, kind, actor, summary in (rows[:limit] if limit else rows).iterator(chunk_size=2000):
        yield EventLine(occurred_at, str(KIND_LABELS.get(kind, kind)), actor or "system", summary)


def _span(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    return short_duration(max(end - start, timedelta(0)))


def _metrics(incident: Incident) -> list[tuple[str, str]]:
    start = incident.detected_at
    return [
        ("Time to acknowledge (MTTA)", _span(start, incident.acknowledged_at)),
        ("Time to contain (MTTC: containment done)", _span(start, incident.eradication_at)),
        ("Time to resolve (MTTR: closed)", _span(start, incident.closed_at)),
        ("Acknowledgement SLA", sla_state(incident).detail),
    ]


# --- Automated actions: whatever the playbook engine recorded ----------------------------------------------


def _action_runs(incident: Incident) -> list[ActionEntry]:
    """Every automation run of the case, with what it was asked (params) and what it recorded (result).

    Evidence a run produced is listed with its hash when its result names it (`evidence`,
    `evidence_id` or `evidence_ids`: the convention the action handlers use for their outputs)."""
    runs = ActionRun.objects.filter(incident=incident).select_related("requested_by", "approved_by")
    return [_entry_from_run(run) for run in runs.order_by("created_at", "pk")]


def _evidence_ids(result: object) -> list[int]:
    if not isinstance(result, dict):
        return []
    ids: list[int] = []
    for key in ("evidence", "evidence_id", "evidence_ids"):
        value = result.get(key)
        values = value if isinstance(value, list) else [value]
        ids += [v for v in values if isinstance(v, int)]
    return ids


def _entry_from_run(run: ActionRun) -> ActionEntry:
    details = _flat(
        {
            "params": run.params,
            "result": run.result,
            "error": run.error,
            "approved by": run.approved_by.get_username() if run.approved_by else "",
            "approved at": _when(run.approved_at) if run.approved_at else "",
            "finished at": _when(run.finished_at) if run.finished_at else "",
        }
    )
    produced = Evidence.objects.filter(incident_id=run.incident_id, pk__in=_evidence_ids(run.result))
    return ActionEntry(
        action=run.action,
        status=run.get_status_display(),
        when=_when(run.created_at),
        by=run.requested_by.get_username() if run.requested_by else "system",
        details=details,
        evidence=[(item.original_name, item.sha256) for item in produced.order_by("pk")],
    )


def _flat(values: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in values.items():
        if value in (None, "", [], {}):
            continue
        text = json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list) else str(value)
        out.append((str(key), text if len(text) <= 2000 else text[:2000] + " …(truncated)"))
    return out


# --- Markdown ---------------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return " ".join(str(value).split()).replace("|", "\\|") or "—"


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "—"


def report_markdown(*, data: ReportData) -> str:
    return "\n".join(_markdown_lines(data)) + "\n"


def _markdown_lines(data: ReportData) -> Iterator[str]:
    incident = data.incident
    yield f"# {incident.reference} {incident.title}"
    yield ""
    yield f"Post-incident report generated {_when(data.generated_at)} by {data.generated_by}."
    yield ""
    yield "## Header"
    yield ""
    assignees = ", ".join(p.get_username() for p in incident.assignees.all()) or "—"
    commander = incident.commander.get_username() if incident.commander else "—"
    yield from _table(
        ["Field", "Value"],
        [
            ["Severity / priority", f"{incident.get_severity_display()} / {incident.get_priority_display()}"],
            ["Phase / resolution", f"{incident.get_phase_display()} / {incident.get_resolution_display()}"],
            ["Finding type", incident.finding_type],
            ["Cluster", f"{incident.cluster_name} ({incident.region}, {incident.account_id})"],
            [
                "Commander / assignees",
                f"{commander} / {assignees}",
            ],
            ["Playbook (pinned)", f"{incident.playbook.title} v{incident.playbook.version}"],
            ["Detected", _when(incident.detected_at)],
            ["Acknowledged", _when(incident.acknowledged_at)],
            ["Containment done", _when(incident.eradication_at)],
            ["Closed", _when(incident.closed_at)],
        ],
    )
    if incident.summary:
        yield incident.summary.strip()
        yield ""
    yield "## Metrics"
    yield ""
    yield from _table(["Measure", "Value"], [list(m) for m in data.metrics])
    yield from _lessons_md(data)
    yield "## Checklist"
    yield ""
    for part in data.parts:
        yield f"### Part {part.number}: {part.title} ({part.closed_count}/{part.total})"
        yield ""
        yield from _table(
            ["Step", "Title", "Status", "By", "When", "Comment"],
            [
                [
                    item.step.number,
                    item.step.title,
                    item.get_status_display(),
                    item.done_by.get_username() if item.done_by else "—",
                    _when(item.done_at),
                    item.comment,
                ]
                for item in part.items
            ],
        )
    yield "## Decisions"
    yield ""
    if data.decisions:
        for item in data.decisions:
            chosen = next((o for o in item.step.options if o.get("id") == item.decision), None)
            choice = f"{chosen['label']} → {chosen['goto']}" if chosen else "not decided yet"
            who = f"{item.done_by.get_username()} at {_when(item.done_at)}" if item.done_by else "—"
            yield f"- **{item.step.number} {item.step.title}**: {choice} ({who})" + (
                f". “{item.comment}”" if item.comment else ""
            )
    else:
        yield "No decision steps in this playbook."
    yield ""
    yield from _actions_md("RBAC before/after", data.rbac, "No RBAC inspection or remediation was recorded.")
    yield from _actions_md("Queries", data.queries, "No queries were recorded.")
    yield from _evidence_md(data)
    yield f"## Timeline ({data.events_total} events)"
    yield ""
    yield from _table(
        ["When (UTC)", "Kind", "Who", "What"],
        [[f"{e.occurred_at:%Y-%m-%d %H:%M:%S}", e.kind, e.actor, e.summary] for e in report_events(incident=incident)],
    )


def _lessons_md(data: ReportData) -> Iterator[str]:
    yield "## Lessons learned"
    yield ""
    lessons = data.lessons
    sections = [
        ("What happened", lessons.what_happened if lessons else ""),
        ("Root cause", lessons.root_cause if lessons else ""),
        ("What worked", lessons.what_worked if lessons else ""),
        ("What did not work", lessons.what_did_not if lessons else ""),
    ]
    for title, text in sections:
        yield f"### {title}"
        yield ""
        yield text.strip() or "_Not written yet._"
        yield ""
    yield "### Follow-up actions"
    yield ""
    if data.follow_ups:
        yield from _table(
            ["Action", "Owner", "Due", "Done"],
            [
                [a.description, a.owner.get_username() if a.owner else "—", a.due_on or "—", _when(a.done_at)]
                for a in data.follow_ups
            ],
        )
    else:
        yield "None recorded."
        yield ""


def _actions_md(title: str, entries: list[ActionEntry], empty: str) -> Iterator[str]:
    yield f"## {title}"
    yield ""
    if not entries:
        yield empty
        yield ""
        return
    for entry in entries:
        yield f"### {entry.action} {entry.status} · {entry.when} · {entry.by}"
        yield ""
        for key, value in entry.details:
            yield f"- {key}: `{value.replace('`', chr(39))}`"
        for name, sha256 in entry.evidence:
            yield f"- evidence {name}: SHA-256 `{sha256}`"
        yield ""


def _evidence_md(data: ReportData) -> Iterator[str]:
    yield "## Evidence"
    yield ""
    if not data.evidence:
        yield "No evidence was collected."
        yield ""
        return
    yield from _table(
        ["File", "Size (bytes)", "SHA-256", "Added by", "When"],
        [
            [
                e.evidence.original_name,
                e.evidence.size,
                e.evidence.sha256,
                e.evidence.uploaded_by.get_username() if e.evidence.uploaded_by else "system",
                _when(e.evidence.created_at),
            ]
            for e in data.evidence
        ],
    )
    yield "### Chain of custody"
    yield ""
    yield from _table(
        ["File", "When", "Action", "Who", "From", "SHA-256 observed", "Detail"],
        [
            [
                e.evidence.original_name,
                _when(c.at),
                c.get_action_display(),
                c.actor.get_username() if c.actor else "system",
                c.source_address or "—",
                c.sha256,
                c.detail,
            ]
            for e in data.evidence
            for c in e.custody
        ],
    )


# --- PDF --------------------------------------------------------------------------------------------------


def report_pdf(*, data: ReportData) -> bytes:
    from weasyprint import CSS, HTML  # imported here: only PDF exports pay for loading it
    from weasyprint.urls import URLFetcher

    events = list(report_events(incident=data.incident, limit=PDF_TIMELINE_CAP))
    html = render_to_string("incidents/report_pdf.html", {"r": data, "events": events, "cap": PDF_TIMELINE_CAP})
    # Notes and summaries are user content: rendering must never fetch a URL (SSRF) or read a file.
    # Only data: URIs pass; the stylesheet is read from our own static folder by file name.
    no_fetch = URLFetcher(allowed_protocols=["data"])
    document = HTML(string=html, url_fetcher=no_fetch, base_url=None)
    return bytes(document.write_pdf(stylesheets=[CSS(filename=str(REPORT_CSS))]))
