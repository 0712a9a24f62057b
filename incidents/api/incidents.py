"""`/api/v1/incidents/`: list, idempotent create, retrieve, partial update (state machine, close gate)."""

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import prefetch_related_objects
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from incidents import services
from incidents.api.common import (
    ApiView,
    PageQuerySerializer,
    page_serializer,
    page_size,
    query_params,
    require_match,
    with_etag,
)
from incidents.api.errors import problem
from incidents.errors import ValidationError
from incidents.models import Incident, Phase, Priority, Resolution, Severity
from incidents.selectors import INCIDENT_SORTS, IncidentFilters, incident_list_for_user, incident_queryset_for_user
from playbooks.models import Playbook
from playbooks.selectors import playbook_for_finding_type, playbook_latest

SEVERITY_NAMES = {s.value: s.name.lower() for s in Severity}
SEVERITY_VALUES = {name: value for value, name in SEVERITY_NAMES.items()}


class IncidentSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    reference = serializers.CharField(help_text="How people name the case, e.g. WP-142.")
    title = serializers.CharField()
    summary = serializers.CharField()
    severity = serializers.ChoiceField(choices=list(SEVERITY_VALUES), source="severity_name")
    priority = serializers.ChoiceField(choices=Priority.values)
    phase = serializers.ChoiceField(choices=Phase.choices)
    resolution = serializers.ChoiceField(choices=Resolution.choices)
    source = serializers.CharField()  # type: ignore[assignment]
    external_ref = serializers.CharField()
    finding_type = serializers.CharField()
    cluster_name = serializers.CharField()
    account_id = serializers.CharField()
    region = serializers.CharField()
    restricted = serializers.BooleanField()
    playbook = serializers.CharField(source="playbook_ref", help_text="slug@version the checklist came from.")
    commander = serializers.CharField(source="commander_name", allow_null=True)
    assignees = serializers.ListField(child=serializers.CharField(), source="assignee_names")
    detected_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    sla_due_at = serializers.DateTimeField()
    acknowledged_at = serializers.DateTimeField(allow_null=True)
    closed_at = serializers.DateTimeField(allow_null=True)


def incident_data(incident: Incident) -> dict[str, Any]:
    """The representation (and so the ETag) of one incident. Needs playbook, commander and assignees loaded."""
    incident.severity_name = SEVERITY_NAMES.get(incident.severity, "medium")  # type: ignore[attr-defined]
    incident.playbook_ref = f"{incident.playbook.slug}@{incident.playbook.version}"  # type: ignore[attr-defined]
    incident.commander_name = incident.commander.get_username() if incident.commander else None  # type: ignore[attr-defined]
    incident.assignee_names = sorted(u.get_username() for u in incident.assignees.all())  # type: ignore[attr-defined]
    return dict(IncidentSerializer(incident).data)


class IncidentListQuery(PageQuerySerializer):
    phase = serializers.ChoiceField(
        choices=["all", "open", *Phase.values], required=False, default="all", help_text="open: anything not closed."
    )
    severity = serializers.ChoiceField(choices=list(SEVERITY_VALUES), required=False)
    priority = serializers.ChoiceField(choices=Priority.values, required=False)
    assignee = serializers.CharField(required=False, help_text="User name of the commander or an assignee.")
    cluster = serializers.CharField(required=False)
    source = serializers.CharField(required=False, max_length=50)  # type: ignore[assignment]
    external_ref = serializers.CharField(required=False, max_length=200)
    q = serializers.CharField(required=False, help_text="Words in the title.")
    sort = serializers.ChoiceField(choices=list(INCIDENT_SORTS), required=False, default="-created")


class IncidentCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    title = serializers.CharField(max_length=300)
    severity = serializers.ChoiceField(choices=list(SEVERITY_VALUES))
    source = serializers.RegexField(  # type: ignore[assignment]
        r"^[a-z0-9][a-z0-9_.-]*$", max_length=50, help_text="e.g. jira, servicenow"
    )
    external_ref = serializers.CharField(max_length=200, help_text="The ticket key, e.g. SEC-123.")
    priority = serializers.ChoiceField(choices=Priority.values, required=False, default=Priority.P3)
    summary = serializers.CharField(required=False, default="", allow_blank=True, max_length=20_000)
    playbook = serializers.SlugField(required=False, help_text="Playbook slug; default: by finding_type.")
    finding_type = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)
    cluster_name = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)
    account_id = serializers.RegexField(r"^\d{12}$", required=False, default="", allow_blank=True)
    region = serializers.RegexField(
        r"^[a-z]{2}(-[a-z]+)+-\d+$", max_length=30, required=False, default="", allow_blank=True
    )
    detected_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class IncidentUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    title = serializers.CharField(max_length=300, required=False)
    summary = serializers.CharField(required=False, allow_blank=True, max_length=20_000)
    severity = serializers.ChoiceField(choices=list(SEVERITY_VALUES), required=False)
    priority = serializers.ChoiceField(choices=Priority.values, required=False)
    resolution = serializers.ChoiceField(choices=Resolution.choices, required=False)
    phase = serializers.ChoiceField(choices=Phase.choices, required=False)
    phase_reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=1000)
    override_reason = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=2000, help_text="Manager override of the close gate."
    )
    commander = serializers.CharField(required=False, allow_null=True, help_text="User name, or null.")
    assignees = serializers.ListField(child=serializers.CharField(), required=False, max_length=50)


IncidentPageSerializer = page_serializer(IncidentSerializer, "IncidentPage")


