from datetime import UTC, datetime

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from integrations.models import ApiToken, AwsAccount, Cluster, PollCursor
from integrations.services import api_token_create, api_token_revoke


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


class ApiTokenCreateForm(forms.ModelForm):  # type: ignore[type-arg]
    scopes = forms.MultipleChoiceField(choices=[(s, s) for s in ApiToken.SCOPES], widget=forms.CheckboxSelectMultiple)
    expires_days = forms.IntegerField(required=False, min_value=1, help_text="Empty: never expires.")

    class Meta:
        model = ApiToken
        fields = ["name", "user"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Tokens are created here or with `create_api_token`; the plaintext is shown once, then only its hash exists."""

    list_display = ("name", "user", "prefix", "scope_list", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at",)
    readonly_fields = (
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "last_used_address",
    )
    actions = ["revoke"]

    @admin.display(description="token")
    def prefix(self, obj: ApiToken) -> str:
        return f"wp_{obj.key_id}_…"

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes)

    def get_form(self, request, obj=None, change=False, **kwargs):  # type: ignore[no-untyped-def]
        if obj is None:
            kwargs["form"] = ApiTokenCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is None:
            return ["name", "user", "scopes", "expires_days"]
        return ["name", "user", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        return ("user", *self.readonly_fields) if obj is not None else ()

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if change:
            obj.save(update_fields=["name"])
            return
        created = api_token_create(
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_days=form.cleaned_data.get("expires_days"),
        )
        obj.pk = created.token.pk
        obj.refresh_from_db()
        messages.warning(request, f"Copy the token now, it is not shown again: {created.plaintext}")

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):  # type: ignore[no-untyped-def]
        for token in queryset:
            api_token_revoke(token_id=token.pk, actor=request.user, address=request.META.get("REMOTE_ADDR"))
        self.message_user(request, f"{queryset.count()} token(s) revoked.")


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["__str__", "via", "account", "region", "enabled"]
    list_filter = ["via", "enabled", "is_sandbox"]
    search_fields = ["name"]
    fields = ["name", "via", "account", "region", "kubeconfig_path", "kubeconfig_context", "is_sandbox", "enabled"]


from integrations import admin_webhooks  # noqa: E402,F401  (registers the webhook admin)
