"""Admin for ingestion: inbound payloads (read-only), the quarantine with its re-process action, and an
upload page that imports files exactly as `manage.py import_findings` does.

Payload bodies are evidence of what arrived: nothing here edits or deletes them. The pages live in
this module (inline templates extending the admin's own) so ingestion stays one self-contained file.
"""

import json
from collections import Counter
from functools import cache
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template import engines
from django.template.backends.django import Template
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from incidents import permissions
from incidents.management.commands.import_findings import STATUSES, report_lines
from incidents.models import InboundPayload, QuarantinedDocument
from incidents.services.file_imports import file_import, import_max_bytes
from incidents.services.findings import REJECTED, payload_process

BODY_PREVIEW_BYTES = 256 * 1024
UPLOAD_PERMISSION = "incidents.add_inboundpayload"

CHANGE_LIST = """{% extends "admin/change_list.html" %}
{% block object-tools-items %}{% if may_upload %}
<li><a href="{% url 'admin:incidents_inboundpayload_upload' %}">Upload findings</a></li>
{% endif %}{{ block.super }}{% endblock %}"""

UPLOAD_PAGE = """{% extends "admin/base_site.html" %}
{% block breadcrumbs %}<div class="breadcrumbs"><a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{% url 'admin:app_list' app_label=opts.app_label %}">{{ opts.app_config.verbose_name }}</a>
&rsaquo; <a href="{% url 'admin:incidents_inboundpayload_changelist' %}">{{ opts.verbose_name_plural|capfirst }}</a>
&rsaquo; Upload</div>{% endblock %}
{% block content %}<div id="content-main">
<p>GuardDuty console exports, <code>aws guardduty get-findings</code> output, EventBridge events or S3 exports
(JSON lines), gzipped or not; at most {{ max_bytes|filesizeformat }} per file. Each file is stored first;
what cannot be read is quarantined with the reason.</p>
<form method="post" enctype="multipart/form-data">{% csrf_token %}
{{ form.as_div }}
<div class="submit-row"><input type="submit" class="default" value="Upload and import"></div>
</form></div>{% endblock %}"""


@cache
def _template(source: str) -> Template:
    return engines["django"].from_string(source)  # type: ignore[return-value]


def may_upload(user: Any) -> bool:
    return permissions.is_admin(user) or bool(user.has_perm(UPLOAD_PERMISSION))


def _pretty(value: Any) -> str:
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {counts[status]}" for status in STATUSES if counts.get(status))


class _InspectOnly:
    """View for admins (or whoever holds the view permission); nobody adds, edits or deletes here."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_admin(request.user) or super().has_view_permission(request, obj)  # type: ignore[misc]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user) or super().has_module_permission(request)  # type: ignore[misc]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class QuarantinedDocumentInline(_InspectOnly, admin.TabularInline):  # type: ignore[type-arg]
    model = QuarantinedDocument
    fields = readonly_fields = ("position", "reason", "created_at", "resolved_at")
    extra = 0
    show_change_link = True


class UploadFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class UploadFilesField(forms.FileField):
    """One or more files; empty ones are accepted so the pipeline quarantines them with a reason."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(widget=UploadFileInput(), allow_empty_file=True, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        items = data if isinstance(data, list | tuple) else [data]
        if not items:
            items = [None]  # nothing chosen: FileField says "This field is required."
        return [super(UploadFilesField, self).clean(item, initial) for item in items]


class UploadForm(forms.Form):
    uploads = UploadFilesField(label="Finding files")


