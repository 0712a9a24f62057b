import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """GuardDuty ingestion: inbound payloads kept before parsing, a quarantine for what cannot be
    read, and the Finding's version fields named after GuardDuty's (CreatedAt, UpdatedAt)."""

    dependencies = [("incidents", "0004_acknowledged")]

    operations = [
        migrations.CreateModel(
            name="InboundPayload",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("source", models.CharField(choices=[("webhook", "Webhook"), ("sqs", "EventBridge → SQS"), ("poller", "API poller"), ("import", "File import"), ("demo", "Demo data")], max_length=10)),
                ("received_at", models.DateTimeField(auto_now_add=True)),
                ("body", models.BinaryField()),
                ("sha256", models.CharField(max_length=64)),
                ("size", models.PositiveIntegerField()),
                ("meta", models.JSONField(blank=True, default=dict, help_text="File name, message id, sender address …")),
                ("status", models.CharField(choices=[("received", "Received, not processed yet"), ("accepted", "Accepted"), ("partial", "Partly rejected"), ("rejected", "Rejected")], default="received", max_length=10)),
                ("counts", models.JSONField(blank=True, default=dict)),
                ("processed_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={"indexes": [models.Index(fields=["status", "-received_at"], name="payload_status_recent")]},
        ),
        migrations.CreateModel(
            name="QuarantinedDocument",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("position", models.PositiveIntegerField(blank=True, help_text="Index in the payload; empty: all of it.", null=True)),
                ("document", models.JSONField(blank=True, null=True)),
                ("reason", models.TextField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("resolved_at", models.DateTimeField(blank=True, null=True)),
                ("payload", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="quarantined", to="incidents.inboundpayload")),
            ],
            options={"ordering": ["-created_at", "id"]},
        ),
        migrations.RenameField(model_name="finding", old_name="gd_created_at", new_name="finding_created_at"),
        migrations.RenameField(model_name="finding", old_name="gd_updated_at", new_name="finding_updated_at"),
        migrations.RunSQL(
            # Rows from before ingestion existed (demo data) get their receive time as UpdatedAt.
            "UPDATE incidents_finding SET finding_updated_at = received_at WHERE finding_updated_at IS NULL",
            migrations.RunSQL.noop,
        ),
        migrations.AlterField(model_name="finding", name="finding_updated_at", field=models.DateTimeField()),
        migrations.AddField(model_name="finding", name="cluster_arn", field=models.CharField(blank=True, max_length=300)),
        migrations.AddField(
            model_name="finding",
            name="last_payload",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="incidents.inboundpayload"),
        ),
        migrations.AlterField(model_name="finding", name="raw", field=models.JSONField(default=dict, help_text="The latest version, wire (camelCase) spelling.")),
        migrations.AddIndex(model_name="finding", index=models.Index(fields=["cluster_name", "finding_type"], name="finding_cluster_type")),
    ]
