"""Dashboard reads: open cases by phase × severity, SLA state per priority, response times, slow steps.

Selectors like the ones in `incidents.selectors`: every queryset starts from `incident_queryset_for_user`,
and the counting happens in the database (one GROUP BY per panel), never per row in Python, so the
dashboard costs the same at 100 and at 100k incidents. The step durations are the exception: they need
each incident's previous step, so they read done steps of the period (capped) and work them out here.

Definitions (the issue's):
- MTTA: finding first seen (`detected_at`) → acknowledged;
- MTTC: → containment done, i.e. the case entered eradication (the phase after containment);
- MTTR: → closed.
"""

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import TruncDate, TruncWeek
from django.urls import reverse

from incidents.models import Incident, Phase, Priority, Severity, SlaBreach, incident_reference
from incidents.selectors import incident_queryset_for_user
from incidents.sla import short_duration
from playbooks.models import ChecklistItem

AnyUser = User | AnonymousUser
OPEN_PHASES = [(value, label) for value, label in Phase.choices if value != Phase.CLOSED]
PERIOD_DAYS = (7, 30, 90, 365)
DEFAULT_PERIOD_DAYS = 30
# Which timestamp ends each measure (all start at detected_at).
MEASURES = (("mtta", "MTTA", "acknowledged_at"), ("mttc", "MTTC", "eradication_at"), ("mttr", "MTTR", "closed_at"))
STEP_ROWS_CAP = 200_000


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    days: int

    @classmethod
    def last(cls, days: int, *, now: datetime) -> "Period":
        return cls(start=now - timedelta(days=days), end=now, days=days)


def _detected_in(period: Period) -> Q:
    return Q(detected_at__gte=period.start, detected_at__lt=period.end)


# --- Open incidents by phase × severity ---------------------------------------------------------------


@dataclass(frozen=True)
class MatrixCell:
    count: int
    url: str


@dataclass(frozen=True)
class MatrixRow:
    phase: str
    label: str
    cells: list[MatrixCell]
    total: int


@dataclass(frozen=True)
class PhaseSeverityMatrix:
    severities: list[tuple[int, str]]
    rows: list[MatrixRow]
    column_totals: list[int]
    total: int


def open_matrix(*, user: AnyUser) -> PhaseSeverityMatrix:
    """Counts of open cases per (phase, severity); every cell links to the filtered list."""
    counts: dict[tuple[str, int], int] = {
        (row["phase"], row["severity"]): row["n"]
        for row in incident_queryset_for_user(user)
        .exclude(phase=Phase.CLOSED)
        .values("phase", "severity")
        .annotate(n=Count("id"))
        .order_by()
    }
    severities = sorted(Severity.choices, reverse=True)  # critical first
    base = reverse("incidents:list")
    rows = []
    for phase, label in OPEN_PHASES:
        cells = [
            MatrixCell(counts.get((phase, sev), 0), f"{base}?phase={phase}&severity={sev}") for sev, _ in severities
        ]
        rows.append(MatrixRow(phase, str(label), cells, sum(cell.count for cell in cells)))
    column_totals = [sum(counts.get((phase, sev), 0) for phase, _ in OPEN_PHASES) for sev, _ in severities]
    return PhaseSeverityMatrix(
        severities=[(sev, str(label)) for sev, label in severities],
        rows=rows,
        column_totals=column_totals,
        total=sum(column_totals),
    )


# --- SLA state per priority ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaPriorityRow:
    priority: int
    label: str
    target: str
    waiting: int  # open, not acknowledged, deadline ahead
    breached: int  # open, not acknowledged, deadline passed
    met: int  # detected in the period, acknowledged in time
    missed: int  # detected in the period, acknowledged late

    @property
    def met_ratio(self) -> str:
        done = self.met + self.missed
        return f"{100 * self.met / done:.0f}%" if done else "—"


@dataclass(frozen=True)
class BreachRow:
    url: str
    reference: str
    title: str
    priority: str
    severity: int
    severity_label: str
    phase: str
    cluster: str
    commander: str
    state: str  # "breached" (still waiting) or "missed" (acknowledged late)
    why: str


def target_label(priority: int) -> str:
    return short_duration(timedelta(minutes=settings.WATCHPOST_ACK_TARGET_MINUTES[priority]))


