"""Incident writes. Import from here: `from incidents.services import incident_open`."""

from incidents.services.evidence import (
    evidence_add,
    evidence_get_for_user,
    evidence_open_verified,
    evidence_record_view,
    evidence_verify,
)
from incidents.services.incidents import (
    analyst_event_add,
    incident_assign,
    incident_change_phase,
    incident_open,
    incident_open_idempotent,
    incident_set_restricted,
    incident_update,
    sla_due_at,
)
from incidents.services.notes import note_add, note_edit

__all__ = [
    "analyst_event_add",
    "evidence_add",
    "evidence_get_for_user",
    "evidence_open_verified",
    "evidence_record_view",
    "evidence_verify",
    "incident_assign",
    "incident_change_phase",
    "incident_open",
    "incident_open_idempotent",
    "incident_set_restricted",
    "incident_update",
    "note_add",
    "note_edit",
    "sla_due_at",
]
