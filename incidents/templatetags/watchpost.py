from django import template
from django.utils.safestring import SafeString

from incidents.markdown import render_markdown
from incidents.models import Incident
from incidents.sla import SlaState, sla_state

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    return render_markdown(text or "")


@register.filter
def sla(incident: Incident) -> SlaState:
    return sla_state(incident)
