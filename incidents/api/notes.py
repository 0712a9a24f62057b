"""`/api/v1/incidents/{id}/notes/`: the war-room notes; add one."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from incidents import services
from incidents.api.common import ApiView, visible_incident
from incidents.markdown import MAX_NOTE_CHARS
from incidents.models import Note


class NoteSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    body = serializers.CharField(help_text="Markdown, as written.")
    author = serializers.CharField(source="author.username", allow_null=True, default=None)
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class NoteCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    body = serializers.CharField(max_length=MAX_NOTE_CHARS)


class NoteListView(ApiView):
    read_scope = "incidents:read"
    write_scope = "incidents:write"

    @extend_schema(responses=NoteSerializer(many=True))
    def get(self, request: Request, incident_id: int) -> Response:
        incident = visible_incident(request, incident_id)
        notes = Note.objects.filter(incident=incident).select_related("author").order_by("created_at", "id")
        return Response(NoteSerializer(notes, many=True).data)

    @extend_schema(request=NoteCreateSerializer, responses={201: NoteSerializer})
    def post(self, request: Request, incident_id: int) -> Response:
        serializer = NoteCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        note = services.note_add(incident_id=incident_id, actor=self.actor(), body=serializer.validated_data["body"])
        return Response(NoteSerializer(note).data, status=201)
