"""`/api/v1/incidents/{id}/evidence/`: list, upload (hashed while written), verified download.

Every upload and download lands on the custody log with the token's user and address.
"""

from django.http import FileResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from incidents import services
from incidents.api.common import ApiView, client_address, visible_incident
from incidents.models import Evidence


class EvidenceSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    name = serializers.CharField(source="original_name")
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField()
    description = serializers.CharField()
    uploaded_by = serializers.CharField(source="uploaded_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class EvidenceUploadSerializer(serializers.Serializer):  # type: ignore[type-arg]
    file = serializers.FileField()
    description = serializers.CharField(required=False, default="", allow_blank=True, max_length=5000)


class EvidenceListView(ApiView):
    read_scope = "evidence:read"
    write_scope = "evidence:write"
    parser_classes = [MultiPartParser]

    @extend_schema(responses=EvidenceSerializer(many=True))
    def get(self, request: Request, incident_id: int) -> Response:
        incident = visible_incident(request, incident_id)
        items = Evidence.objects.filter(incident=incident).select_related("uploaded_by").order_by("created_at", "id")
        return Response(EvidenceSerializer(items, many=True).data)

    @extend_schema(request={"multipart/form-data": EvidenceUploadSerializer}, responses={201: EvidenceSerializer})
    def post(self, request: Request, incident_id: int) -> Response:
        serializer = EvidenceUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        evidence = services.evidence_add(
            incident_id=incident_id,
            actor=self.actor(),
            upload=serializer.validated_data["file"],
            description=serializer.validated_data["description"],
            source_address=client_address(request),
        )
        return Response(EvidenceSerializer(evidence).data, status=201)


class EvidenceDownloadView(ApiView):
    read_scope = "evidence:read"

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="The stored bytes."),
            409: OpenApiResponse(description="The stored bytes no longer match the recorded SHA-256."),
        },
    )
    def get(self, request: Request, incident_id: int, evidence_id: int) -> HttpResponseBase:
        incident = visible_incident(request, incident_id)
        Evidence.objects.filter(incident=incident).values("pk").get(pk=evidence_id)  # 404 for another case's
        evidence, stream = services.evidence_open_verified(
            evidence_id=evidence_id, actor=self.actor(), source_address=client_address(request)
        )
        response = FileResponse(
            stream, as_attachment=True, filename=evidence.original_name, content_type="application/octet-stream"
        )
        response["Digest"] = f"sha-256={evidence.sha256}"
        return response