def sla_by_priority(*, user: AnyUser, period: Period, now: datetime) -> list[SlaPriorityRow]:
    # Two narrow queries rather than one FILTER-per-column pass over every case: the waiting cases
    # come from the (acknowledged, sla_due_at) index, the period's from the detected_at one.
    visible = incident_queryset_for_user(user)
    counts: dict[int, Any] = {}
    waiting = (
        visible.filter(acknowledged=False)
        .exclude(phase=Phase.CLOSED)
        .values("priority")
        .annotate(
            waiting=Count("id", filter=Q(sla_due_at__gte=now)),
            breached=Count("id", filter=Q(sla_due_at__lt=now)),
        )
        .order_by()
    )
    acked = (
        visible.filter(_detected_in(period), acknowledged=True)
        .values("priority")
        .annotate(
            met=Count("id", filter=Q(acknowledged_at__lte=F("sla_due_at"))),
            missed=Count("id", filter=Q(acknowledged_at__gt=F("sla_due_at"))),
        )
        .order_by()
    )
    for row in [*waiting, *acked]:
        counts.setdefault(row["priority"], {}).update(row)
    rows = []
    for priority, label in Priority.choices:
        row = counts.get(priority, {})
        rows.append(
            SlaPriorityRow(
                priority=priority,
                label=str(label),
                target=target_label(priority),
                waiting=row.get("waiting", 0),
                breached=row.get("breached", 0),
                met=row.get("met", 0),
                missed=row.get("missed", 0),
            )
        )
    return rows


BREACH_COLUMNS = (
    "id", "title", "priority", "severity", "phase", "cluster_name", "commander__username", "detected_at",
    "sla_due_at", "acknowledged_at", "updated_at",
)  # fmt: skip


def sla_breaches(*, user: AnyUser, period: Period, now: datetime, limit: int = 50) -> list[BreachRow]:
    """Open cases past their acknowledgement deadline (oldest deadline first), then cases of the period
    acknowledged late. Each row says why, in words."""
    visible = incident_queryset_for_user(user)
    waiting = (
        visible.filter(acknowledged=False, sla_due_at__lt=now)
        .exclude(phase=Phase.CLOSED)
        .order_by("sla_due_at", "id")
        .values_list(*BREACH_COLUMNS, named=True)[:limit]
    )
    late = (
        visible.filter(_detected_in(period), acknowledged=True, acknowledged_at__gt=F("sla_due_at"))
        .order_by("-sla_due_at", "-id")
        .values_list(*BREACH_COLUMNS, named=True)[:limit]
    )
    waiting_rows = list(waiting)
    notified = {
        (b.incident_id, b.due_at): b
        for b in SlaBreach.objects.filter(incident_id__in=[row.id for row in waiting_rows]).only(
            "incident_id", "due_at", "notified_at", "recipients"
        )
    }
    return [_breach_row(row, "breached", now, notified.get((row.id, row.sla_due_at))) for row in waiting_rows] + [
        _breach_row(row, "missed", now) for row in late
    ]


def _breach_row(row: Any, state: str, now: datetime, notified: SlaBreach | None = None) -> BreachRow:
    target = target_label(row.priority)
    detected = f"{row.detected_at:%Y-%m-%d %H:%M} UTC"
    if state == "breached":
        why = (
            f"{Priority(row.priority).label} target {target}: detected {detected}, still not acknowledged "
            f"after {short_duration(now - row.detected_at)} (overdue {short_duration(now - row.sla_due_at)})"
        )
        if not row.commander__username:
            why += "; no commander assigned"
        idle = now - row.updated_at
        if idle > timedelta(hours=1):
            why += f"; no activity for {short_duration(idle)}"
        if notified is not None:
            why += f"; notified {notified.notified_at:%H:%M} UTC to {len(notified.recipients)} recipient(s)"
    else:
        why = (
            f"{Priority(row.priority).label} target {target}: acknowledged "
            f"{short_duration(row.acknowledged_at - row.detected_at)} after detection "
            f"({short_duration(row.acknowledged_at - row.sla_due_at)} late)"
        )
    return BreachRow(
        url=reverse("incidents:detail", args=[row.id]),
        reference=incident_reference(row.id),
        title=row.title,
        priority=str(Priority(row.priority).label),
        severity=row.severity,
        severity_label=str(Severity(row.severity).label),
        phase=str(Phase(row.phase).label),
        cluster=row.cluster_name or "—",
        commander=row.commander__username or "none",
        state=state,
        why=why,
    )


# --- MTTA / MTTC / MTTR ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseTimes:
    label: str
    incidents: int
    mtta: timedelta | None
    mttc: timedelta | None
    mttr: timedelta | None
    url: str = ""

    def value(self, key: str) -> timedelta | None:
        return getattr(self, key)  # type: ignore[no-any-return]


def _averages() -> dict[str, Any]:
    return {
        key: Avg(
            ExpressionWrapper(F(end) - F("detected_at"), output_field=DurationField()),
            filter=Q(**{f"{end}__isnull": False}),
        )
        for key, _, end in MEASURES
    }


def _in_period(user: AnyUser, period: Period) -> QuerySet[Incident]:
    return incident_queryset_for_user(user).filter(_detected_in(period))


def response_times_overall(*, user: AnyUser, period: Period) -> ResponseTimes:
    row = _in_period(user, period).aggregate(n=Count("id"), **_averages())
    return ResponseTimes("All", row["n"], row["mtta"], row["mttc"], row["mttr"])


