"""Acknowledgement SLA state, from TRIAGE_GUIDE.md response times (targets in settings)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from django.utils import timezone


@dataclass(frozen=True)
class SlaState:
    state: str  # pending | breached | met | missed
    label: str  # short, for the list
    detail: str  # the full sentence, for the incident page

    @property
    def is_late(self) -> bool:
        return self.state in ("breached", "missed")


class SlaFacts(Protocol):
    """An Incident, or a list row carrying the same four columns."""

    detected_at: datetime
    sla_due_at: datetime
    acknowledged_at: datetime | None
    acknowledged: bool


def short_duration(delta: timedelta) -> str:
    """A duration as people say it: 42 min, 3 h 5 min, 2 d 4 h."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, hours = minutes // 1440, minutes % 1440 // 60
    return f"{days} d {hours} h" if hours else f"{days} d"


def sla_state(incident: SlaFacts, now: datetime | None = None) -> SlaState:
    now = now or timezone.now()
    target = short_duration(incident.sla_due_at - incident.detected_at)
    if incident.acknowledged_at is None or not incident.acknowledged:
        if now <= incident.sla_due_at:
            left = short_duration(incident.sla_due_at - now)
            return SlaState("pending", f"ack due in {left}", f"acknowledgement due in {left} (target {target})")
        late = short_duration(now - incident.sla_due_at)
        return SlaState("breached", f"ack overdue {late}", f"acknowledgement overdue by {late} (target {target})")
    took = short_duration(incident.acknowledged_at - incident.detected_at)
    if incident.acknowledged_at <= incident.sla_due_at:
        return SlaState("met", f"acked in {took}", f"acknowledged in {took} (target {target})")
    return SlaState("missed", f"acked late, {took}", f"acknowledged in {took}: target {target} missed")
