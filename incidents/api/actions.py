"""`/api/v1/incidents/{id}/action-runs/`: playbook automation runs; read, request, approve, reject.

Reading needs `incidents:read`; launching or deciding a run needs `remediation:execute`, and the
account's role still applies (two-person rule: a manager other than the proposer approves).
"""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.common import ApiView, visible_incident
from playbooks import actions
from playbooks.models import ActionRun


class ActionRunSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    action = serializers.CharField()
    status = serializers.ChoiceField(choices=ActionRun.Status.choices)
    checklist_item = serializers.IntegerField(source="checklist_item_id", allow_null=True)
    parent = serializers.IntegerField(source="parent_id", allow_null=True)  # type: ignore[assignment]
    params = serializers.DictField()
    result = serializers.DictField()
    progress = serializers.DictField()
    error = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    approved_by = serializers.CharField(source="approved_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class ActionParamsField(serializers.DictField):  # type: ignore[type-arg]
    """Names checked like values: DictField checks only values, and a NUL or a lone surrogate in a name
    reached the run's jsonb as a server error."""

    child = serializers.CharField(max_length=2000)
    key_field = serializers.CharField(max_length=100)

    def to_internal_value(self, data: Any) -> dict[str, str]:
        params: dict[str, str] = super().to_internal_value(data)
        for name in params:
            try:
                self.key_field.run_validation(name)
            except serializers.ValidationError as exc:
                reasons = exc.detail if isinstance(exc.detail, list) else [exc.detail]
                raise serializers.ValidationError(
                    f"the parameter name {name[:100]!r}: " + " ".join(map(str, reasons))
                ) from exc
        return params


class ActionRunRequestSerializer(serializers.Serializer):  # type: ignore[type-arg]
    action = serializers.CharField(max_length=50, help_text="e.g. rbac.inspect, rbac.remediate, query.run")
    item = serializers.IntegerField(required=False, allow_null=True, default=None, help_text="Checklist item id.")
    parent = serializers.IntegerField(  # type: ignore[assignment]
        required=False, allow_null=True, default=None, help_text="Run it undoes."
    )
    params = ActionParamsField(required=False, default=dict)


class ActionRunDecisionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    reason = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)


def _runs(incident_id: int) -> list[ActionRun]:
    queryset = ActionRun.objects.filter(incident_id=incident_id).select_related("requested_by", "approved_by")
    return list(queryset.order_by("-created_at", "-id")[:200])


class ActionRunListView(ApiView):
    read_scope = "incidents:read"
    write_scope = "remediation:execute"

    @extend_schema(responses=ActionRunSerializer(many=True), description="The newest 200 runs.")
    def get(self, request: Request, incident_id: int) -> Response:
        incident = visible_incident(request, incident_id)
        return Response(ActionRunSerializer(_runs(incident.pk), many=True).data)

    @extend_schema(request=ActionRunRequestSerializer, responses={201: ActionRunSerializer})
    def post(self, request: Request, incident_id: int) -> Response:
        serializer = ActionRunRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = actions.action_run_request(
            incident_id=incident_id,
            action=data["action"],
            actor=self.actor(),
            params=data["params"],
            item_id=data["item"],
            parent_id=data["parent"],
        )
        return Response(ActionRunSerializer(run).data, status=201)


class ActionRunDecisionView(ApiView):
    write_scope = "remediation:execute"

    @extend_schema(
        operation_id="incidents_action_runs_decide",
        request=ActionRunDecisionSerializer,
        responses=ActionRunSerializer,
        parameters=[
            OpenApiParameter("incident_id", int, OpenApiParameter.PATH),
            OpenApiParameter("run_id", int, OpenApiParameter.PATH),
            OpenApiParameter("decision", str, OpenApiParameter.PATH, enum=("approve", "reject", "cancel")),
        ],
    )
    def post(self, request: Request, incident_id: str, run_id: str, decision: str) -> Response:
        serializer = ActionRunDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        incident = visible_incident(request, int(incident_id))
        pk = ActionRun.objects.filter(incident=incident).values_list("pk", flat=True).get(pk=int(run_id))
        actor = self.actor()
        if decision == "approve":
            actions.action_run_approve(run_id=pk, actor=actor)
        elif decision == "reject":
            actions.action_run_reject(run_id=pk, actor=actor, reason=serializer.validated_data["reason"])
        else:
            actions.action_run_cancel(run_id=pk, actor=actor)
        run = ActionRun.objects.select_related("requested_by", "approved_by").get(pk=pk)
        return Response(ActionRunSerializer(run).data)
