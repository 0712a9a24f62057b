"""`/api/v1/incidents/{id}/observables/` and `/findings/`: read only. Raw findings only on demand (S10)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.common import ApiView, visible_incident
from incidents.models import Finding, Observable


class ObservableSerializer(serializers.Serializer):  # type: ignore[type-arg]
    kind = serializers.CharField()
    value = serializers.CharField()


class FindingSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    finding_id = serializers.CharField(help_text="GuardDuty's id.")
    finding_type = serializers.CharField()
    account_id = serializers.CharField()
    region = serializers.CharField()
    title = serializers.CharField()
    severity = serializers.FloatField(help_text="GuardDuty's 1.0–8.9+ scale.")
    count = serializers.IntegerField()
    cluster_name = serializers.CharField()
    first_seen = serializers.DateTimeField(allow_null=True)
    last_seen = serializers.DateTimeField(allow_null=True)
    finding_updated_at = serializers.DateTimeField()
    is_sample = serializers.BooleanField()


class FindingDetailSerializer(FindingSerializer):
    description = serializers.CharField()
    raw = serializers.DictField(help_text="The latest version received, GuardDuty's wire spelling.")


class ObservableListView(ApiView):
    read_scope = "incidents:read"

    @extend_schema(responses=ObservableSerializer(many=True))
    def get(self, request: Request, incident_id: int) -> Response:
        incident = visible_incident(request, incident_id)
        rows = Observable.objects.filter(incidents=incident).order_by("kind", "value").values("kind", "value")
        return Response(ObservableSerializer(rows, many=True).data)


class FindingListView(ApiView):
    read_scope = "incidents:read"

    @extend_schema(responses=FindingSerializer(many=True))
    def get(self, request: Request, incident_id: int) -> Response:
        incident = visible_incident(request, incident_id)
        findings = Finding.objects.filter(incident=incident).defer("raw", "description").order_by("id")
        return Response(FindingSerializer(findings, many=True).data)


class FindingDetailView(ApiView):
    read_scope = "incidents:read"

    @extend_schema(responses=FindingDetailSerializer)
    def get(self, request: Request, incident_id: int, finding_id: int) -> Response:
        incident = visible_incident(request, incident_id)
        return Response(FindingDetailSerializer(Finding.objects.get(incident=incident, pk=finding_id)).data)
