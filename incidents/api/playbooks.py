"""`/api/v1/playbooks/`: the loaded playbooks (latest version of each), read only."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from incidents import permissions
from incidents.api.common import ApiView
from playbooks.models import PlaybookStep
from playbooks.selectors import playbook_latest, playbook_list


class PlaybookSerializer(serializers.Serializer):  # type: ignore[type-arg]
    slug = serializers.CharField()
    version = serializers.IntegerField()
    title = serializers.CharField()
    description = serializers.CharField()
    finding_types = serializers.ListField(child=serializers.CharField())
    is_fallback = serializers.BooleanField()


class PlaybookStepSerializer(serializers.Serializer):  # type: ignore[type-arg]
    step_id = serializers.CharField()
    part = serializers.IntegerField()
    part_title = serializers.CharField()
    number = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField()
    kind = serializers.ChoiceField(choices=PlaybookStep.Kind.choices)
    mandatory = serializers.BooleanField()
    action = serializers.CharField()
    options = serializers.ListField(child=serializers.DictField())


class PlaybookDetailSerializer(PlaybookSerializer):
    steps = PlaybookStepSerializer(many=True)


class PlaybookListView(ApiView):
    read_scope = "incidents:read"

    @extend_schema(responses=PlaybookSerializer(many=True))
    def get(self, request: Request) -> Response:
        permissions.require(permissions.can_read(self.actor()), "Your account has no role in Watchpost.")
        playbooks = playbook_list().defer("document")
        return Response(PlaybookSerializer(playbooks, many=True).data)


class PlaybookDetailView(ApiView):
    read_scope = "incidents:read"

    @extend_schema(responses=PlaybookDetailSerializer)
    def get(self, request: Request, slug: str) -> Response:
        permissions.require(permissions.can_read(self.actor()), "Your account has no role in Watchpost.")
        playbook = playbook_latest(slug=slug)
        playbook.steps_list = list(playbook.steps.order_by("position"))  # type: ignore[attr-defined]
        data = PlaybookSerializer(playbook).data | {
            "steps": PlaybookStepSerializer(playbook.steps_list, many=True).data  # type: ignore[attr-defined]
        }
        return Response(data)
