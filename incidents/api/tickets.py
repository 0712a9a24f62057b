"""`POST /api/v1/incidents/{id}/ticket-events/`: the ticketing system reports back (two-way link)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.common import ApiView
from incidents.markdown import MAX_NOTE_CHARS
from incidents.services.tickets import TICKET_EVENTS, ticket_comment_add, ticket_status_record


class TicketEventSerializer(serializers.Serializer):  # type: ignore[type-arg]
    event = serializers.ChoiceField(choices=TICKET_EVENTS)
    system = serializers.CharField(max_length=40, help_text="e.g. Jira, ServiceNow")
    ticket = serializers.CharField(max_length=100, help_text="The ticket's key, e.g. SEC-123.")
    author = serializers.CharField(required=False, default="", allow_blank=True, max_length=150)
    body = serializers.CharField(required=False, default="", allow_blank=True, max_length=MAX_NOTE_CHARS - 300)
    status = serializers.CharField(required=False, default="", allow_blank=True, max_length=100)


class TicketEventResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    recorded = serializers.ChoiceField(choices=["note", "timeline_event"])
    id = serializers.IntegerField()


class TicketEventView(ApiView):
    write_scope = "incidents:write"

    @extend_schema(
        request=TicketEventSerializer,
        responses={201: TicketEventResultSerializer},
        description="comment_added becomes a war-room note; ticket_linked, ticket_closed and ticket_reopened "
        "timeline events. "
        "The incident's phase does not change (PATCH the incident for that).",
    )
    def post(self, request: Request, incident_id: int) -> Response:
        serializer = TicketEventSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        common = {"incident_id": incident_id, "actor": self.actor(), "system": data["system"], "ticket": data["ticket"]}
        if data["event"] == "comment_added":
            note = ticket_comment_add(**common, author=data["author"], body=data["body"])
            return Response({"recorded": "note", "id": note.pk}, status=201)
        event = ticket_status_record(**common, event=data["event"], status=data["status"])
        return Response({"recorded": "timeline_event", "id": event.pk}, status=201)
