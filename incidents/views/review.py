"""The post-incident review page (lessons learned, follow-ups) and the exports: report (Markdown, PDF)
and the evidence bundle."""

import tempfile

from django.contrib.auth import get_user_model
from django.http import FileResponse, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from incidents.errors import EvidenceIntegrityError, ValidationError
from incidents.forms import FollowUpForm, LessonsForm
from incidents.models import LessonsLearned
from incidents.selectors import incident_get_for_user
from incidents.services.bundle import evidence_bundle_export
from incidents.services.reports import report_data, report_incident_get, report_markdown, report_pdf
from incidents.services.review import follow_up_add, follow_up_set_done, lessons_save
from incidents.views.common import AuthedRequest, back_to, client_address, service_errors


def _people() -> list[tuple[int, str]]:
    return list(get_user_model().objects.filter(is_active=True).order_by("username").values_list("pk", "username"))


@require_GET
@service_errors
def review(request: AuthedRequest, incident_id: int) -> HttpResponse:
    incident = incident_get_for_user(user=request.user, incident_id=incident_id)
    lessons = LessonsLearned.objects.filter(incident=incident).select_related("updated_by").first()
    initial = {name: getattr(lessons, name) for name in LessonsForm.base_fields} if lessons else {}
    context = {
        "incident": incident,
        "lessons": lessons,
        "form": LessonsForm(initial=initial),
        "follow_up_form": FollowUpForm(people=_people()),
        "follow_ups": incident.follow_ups.select_related("owner"),
    }
    return render(request, "incidents/review.html", context)


def _review_url(incident_id: int) -> str:
    return reverse("incidents:review", args=[incident_id])


@require_POST
@service_errors
def lessons_edit(request: AuthedRequest, incident_id: int) -> HttpResponse:
    form = LessonsForm(request.POST)
    if not form.is_valid():
        raise ValidationError(form.error_text())
    lessons_save(incident_id=incident_id, actor=request.user, **form.cleaned_data)
    return back_to(request, _review_url(incident_id))


@require_POST
@service_errors
def follow_up_create(request: AuthedRequest, incident_id: int) -> HttpResponse:
    form = FollowUpForm(request.POST, people=_people())
    if not form.is_valid():
        raise ValidationError(form.error_text())
    data = form.cleaned_data
    follow_up_add(
        incident_id=incident_id,
        actor=request.user,
        description=data["description"],
        owner_id=data["owner"],
        due_on=data["due_on"],
    )
    return back_to(request, _review_url(incident_id) + "#follow-ups")


@require_POST
@service_errors
def follow_up_done(request: AuthedRequest, incident_id: int, follow_up_id: int) -> HttpResponse:
    follow_up_set_done(
        incident_id=incident_id, follow_up_id=follow_up_id, actor=request.user, done=request.POST.get("done") == "on"
    )
    return back_to(request, _review_url(incident_id) + "#follow-ups")


@require_GET
@service_errors
def report_export(request: AuthedRequest, incident_id: int, fmt: str) -> HttpResponse:
    incident = report_incident_get(user=request.user, incident_id=incident_id)
    data = report_data(incident=incident, generated_by=request.user.get_username())
    if fmt == "pdf":
        response = HttpResponse(report_pdf(data=data), content_type="application/pdf")
    else:
        response = HttpResponse(report_markdown(data=data), content_type="text/markdown; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{incident.reference}-report.{fmt}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_POST
@service_errors
def bundle_export(request: AuthedRequest, incident_id: int) -> HttpResponseBase:
    """A POST: the export is recorded on every piece's custody log and on the timeline."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it after sending
    try:
        result = evidence_bundle_export(
            incident_id=incident_id, actor=request.user, out=spool, source_address=client_address(request)
        )
    except EvidenceIntegrityError as exc:
        spool.close()
        return render(request, "incidents/evidence_integrity_error.html", {"message": str(exc)}, status=409)
    except Exception:
        spool.close()
        raise
    response = FileResponse(spool, as_attachment=True, filename=result.filename, content_type="application/zip")
    response["Digest"] = f"sha-256={result.sha256}"
    return response
