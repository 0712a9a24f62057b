"""An incident's checklist rows: written in one statement, and, for ingested cases, on first read.

Opening an incident by hand writes its checklist at once (`incident_open`). Ingestion does not: a
backfill opens thousands of cases, most never opened by anyone, and their checklist rows (one per
playbook step, each with its indexes and foreign-key checks) were the largest single cost of
ingesting a finding (P1, P3). The steps are fixed by the playbook version the incident pins, so the
rows can be written later with the same content: every read of a checklist goes through
`checklist_items`, which writes the rows the first time it finds none, and the close gate calls
`checklist_materialise` before it counts open mandatory steps.
"""

from collections.abc import Collection

from django.db import connection

from playbooks.models import ChecklistItem, PlaybookStep


def checklist_materialise(*, incident_ids: Collection[int]) -> None:
    """Write the missing checklist rows of these incidents from their pinned playbooks' steps.

    One INSERT … SELECT whatever the number of incidents; rows that exist are left alone (the unique
    (incident, step) constraint), so two first reads at once write each row once.
    """
    if not incident_ids:
        return
    item, step = ChecklistItem._meta.db_table, PlaybookStep._meta.db_table
    incident = ChecklistItem.incident.field.related_model._meta.db_table
    placeholders = ", ".join(["%s"] * len(incident_ids))
    # Only table names from the models' meta are formatted in; every value is a bound parameter.
    # The WHERE clause also keeps SQLite (`make run`) from reading ON CONFLICT as part of the join.
    sql = (
        f'INSERT INTO "{item}" (incident_id, step_id, position, status, comment, decision) '  # noqa: S608
        f"SELECT i.id, s.id, s.position, %s, '', '' "
        f'FROM "{incident}" i JOIN "{step}" s ON s.playbook_id = i.playbook_id '
        f"WHERE i.id IN ({placeholders}) ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [ChecklistItem.Status.TODO, *incident_ids])


def checklist_items(*, incident_id: int) -> list[ChecklistItem]:
    """The incident's checklist in playbook order, with each step and who closed it (one query once written)."""
    items = _items(incident_id)
    if not items:
        checklist_materialise(incident_ids=[incident_id])
        items = _items(incident_id)
    return items


def _items(incident_id: int) -> list[ChecklistItem]:
    queryset = ChecklistItem.objects.filter(incident_id=incident_id).select_related("step", "done_by")
    return list(queryset.order_by("position"))
