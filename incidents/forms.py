"""Forms parse and validate input only; the services decide."""

import zoneinfo
from datetime import datetime

from django import forms
from django.core.validators import RegexValidator
from django.db.models import QuerySet

from incidents.models import Priority, Severity
from playbooks.models import Playbook


class ErrorTextMixin:
    errors: forms.utils.ErrorDict

    def error_text(self) -> str:
        parts = []
        for name, errors in self.errors.items():
            text = " ".join(str(error) for error in errors)
            parts.append(text if name == "__all__" else f"{name}: {text}")
        return "; ".join(parts)


class AnalystEventForm(ErrorTextMixin, forms.Form):
    occurred_at = forms.DateTimeField(
        label="When it happened",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
    )
    tz = forms.CharField(label="Time zone", initial="UTC", max_length=64)
    summary = forms.CharField(max_length=500)
    source = forms.CharField(max_length=200, required=False)

    def clean_tz(self) -> zoneinfo.ZoneInfo:
        try:
            return zoneinfo.ZoneInfo(self.cleaned_data["tz"].strip() or "UTC")
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise forms.ValidationError("Unknown time zone; use an IANA name such as UTC or Europe/Amsterdam.") from exc

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        when, tz = data.get("occurred_at"), data.get("tz")
        if isinstance(when, datetime) and isinstance(tz, zoneinfo.ZoneInfo):
            # The browser sends a wall-clock time; the analyst says which zone it was read in.
            data["occurred_at"] = when.replace(tzinfo=tz)
        return data


class IncidentCreateForm(ErrorTextMixin, forms.Form):
    title = forms.CharField(max_length=300)
    summary = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    severity = forms.TypedChoiceField(choices=Severity.choices, coerce=int, initial=Severity.MEDIUM)
    priority = forms.TypedChoiceField(choices=Priority.choices, coerce=int, initial=Priority.P3)
    finding_type = forms.CharField(max_length=100, required=False, help_text="GuardDuty finding type, if any.")
    playbook = forms.ModelChoiceField(
        queryset=Playbook.objects.none(), required=False, empty_label="Match the finding type"
    )
    cluster_name = forms.CharField(max_length=100, required=False)
    account_id = forms.CharField(
        max_length=12, required=False, validators=[RegexValidator(r"^\d{12}$", "An AWS account id is 12 digits.")]
    )
    region = forms.CharField(
        max_length=30, required=False, validators=[RegexValidator(r"^[a-z]{2}(-[a-z]+)+-\d$", "e.g. eu-west-1")]
    )

    def __init__(self, *args: object, playbooks: QuerySet[Playbook], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["playbook"].queryset = playbooks  # type: ignore[attr-defined]


class LessonsForm(ErrorTextMixin, forms.Form):
    what_happened = forms.CharField(label="What happened", widget=forms.Textarea(attrs={"rows": 4}), required=False)
    root_cause = forms.CharField(label="Root cause", widget=forms.Textarea(attrs={"rows": 4}), required=False)
    what_worked = forms.CharField(label="What worked", widget=forms.Textarea(attrs={"rows": 3}), required=False)
    what_did_not = forms.CharField(label="What did not work", widget=forms.Textarea(attrs={"rows": 3}), required=False)


class FollowUpForm(ErrorTextMixin, forms.Form):
    description = forms.CharField(label="Follow-up action", max_length=500)
    owner = forms.TypedChoiceField(label="Owner", coerce=int, required=False, empty_value=None)
    due_on = forms.DateField(label="Due", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: object, people: list[tuple[int, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["owner"].choices = [("", "No owner"), *people]  # type: ignore[attr-defined]
