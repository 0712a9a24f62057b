from django.contrib import admin

from playbooks.models import Playbook


@admin.register(Playbook)
class PlaybookAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Playbooks are loaded from YAML by `sync_playbooks`; the admin only shows them."""

    list_display = ("slug", "version", "title", "is_fallback", "loaded_at")
    readonly_fields = [f.name for f in Playbook._meta.fields]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
