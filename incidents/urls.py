from django.urls import path

from incidents.urls_rbac import urlpatterns as rbac_urlpatterns
from incidents.views import dashboard, detail, evidence, lists, notes, review, timeline
from playbooks import action_views
from playbooks import views as checklist

app_name = "incidents"

urlpatterns = [
    path("", lists.incident_list, name="list"),
    path("new/", detail.incident_create, name="create"),
    path("<int:incident_id>/", detail.incident_detail, name="detail"),
    path("<int:incident_id>/phase/", detail.incident_phase, name="phase"),
    path("<int:incident_id>/fields/", detail.incident_fields, name="fields"),
    path("<int:incident_id>/assign/", detail.incident_assign, name="assign"),
    path("<int:incident_id>/restrict/", detail.incident_restrict, name="restrict"),
    path("<int:incident_id>/checklist/<int:item_id>/status/", checklist.checklist_item_status, name="item-status"),
    path("<int:incident_id>/checklist/<int:item_id>/decide/", checklist.checklist_item_decide, name="item-decide"),
    path("<int:incident_id>/actions/", action_views.action_request, name="action-request"),
    path("<int:incident_id>/actions/<int:run_id>/", action_views.action_run_detail, name="action-run"),
    path("<int:incident_id>/actions/<int:run_id>/approve/", action_views.action_run_approve, name="action-approve"),
    path("<int:incident_id>/actions/<int:run_id>/reject/", action_views.action_run_reject, name="action-reject"),
    path("<int:incident_id>/actions/<int:run_id>/cancel/", action_views.action_run_cancel, name="action-cancel"),
    path("<int:incident_id>/notes/", notes.note_add, name="note-add"),
    path("<int:incident_id>/notes/<int:note_id>/edit/", notes.note_edit, name="note-edit"),
    path("<int:incident_id>/notes/<int:note_id>/history/", notes.note_history, name="note-history"),
    path("<int:incident_id>/evidence/", evidence.evidence_upload, name="evidence-upload"),
    path("evidence/<int:evidence_id>/", evidence.evidence_detail, name="evidence-detail"),
    path("evidence/<int:evidence_id>/download/", evidence.evidence_download, name="evidence-download"),
    path("<int:incident_id>/timeline/", timeline.timeline, name="timeline"),
    path("<int:incident_id>/timeline/events/", detail.analyst_event, name="analyst-event"),
    path("<int:incident_id>/timeline.csv", timeline.timeline_export, {"fmt": "csv"}, name="timeline-csv"),
    path("<int:incident_id>/timeline.json", timeline.timeline_export, {"fmt": "json"}, name="timeline-json"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("clusters/<str:cluster>/timeline/", timeline.cluster_timeline, name="cluster-timeline"),
    path("<int:incident_id>/review/", review.review, name="review"),
    path("<int:incident_id>/review/lessons/", review.lessons_edit, name="lessons"),
    path("<int:incident_id>/review/follow-ups/", review.follow_up_create, name="follow-up-add"),
    path("<int:incident_id>/review/follow-ups/<int:follow_up_id>/done/", review.follow_up_done, name="follow-up-done"),
    path("<int:incident_id>/report.md", review.report_export, {"fmt": "md"}, name="report-md"),
    path("<int:incident_id>/report.pdf", review.report_export, {"fmt": "pdf"}, name="report-pdf"),
    path("<int:incident_id>/bundle.zip", review.bundle_export, name="bundle"),
]
urlpatterns += rbac_urlpatterns
