"""`/api/v1/incidents/{id}/timeline/`: events oldest first, cursor-paginated, `since=` for pollers."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from incidents.api.common import (
    ApiView,
    PageQuerySerializer,
    page_serializer,
    page_size,
    query_params,
    visible_incident,
)
from incidents.models import TimelineEvent
from incidents.selectors import TimelineFilters, timeline_page


class TimelineEventSerializer(serializers.Serializer):  # type: ignore[type-arg]
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=TimelineEvent.Kind.choices)
    occurred_at = serializers.DateTimeField()
    recorded_at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor__username", allow_null=True)
    summary = serializers.CharField()
    data = serializers.DictField(  # type: ignore[assignment]
        help_text="Kind-specific details, e.g. {from, to} of a phase change."
    )


class TimelineQuery(PageQuerySerializer):
    since = serializers.DateTimeField(required=False, help_text="Only events that occurred at or after this time.")
    kind = serializers.MultipleChoiceField(choices=TimelineEvent.Kind.choices, required=False)


TimelinePageSerializer = page_serializer(TimelineEventSerializer, "TimelinePage")


class TimelineView(ApiView):
    read_scope = "incidents:read"

    @extend_schema(operation_id="incidents_timeline_list", parameters=[TimelineQuery], responses=TimelinePageSerializer)
    def get(self, request: Request, incident_id: int) -> Response:
        query = query_params(TimelineQuery, request)
        incident = visible_incident(request, incident_id)
        filters = TimelineFilters(kinds=tuple(sorted(query.get("kind") or ())), since=query.get("since"))
        page = timeline_page(incident=incident, filters=filters, cursor=query.get("cursor"), size=page_size(query))
        # The page's rows leave out `data` (the HTML page does not show it); one query adds it.
        details = dict(TimelineEvent.objects.filter(pk__in=[r.id for r in page.items]).values_list("pk", "data"))
        rows = [row._asdict() | {"data": details.get(row.id, {})} for row in page.items]
        return Response({"results": TimelineEventSerializer(rows, many=True).data, "next_cursor": page.next_cursor})