def _user_ids(names: list[str]) -> dict[str, int]:
    found = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    unknown = sorted(set(names) - set(found))
    if unknown:
        raise ValidationError(f"Unknown user(s): {', '.join(unknown)}.")
    return found


def _playbook(data: dict[str, Any]) -> Playbook:
    try:
        if data.get("playbook"):
            return playbook_latest(slug=data["playbook"])
        return playbook_for_finding_type(finding_type=data.get("finding_type", ""))
    except Playbook.DoesNotExist as exc:
        raise ValidationError(str(exc)) from exc


def _load(user: User, incident_id: int, *, lock: bool = False) -> Incident:
    queryset = incident_queryset_for_user(user).select_related("playbook", "commander")
    if lock:
        queryset = queryset.select_for_update(of=("self",))
    incident = queryset.get(pk=incident_id)
    prefetch_related_objects([incident], "assignees")
    return incident


class IncidentListView(ApiView):
    read_scope = "incidents:read"
    write_scope = "incidents:write"

    @extend_schema(operation_id="incidents_list", parameters=[IncidentListQuery], responses=IncidentPageSerializer)
    def get(self, request: Request) -> Response:
        query = query_params(IncidentListQuery, request)
        assignee_id = None
        if query.get("assignee"):
            assignee_id = User.objects.filter(username=query["assignee"]).values_list("pk", flat=True).first() or -1
        filters = IncidentFilters(
            phase=query["phase"],
            severity=SEVERITY_VALUES.get(query.get("severity", "")),
            priority=query.get("priority"),
            assignee_id=assignee_id,
            cluster=query.get("cluster", ""),
            q=query.get("q", ""),
            source=query.get("source", ""),
            external_ref=query.get("external_ref", ""),
            sort=query["sort"],
        )
        page = incident_list_for_user(
            user=request.user, filters=filters, cursor=query.get("cursor"), size=page_size(query)
        )
        prefetch_related_objects(page.items, "assignees", "playbook")
        return Response({"results": [incident_data(i) for i in page.items], "next_cursor": page.next_cursor})

    @extend_schema(
        request=IncidentCreateSerializer,
        responses={
            201: OpenApiResponse(IncidentSerializer, description="Opened."),
            200: OpenApiResponse(IncidentSerializer, description="Already open for this source and external_ref."),
        },
        description="Idempotent on (source, external_ref): a repeat, even a concurrent one, returns the same case.",
    )
    def post(self, request: Request) -> Response:
        serializer = IncidentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        incident, created = services.incident_open_idempotent(
            source=data["source"],
            external_ref=data["external_ref"].strip(),
            title=data["title"],
            playbook=_playbook(data),
            actor=self.actor(),
            severity=SEVERITY_VALUES[data["severity"]],
            priority=data["priority"],
            summary=data["summary"],
            finding_type=data["finding_type"],
            cluster_name=data["cluster_name"],
            account_id=data["account_id"],
            region=data["region"],
            detected_at=data["detected_at"],
        )
        try:
            visible = _load(self.actor(), incident.pk)
        except Incident.DoesNotExist:
            return problem(
                409, "Conflict", "An incident with this source and external_ref exists but is not visible to you."
            )
        return with_etag(request, incident_data(visible), status=201 if created else 200)


class IncidentDetailView(ApiView):
    read_scope = "incidents:read"
    write_scope = "incidents:write"

    @extend_schema(responses=IncidentSerializer)
    def get(self, request: Request, incident_id: int) -> Response:
        return with_etag(request, incident_data(_load(self.actor(), incident_id)))

    @extend_schema(
        request=IncidentUpdateSerializer,
        responses=IncidentSerializer,
        parameters=[
            OpenApiParameter(
                "If-Match", str, OpenApiParameter.HEADER, description="The ETag you read; 412 if it changed since."
            )
        ],
        description="Fields change through the same services as the pages; `phase` through the state machine "
        "and, for `closed`, the close gate (a resolution is needed; open mandatory items need a manager's "
        "`override_reason`). Commander and assignees need the manager role.",
    )
    def patch(self, request: Request, incident_id: int) -> Response:
        serializer = IncidentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        actor = self.actor()
        with transaction.atomic():
            # Locked while compared and changed: a concurrent writer waits, then sees the new ETag.
            require_match(request, incident_data(_load(actor, incident_id, lock=True)))
            _apply_changes(incident_id, actor, data)
        return with_etag(request, incident_data(_load(actor, incident_id)))


def _apply_changes(incident_id: int, actor: User, data: dict[str, Any]) -> None:
    fields: dict[str, Any] = {k: data[k] for k in ("title", "summary", "priority", "resolution") if k in data}
    if "severity" in data:
        fields["severity"] = SEVERITY_VALUES[data["severity"]]
    if fields:
        services.incident_update(incident_id=incident_id, actor=actor, **fields)
    if "commander" in data or "assignees" in data:
        current = Incident.objects.select_related("commander").get(pk=incident_id)
        commander = data["commander"] if "commander" in data else current.commander and current.commander.username
        names = data["assignees"] if "assignees" in data else list(current.assignees.values_list("username", flat=True))
        ids = _user_ids([*names, *([commander] if commander else [])])
        services.incident_assign(
            incident_id=incident_id,
            actor=actor,
            commander_id=ids[commander] if commander else None,
            assignee_ids=[ids[name] for name in names],
        )
    if "phase" in data:
        services.incident_change_phase(
            incident_id=incident_id,
            actor=actor,
            to=data["phase"],
            reason=data["phase_reason"],
            override_reason=data["override_reason"],
        )
