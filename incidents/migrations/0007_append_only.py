"""Audit and custody rows are append-only for the application's database role.

Existing custody rows are linked into the hash chain first (in id order), then triggers refuse
UPDATE and DELETE on both tables. PostgreSQL and SQLite (the embedded default) both get them.
"""

import hashlib
import hmac
import json
from datetime import UTC

from django.conf import settings
from django.db import migrations

TABLES = ("incidents_auditevent", "incidents_custodyevent")

POSTGRES = """
CREATE OR REPLACE FUNCTION watchpost_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
"""


def _link(prev: str, fields: dict) -> str:
    # The same construction as incidents.services.audit.link_hash, frozen here as migrations must be.
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hmac.new(str(settings.WATCHPOST_AUDIT_KEY).encode(), f"{prev}|{body}".encode(), hashlib.sha256).hexdigest()


def link_existing_custody(apps, schema_editor) -> None:
    custody = apps.get_model("incidents", "CustodyEvent")
    head_model = apps.get_model("incidents", "ChainHead")
    prev, last_id = "0" * 64, 0
    for event in custody.objects.order_by("id").iterator():
        fields = {
            "evidence": event.evidence_id,
            "action": event.action,
            "actor": event.actor_id,
            "at": event.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "address": event.source_address,
            "sha256": event.sha256,
            "detail": event.detail,
        }
        event.prev_hash, event.chain_hash = prev, _link(prev, fields)
        event.save(update_fields=["prev_hash", "chain_hash"])
        prev, last_id = event.chain_hash, event.pk
    head_model.objects.update_or_create(
        name="custody", defaults={"last_id": last_id, "last_hash": prev if last_id else ""}
    )
    head_model.objects.get_or_create(name="audit")


def triggers_create(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(POSTGRES, params=None)  # the body has % signs
            schema_editor.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION watchpost_append_only()"
            )
        elif vendor == "sqlite":
            for op in ("UPDATE", "DELETE"):
                schema_editor.execute(
                    f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
                )


def triggers_drop(apps, schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    for table in TABLES:
        if vendor == "postgresql":
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        elif vendor == "sqlite":
            for op in ("update", "delete"):
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}")


class Migration(migrations.Migration):
    dependencies = [("incidents", "0006_audit_chain")]

    operations = [
        migrations.RunPython(link_existing_custody, migrations.RunPython.noop),
        migrations.RunPython(triggers_create, triggers_drop),
    ]