def response_times_by(*, user: AnyUser, period: Period, field: str, limit: int = 12) -> list[ResponseTimes]:
    """Per finding type (`field="finding_type"`) or per cluster (`"cluster_name"`), the busiest first."""
    if field not in ("finding_type", "cluster_name"):
        raise ValueError(f"cannot group response times by {field!r}")
    rows = _in_period(user, period).values(field).annotate(n=Count("id"), **_averages()).order_by("-n", field)[:limit]
    base = reverse("incidents:list")
    return [
        ResponseTimes(
            label=row[field] or "(none)",
            incidents=row["n"],
            mtta=row["mtta"],
            mttc=row["mttc"],
            mttr=row["mttr"],
            url=f"{base}?{urlencode({'phase': 'all', 'cluster': row[field]})}" if field == "cluster_name" else "",
        )
        for row in rows
    ]


@dataclass(frozen=True)
class TrendPoint:
    day: date
    incidents: int
    mtta: timedelta | None
    mttc: timedelta | None
    mttr: timedelta | None

    def value(self, key: str) -> timedelta | None:
        return getattr(self, key)  # type: ignore[no-any-return]


def response_trend(*, user: AnyUser, period: Period) -> tuple[str, list[TrendPoint]]:
    """Averages per day (periods up to 31 days) or per week, by detection date."""
    bucket, trunc = ("day", TruncDate("detected_at")) if period.days <= 31 else ("week", TruncWeek("detected_at"))
    rows: Any = (
        _in_period(user, period)
        .annotate(bucket=trunc)
        .values("bucket")
        .annotate(n=Count("id"), **_averages())
        .order_by("bucket")
    )
    points = [TrendPoint(_as_date(row["bucket"]), row["n"], row["mtta"], row["mttc"], row["mttr"]) for row in rows]
    return bucket, points


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


# --- Checklist steps that take longest --------------------------------------------------------------------


@dataclass(frozen=True)
class StepDuration:
    playbook: str
    number: str
    title: str
    done: int
    median: timedelta
    longest: timedelta


def step_durations(*, user: AnyUser, period: Period, limit: int = 10) -> list[StepDuration]:
    """How long each step took: from the previous step closed on the same case (or the acknowledgement,
    or the opening) to this one. Steps closed by a decision elsewhere ("not applicable") are left out."""
    visible = _in_period(user, period).values("pk")
    items = (
        ChecklistItem.objects.filter(incident_id__in=visible, status=ChecklistItem.Status.DONE, done_at__isnull=False)
        .order_by("incident_id", "done_at", "id")
        .values_list(
            "incident_id",
            "done_at",
            "step__playbook__slug",
            "step__step_id",
            "step__number",
            "step__title",
            "incident__acknowledged_at",
            "incident__created_at",
        )  # fmt: skip
    )
    durations: dict[tuple[str, str], list[timedelta]] = defaultdict(list)
    names: dict[tuple[str, str], tuple[str, str]] = {}
    previous: tuple[int, datetime] | None = None
    for incident_id, done_at, slug, step_id, number, title, acked, created in _capped(items.iterator(2000)):
        if previous is not None and previous[0] == incident_id:
            start = previous[1]
        else:
            start = acked if acked is not None and acked <= done_at else created
        previous = (incident_id, done_at)
        key = (slug, step_id)
        durations[key].append(max(done_at - start, timedelta(0)))
        names[key] = (number, title)
    result = [
        StepDuration(slug, names[key][0], names[key][1], len(spans), _median(spans), max(spans))
        for key, spans in durations.items()
        for slug in [key[0]]
    ]
    result.sort(key=lambda step: (step.median, step.done), reverse=True)
    return result[:limit]


def _capped(rows: Iterable[Any]) -> Iterable[Any]:
    for i, row in enumerate(rows):
        if i >= STEP_ROWS_CAP:
            return
        yield row


def _median(spans: list[timedelta]) -> timedelta:
    return timedelta(seconds=statistics.median(span.total_seconds() for span in spans))


# --- Open incidents by cluster ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterCount:
    cluster: str
    open: int
    breached: int
    url: str
    timeline_url: str


def open_by_cluster(*, user: AnyUser, now: datetime, limit: int = 15) -> list[ClusterCount]:
    rows = (
        incident_queryset_for_user(user)
        .exclude(phase=Phase.CLOSED)
        .exclude(cluster_name="")
        .values("cluster_name")
        .annotate(n=Count("id"), late=Count("id", filter=Q(acknowledged=False, sla_due_at__lt=now)))
        .order_by("-n", "cluster_name")[:limit]
    )
    base = reverse("incidents:list")
    return [
        ClusterCount(
            cluster=row["cluster_name"],
            open=row["n"],
            breached=row["late"],
            url=f"{base}?{urlencode({'cluster': row['cluster_name']})}",
            timeline_url=reverse("incidents:cluster-timeline", args=[row["cluster_name"]]),
        )
        for row in rows
    ]
