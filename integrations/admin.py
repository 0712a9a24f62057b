from datetime import UTC, datetime

from django.contrib import admin
from django.http import HttpRequest

from integrations.models import AwsAccount, PollCursor


def _cursor_time(cursor: PollCursor) -> str:
    if not cursor.updated_at_ms:
        return "— (from the start: GuardDuty keeps 90 days)"
    return datetime.fromtimestamp(cursor.updated_at_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


class PollCursorInline(admin.TabularInline):
    model = PollCursor
    extra = 0
    fields = ["region", "detector_id", "cursor_time", "last_run_at", "last_error"]
    readonly_fields = ["region", "detector_id", "cursor_time", "last_run_at", "last_error"]
    can_delete = True
    show_change_link = True

    @admin.display(description="updatedAt cursor")
    def cursor_time(self, cursor: PollCursor) -> str:
        return _cursor_time(cursor)

    def has_add_permission(self, request: HttpRequest, obj: AwsAccount | None = None) -> bool:
        return False  # cursors are made by the poller (configured or discovered detectors)


@admin.register(AwsAccount)
class AwsAccountAdmin(admin.ModelAdmin):
    list_display = ["name", "account_id", "role_arn", "regions", "enabled"]
    list_filter = ["enabled"]
    search_fields = ["name", "account_id", "role_arn"]
    fields = ["name", "account_id", "role_arn", "external_id", "regions", "detector_ids", "enabled"]
    inlines = [PollCursorInline]


@admin.register(PollCursor)
class PollCursorAdmin(admin.ModelAdmin):
    list_display = ["account", "region", "detector_id", "cursor_time", "last_run_at", "has_error"]
    list_filter = ["account", "region"]
    list_select_related = ["account"]
    search_fields = ["detector_id", "account__name", "account__account_id"]
    # The cursor is editable on purpose: set it back (in epoch ms) to re-read a period; ingest is idempotent.
    fields = ["account", "region", "detector_id", "updated_at_ms", "cursor_time", "last_run_at", "last_error"]
    readonly_fields = ["account", "region", "detector_id", "cursor_time", "last_run_at", "last_error"]

    @admin.display(description="updatedAt cursor")
    def cursor_time(self, cursor: PollCursor) -> str:
        return _cursor_time(cursor)

    @admin.display(boolean=True, description="error")
    def has_error(self, cursor: PollCursor) -> bool:
        return bool(cursor.last_error)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
