"""`/api/v1/incidents/{id}/checklist/`: the items, and tick / untick / skip / decide one of them."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.common import ApiView, visible_incident
from playbooks import services
from playbooks.checklists import checklist_items
from playbooks.models import ChecklistItem


class ChecklistItemSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    step_id = serializers.CharField(source="step.step_id")
    number = serializers.CharField(source="step.number")
    part = serializers.IntegerField(source="step.part")
    part_title = serializers.CharField(source="step.part_title")
    title = serializers.CharField(source="step.title")
    kind = serializers.CharField(source="step.kind")
    mandatory = serializers.BooleanField(source="step.mandatory")
    options = serializers.ListField(child=serializers.DictField(), source="step.options")
    status = serializers.ChoiceField(choices=ChecklistItem.Status.choices)
    comment = serializers.CharField()
    decision = serializers.CharField()
    done_by = serializers.CharField(source="done_by.username", allow_null=True, default=None)
    done_at = serializers.DateTimeField(allow_null=True)


class ChecklistActionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    comment = serializers.CharField(required=False, default="", allow_blank=True, max_length=5000)
    option = serializers.CharField(required=False, default="", allow_blank=True, help_text="decide: the option id.")


ACTIONS = ("tick", "untick", "skip", "decide")


class ChecklistView(ApiView):
    read_scope = "incidents:read"

    @extend_schema(responses=ChecklistItemSerializer(many=True))
    def get(self, request: Request, incident_id: int) -> Response:
        incident = visible_incident(request, incident_id)
        return Response(ChecklistItemSerializer(checklist_items(incident_id=incident.pk), many=True).data)


class ChecklistItemActionView(ApiView):
    write_scope = "incidents:write"

    @extend_schema(
        request=ChecklistActionSerializer,
        responses=ChecklistItemSerializer,
        parameters=[
            OpenApiParameter("incident_id", int, OpenApiParameter.PATH),
            OpenApiParameter("item_id", int, OpenApiParameter.PATH),
            OpenApiParameter("action", str, OpenApiParameter.PATH, enum=ACTIONS),
        ],
        description="tick: done; untick: back to do; skip: needs a comment saying why; decide: choose an option "
        "of a decision step (`option`).",
    )
    def post(self, request: Request, incident_id: str, item_id: str, action: str) -> Response:
        serializer = ChecklistActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        comment, option = serializer.validated_data["comment"], serializer.validated_data["option"]
        incident = visible_incident(request, int(incident_id))
        pk = ChecklistItem.objects.filter(incident=incident).values_list("pk", flat=True).get(pk=int(item_id))
        actor = self.actor()
        if action == "decide":
            services.checklist_item_decide(item_id=pk, actor=actor, option_id=option, comment=comment)
        else:
            status = {"tick": "done", "untick": "todo", "skip": "skipped"}[action]
            services.checklist_item_set_status(item_id=pk, actor=actor, status=status, comment=comment)
        item = ChecklistItem.objects.select_related("step", "done_by").get(pk=pk)
        return Response(ChecklistItemSerializer(item).data)
