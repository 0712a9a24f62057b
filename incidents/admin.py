"""Admin: for configuration and inspection. Case work happens in the pages, through the services."""

from django.contrib import admin

from incidents.models import (
    CustodyEvent,
    Evidence,
    Finding,
    FollowUpAction,
    Incident,
    LessonsLearned,
    Note,
    Observable,
    SlaBreach,
    TimelineEvent,
)


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Timeline, custody and evidence are append-only records: the admin may look, not touch."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    list_display = ("id", "title", "severity", "priority", "phase", "cluster_name", "updated_at")
    list_filter = ("phase", "severity", "priority")
    search_fields = ("title", "cluster_name", "external_ref")
    show_full_result_count = False


@admin.register(Finding)
class FindingAdmin(ReadOnlyAdmin):
    list_display = ("finding_type", "account_id", "region", "finding_id", "count", "finding_updated_at")
    search_fields = ("finding_id", "cluster_name")


@admin.register(TimelineEvent)
class TimelineEventAdmin(ReadOnlyAdmin):
    list_display = ("incident", "occurred_at", "kind", "actor", "summary")
    list_filter = ("kind",)
    show_full_result_count = False


@admin.register(Evidence)
class EvidenceAdmin(ReadOnlyAdmin):
    list_display = ("original_name", "incident", "size", "sha256", "uploaded_by", "created_at")


@admin.register(CustodyEvent)
class CustodyEventAdmin(ReadOnlyAdmin):
    list_display = ("evidence", "action", "actor", "at", "source_address", "sha256")


@admin.register(Note)
class NoteAdmin(ReadOnlyAdmin):
    list_display = ("incident", "author", "version", "created_at")


@admin.register(Observable)
class ObservableAdmin(ReadOnlyAdmin):
    list_display = ("kind", "value")
    search_fields = ("value",)


from incidents import admin_ingest  # noqa: E402,F401  (ingestion admin: payloads, quarantine, upload)


@admin.register(SlaBreach)
class SlaBreachAdmin(ReadOnlyAdmin):
    list_display = ("incident", "priority", "due_at", "notified_at")


@admin.register(LessonsLearned)
class LessonsLearnedAdmin(ReadOnlyAdmin):
    list_display = ("incident", "version", "updated_by", "updated_at")


@admin.register(FollowUpAction)
class FollowUpActionAdmin(ReadOnlyAdmin):
    list_display = ("incident", "description", "owner", "due_on", "done_at")
