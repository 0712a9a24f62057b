"""Updates from a linked ticketing system (Jira, ServiceNow …), recorded on the incident.

A comment becomes a war-room note (with its own timeline row, from `note_add`); a ticket linked
(the issue made for an incident that started in Watchpost), closed or reopened is a timeline event.
None of them moves the incident's phase: closing a case stays a responder's decision behind the
close gate, which the integration may ask for explicitly.
"""

from django.contrib.auth.models import User
from django.db import transaction

from incidents import permissions, timeline
from incidents.errors import ValidationError
from incidents.models import Note, TimelineEvent
from incidents.services.incidents import _locked
from incidents.services.notes import note_add

TICKET_EVENTS = ("ticket_linked", "comment_added", "ticket_closed", "ticket_reopened")
STATUS_VERBS = {"ticket_linked": "linked", "ticket_closed": "closed", "ticket_reopened": "reopened"}


def ticket_comment_add(*, incident_id: int, actor: User, system: str, ticket: str, author: str, body: str) -> Note:
    if not body.strip():
        raise ValidationError("A comment needs a body.")
    by = f" by {author.strip()}" if author.strip() else ""
    return note_add(incident_id=incident_id, actor=actor, body=f"**{system} {ticket}** comment{by}:\n\n{body.strip()}")


@transaction.atomic
def ticket_status_record(
    *, incident_id: int, actor: User, system: str, ticket: str, event: str, status: str = ""
) -> TimelineEvent:
    permissions.require(permissions.can_work(actor), "Viewers cannot record ticket updates.")
    if event not in STATUS_VERBS:
        raise ValidationError(f"Unknown ticket event {event!r}.")
    incident = _locked(incident_id=incident_id, actor=actor)
    verb = STATUS_VERBS[event]
    return timeline.event_add(
        incident=incident,
        kind=timeline.Kind.ANALYST,
        actor=actor,
        summary=f"{system} {ticket} {verb}" + (f" ({status})" if status else ""),
        data={"ticket": {"system": system, "key": ticket, "event": event, "status": status}},
    )