@admin.register(InboundPayload)
class InboundPayloadAdmin(_InspectOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "source", "status", "counts_summary", "received_at", "size", "file_name")
    list_filter = ("status", "source")
    search_fields = ("sha256", "meta__file")
    show_full_result_count = False
    fields = readonly_fields = (
        "source", "status", "received_at", "processed_at", "size", "sha256", "meta_pretty", "counts_pretty",
        "body_text",
    )  # fmt: skip
    inlines = (QuarantinedDocumentInline,)

    @admin.display(description="counts")
    def counts_summary(self, obj: InboundPayload) -> str:
        return _counts_text(obj.counts or {})

    @admin.display(description="file")
    def file_name(self, obj: InboundPayload) -> str:
        return str((obj.meta or {}).get("file", ""))

    @admin.display(description="meta")
    def meta_pretty(self, obj: InboundPayload) -> str:
        return _pretty(obj.meta)

    @admin.display(description="counts")
    def counts_pretty(self, obj: InboundPayload) -> str:
        return _pretty(obj.counts)

    @admin.display(description="body")
    def body_text(self, obj: InboundPayload) -> str:
        body = bytes(obj.body)
        if body[:2] == b"\x1f\x8b":
            return f"gzip data, {len(body)} bytes (not shown)"
        try:
            text = body[:BODY_PREVIEW_BYTES].decode("utf-8")
        except UnicodeDecodeError:
            return f"not UTF-8 text, {len(body)} bytes (not shown)"
        more = f"\n… {len(body) - BODY_PREVIEW_BYTES} more bytes" if len(body) > BODY_PREVIEW_BYTES else ""
        return format_html("<pre>{}{}</pre>", text, more)

    @property
    def change_list_template(self) -> Template:  # type: ignore[override]
        return _template(CHANGE_LIST)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = {"may_upload": may_upload(request.user)} | (extra_context or {})
        return super().changelist_view(request, extra_context=extra)

    def get_urls(self) -> list[URLPattern]:
        upload = path("upload/", self.admin_site.admin_view(self.upload_view), name="incidents_inboundpayload_upload")
        return [upload, *super().get_urls()]

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the form. POST (CSRF-checked by admin_view): store and import each file, report as messages."""
        if not may_upload(request.user):
            raise PermissionDenied
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        form = UploadForm(request.POST, request.FILES) if request.method == "POST" else UploadForm()
        if request.method == "POST" and form.is_valid():
            for upload in form.cleaned_data["uploads"]:
                self._import_upload(request, upload)
            return HttpResponseRedirect(reverse("admin:incidents_inboundpayload_changelist"))
        context = self.admin_site.each_context(request) | {
            "opts": self.opts,
            "title": "Upload GuardDuty findings",
            "form": form,
            "max_bytes": import_max_bytes(),
        }
        return TemplateResponse(request, _template(UPLOAD_PAGE), context)

    def _import_upload(self, request: HttpRequest, upload: Any) -> None:
        report = file_import(
            name=upload.name, stream=upload, size=upload.size, meta={"uploaded_by": request.user.get_username()}
        )
        first, *rejections = report_lines(upload.name, report)
        messages.add_message(request, messages.SUCCESS if report.fully_accepted else messages.WARNING, first)
        for line in rejections:
            messages.error(request, line.strip())


def quarantine_reprocess(*, payload_id: int) -> tuple[dict[str, int], int, int]:
    """Run a payload through the pipeline again; resolve its open quarantine rows whose position now passes.

    Returns (counts of the re-run, rows resolved, rows still rejected). A position rejected again keeps
    its old row open, next to the row the re-run wrote.
    """
    still_open = list(QuarantinedDocument.objects.filter(payload_id=payload_id, resolved_at__isnull=True))
    report = payload_process(payload_id=payload_id)
    rejected_at = {result.position for result in report.results if result.status == REJECTED}
    passed = [row.pk for row in still_open if row.position not in rejected_at]
    QuarantinedDocument.objects.filter(pk__in=passed).update(resolved_at=timezone.now())
    return report.counts, len(passed), len(still_open) - len(passed)


@admin.register(QuarantinedDocument)
class QuarantinedDocumentAdmin(_InspectOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "reason_short", "payload", "position", "created_at", "resolved_at")
    list_filter = (("resolved_at", admin.EmptyFieldListFilter), "payload__source")
    search_fields = ("reason",)
    list_select_related = ("payload",)
    show_full_result_count = False
    fields = readonly_fields = ("payload", "position", "reason", "document_pretty", "created_at", "resolved_at")
    actions = ("reprocess",)

    @admin.display(description="reason")
    def reason_short(self, obj: QuarantinedDocument) -> str:
        return obj.reason if len(obj.reason) <= 120 else obj.reason[:119] + "…"

    @admin.display(description="document")
    def document_pretty(self, obj: QuarantinedDocument) -> str:
        return _pretty(obj.document) if obj.document is not None else "(the whole payload)"

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return may_upload(request.user)

    @admin.action(description="Re-process the payload", permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[QuarantinedDocument]) -> None:
        totals: Counter[str] = Counter()
        resolved = still = 0
        payload_ids = sorted(set(queryset.values_list("payload_id", flat=True)))
        for payload_id in payload_ids:
            counts, passed, failed = quarantine_reprocess(payload_id=payload_id)
            totals.update(counts)
            resolved, still = resolved + passed, still + failed
        level = messages.SUCCESS if not still else messages.WARNING
        summary = _counts_text(dict(totals)) or "nothing in them"
        self.message_user(
            request,
            f"Re-processed {len(payload_ids)} payload(s): {summary}. "
            f"Resolved {resolved} quarantine row(s); {still} still rejected.",
            level,
        )
