"""War-room notes: add, edit with conflict detection, history."""

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from incidents import services
from incidents.errors import NoteConflictError
from incidents.models import Note
from incidents.selectors import incident_get_for_user
from incidents.views.common import AuthedRequest, back_to, int_or_none, service_errors


def _note_for_user(request: AuthedRequest, incident_id: int, note_id: int) -> Note:
    incident = incident_get_for_user(user=request.user, incident_id=incident_id)
    return incident.notes.select_related("author", "updated_by").get(pk=note_id)


@require_POST
@service_errors
def note_add(request: AuthedRequest, incident_id: int) -> HttpResponse:
    note = services.note_add(incident_id=incident_id, actor=request.user, body=request.POST.get("body", ""))
    if request.htmx:
        context = {"incident": note.incident, "notes": note.incident.notes.select_related("author")}
        return render(request, "incidents/incident_detail.html#war-room", context)
    return back_to(request, reverse("incidents:detail", args=[incident_id]) + "#war-room")


@require_http_methods(["GET", "POST"])
@service_errors
def note_edit(request: AuthedRequest, incident_id: int, note_id: int) -> HttpResponse:
    note = _note_for_user(request, incident_id, note_id)
    context: dict[str, object] = {
        "note": note,
        "incident": note.incident,
        "body": note.body,
        "base_version": note.version,
    }
    if request.method == "POST":
        body = request.POST.get("body", "")
        base_version = int_or_none(request.POST.get("base_version")) or 0
        try:
            note = services.note_edit(note_id=note.pk, actor=request.user, body=body, base_version=base_version)
        except NoteConflictError as conflict:
            # Nothing is lost: show their saved text and ours, and let the editor merge from the new base.
            context |= {"conflict": conflict, "body": conflict.your_body, "base_version": conflict.current_version}
            return render(request, "incidents/note_edit.html", context, status=409)
        return back_to(request, reverse("incidents:detail", args=[incident_id]) + f"#note-{note.pk}")
    return render(request, "incidents/note_edit.html", context)


@require_GET
@service_errors
def note_history(request: AuthedRequest, incident_id: int, note_id: int) -> HttpResponse:
    note = _note_for_user(request, incident_id, note_id)
    revisions = note.revisions.select_related("editor").order_by("-version")
    return render(
        request, "incidents/note_history.html", {"note": note, "incident": note.incident, "revisions": revisions}
    )
