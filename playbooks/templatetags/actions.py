"""`{% action_panel item %}`: the automation panel of a checklist step.

Each action owns a template `actions/<action with _ for .>.html` (falling back to a generic
"Run" panel); an action whose handler module is not installed shows the manual-work note.
"""

from collections import defaultdict
from typing import Any

from django import template
from django.utils.safestring import SafeString

from playbooks import actions
from playbooks.models import ActionRun, ChecklistItem

register = template.Library()


def _runs_by_item(context: template.Context, incident_id: int) -> dict[int | None, list[ActionRun]]:
    """All of the incident's runs in one query, shared by every panel on the page."""
    if "action_runs" not in context.render_context:
        context.render_context["action_runs"] = {}
    cache: dict[int, dict[int | None, list[ActionRun]]] = context.render_context["action_runs"]
    if incident_id not in cache:
        grouped: dict[int | None, list[ActionRun]] = defaultdict(list)
        runs = ActionRun.objects.filter(incident_id=incident_id).select_related("requested_by", "approved_by")
        for run in runs:
            grouped[run.checklist_item_id].append(run)
        cache[incident_id] = grouped
    return cache[incident_id]


@register.simple_tag(takes_context=True)
def action_panel(context: template.Context, item: ChecklistItem) -> SafeString | str:
    name = item.step.action
    if not name:
        return ""
    spec = actions.ACTIONS.get(name)
    if spec is None or actions.action_handler(name) is None:
        names = ["actions/_not_configured.html"]
    else:
        names = [f"actions/{name.replace('.', '_')}.html", "actions/_generic.html"]
    panel = context.template.engine.select_template(names)  # type: ignore[union-attr]
    runs = _runs_by_item(context, item.incident_id).get(item.pk, [])
    extra: dict[str, Any] = {"item": item, "step": item.step, "spec": spec, "action_name": name, "runs": runs}
    with context.push(**extra):
        return panel.render(context)  # type: ignore[no-any-return]
