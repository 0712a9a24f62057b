"""Errors services raise; views and the API turn them into clear 4xx answers."""

from incidents.permissions import PermissionDeniedError

__all__ = [
    "CloseGateError",
    "EvidenceIntegrityError",
    "EvidenceRejectedError",
    "IncidentClosedError",
    "IncidentError",
    "InvalidTransitionError",
    "NoteConflictError",
    "PermissionDeniedError",
    "ValidationError",
]


class IncidentError(Exception):
    """Base class: the message is shown to the user as is."""


class ValidationError(IncidentError):
    pass


class InvalidTransitionError(IncidentError):
    pass


class IncidentClosedError(IncidentError):
    pass


class CloseGateError(IncidentError):
    def __init__(self, message: str, open_items: list[str]) -> None:
        super().__init__(message)
        self.open_items = open_items


class NoteConflictError(IncidentError):
    """A stale save: someone saved the note since this editor loaded it. Nothing is lost."""

    def __init__(self, *, current_body: str, current_version: int, your_body: str) -> None:
        super().__init__("Someone else saved this note while you were editing. Both versions are shown below.")
        self.current_body = current_body
        self.current_version = current_version
        self.your_body = your_body


class EvidenceRejectedError(IncidentError):
    pass


class EvidenceIntegrityError(IncidentError):
    pass
