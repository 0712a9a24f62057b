"""`{% query_forms item as forms %}`: the query templates a checklist step offers, pre-filled from the case."""

from typing import Any

from django import template

from incidents.services.queries import query_prefill
from playbooks.models import ChecklistItem
from playbooks.query_templates import PARAM_TYPES, library

register = template.Library()


@register.simple_tag
def query_forms(item: ChecklistItem) -> list[dict[str, Any]]:
    templates = library().for_step(item.step.step_id) or list(library().templates.values())
    prefill = query_prefill(incident=item.incident)
    return [
        {
            "name": t.name,
            "title": t.title,
            "description": t.description,
            "source": t.source,
            "fields": [
                {
                    "name": name,
                    "label": PARAM_TYPES[name].label,
                    "help": PARAM_TYPES[name].help,
                    "value": prefill.get(name, ""),
                    "required": name not in ("since", "until"),
                }
                for name in t.params
            ],
        }
        for t in templates
    ]
