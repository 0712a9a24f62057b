"""The incident phase state machine (NIST SP 800-61 phases as the seed playbook names them).

new → acknowledged → analysis → containment → eradication → recovery → post_incident → closed;
analysis → post_incident when the activity turns out to be authorized (the seed's Part 1 → Part 5 branch);
closed → analysis to reopen. Nothing else is allowed.
"""

from incidents.models import Phase

TRANSITIONS: dict[str, frozenset[str]] = {
    Phase.NEW: frozenset({Phase.ACKNOWLEDGED}),
    Phase.ACKNOWLEDGED: frozenset({Phase.ANALYSIS}),
    Phase.ANALYSIS: frozenset({Phase.CONTAINMENT, Phase.POST_INCIDENT}),
    Phase.CONTAINMENT: frozenset({Phase.ERADICATION}),
    Phase.ERADICATION: frozenset({Phase.RECOVERY}),
    Phase.RECOVERY: frozenset({Phase.POST_INCIDENT}),
    Phase.POST_INCIDENT: frozenset({Phase.CLOSED}),
    Phase.CLOSED: frozenset({Phase.ANALYSIS}),
}

# The timestamp field stamped when a phase is entered.
PHASE_TIMESTAMP: dict[str, str] = {
    Phase.ACKNOWLEDGED: "acknowledged_at",
    Phase.ANALYSIS: "analysis_at",
    Phase.CONTAINMENT: "containment_at",
    Phase.ERADICATION: "eradication_at",
    Phase.RECOVERY: "recovery_at",
    Phase.POST_INCIDENT: "post_incident_at",
    Phase.CLOSED: "closed_at",
}


def allowed_next(phase: str) -> list[str]:
    """Next phases in the order the page shows them (forward first)."""
    order = list(Phase.values)
    return sorted(TRANSITIONS.get(phase, frozenset()), key=order.index)


def is_allowed(old: str, new: str) -> bool:
    return new in TRANSITIONS.get(old, frozenset())


def is_reopen(old: str, new: str) -> bool:
    return old == Phase.CLOSED and new != Phase.CLOSED
