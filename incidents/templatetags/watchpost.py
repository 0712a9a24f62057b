from datetime import timedelta

from django import template
from django.utils.safestring import SafeString

from incidents.markdown import render_markdown
from incidents.models import Incident
from incidents.sla import SlaState, short_duration, sla_state

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    return render_markdown(text or "")


@register.filter
def sla(incident: Incident) -> SlaState:
    return sla_state(incident)


@register.filter
def span(value: timedelta | None) -> str:
    """A duration for people (42 min, 3 h 5 min), or a dash when there is none."""
    return short_duration(value) if value is not None else "—"
