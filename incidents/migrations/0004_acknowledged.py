from django.db import migrations, models


def invert(apps, schema_editor):
    Incident = apps.get_model("incidents", "Incident")
    Incident.objects.filter(awaiting_ack=False).update(acknowledged=True)


class Migration(migrations.Migration):
    """`awaiting_ack` (true first, descending) becomes `acknowledged` (false first, ascending), so the
    SLA sort runs one way and its keyset seek is a single indexed row comparison."""

    dependencies = [("incidents", "0003_roles")]

    operations = [
        migrations.AddField(model_name="incident", name="acknowledged", field=models.BooleanField(default=False)),
        migrations.RunPython(invert, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="incident", name="incident_sla_keyset"),
        migrations.RemoveField(model_name="incident", name="awaiting_ack"),
        migrations.AddIndex(
            model_name="incident",
            index=models.Index(fields=["acknowledged", "sla_due_at", "id"], name="incident_sla_keyset_v2"),
        ),
    ]
