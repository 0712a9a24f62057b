"""Evidence upload, custody page and verified download."""

from django.http import FileResponse, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from incidents import services
from incidents.errors import EvidenceIntegrityError, EvidenceRejectedError, ValidationError
from incidents.views.common import AuthedRequest, back_to, client_address, service_errors


@require_POST
@service_errors
def evidence_upload(request: AuthedRequest, incident_id: int) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        raise ValidationError("Choose a file to upload.")
    services.evidence_add(
        incident_id=incident_id,
        actor=request.user,
        upload=upload,
        description=request.POST.get("description", ""),
        source_address=client_address(request),
    )
    return back_to(request, reverse("incidents:detail", args=[incident_id]) + "#evidence")


@require_GET
@service_errors
def evidence_detail(request: AuthedRequest, evidence_id: int) -> HttpResponse:
    evidence = services.evidence_get_for_user(user=request.user, evidence_id=evidence_id)
    services.evidence_record_view(evidence=evidence, actor=request.user, source_address=client_address(request))
    custody = evidence.custody.select_related("actor")
    return render(
        request,
        "incidents/evidence_detail.html",
        {"evidence": evidence, "incident": evidence.incident, "custody": custody},
    )


@require_GET
@service_errors
def evidence_download(request: AuthedRequest, evidence_id: int) -> HttpResponseBase:
    try:
        evidence, stream = services.evidence_open_verified(
            evidence_id=evidence_id, actor=request.user, source_address=client_address(request)
        )
    except EvidenceIntegrityError as exc:
        return render(request, "incidents/evidence_integrity_error.html", {"message": str(exc)}, status=409)
    # Always an attachment, never rendered by the browser (S9): the type is not trusted.
    response = FileResponse(
        stream, as_attachment=True, filename=evidence.original_name, content_type="application/octet-stream"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Digest"] = f"sha-256={evidence.sha256}"
    return response


__all__ = ["EvidenceRejectedError", "evidence_detail", "evidence_download", "evidence_upload"]
