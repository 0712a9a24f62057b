"""Raw documents are stored LZ4-compressed on PostgreSQL (migration incidents/0011)."""

import pytest
from django.db import connection

from incidents.models import Finding
from incidents.services.findings import payload_receive
from tests.ingestion.conftest import ANONYMOUS, as_bytes, wire

pytestmark = pytest.mark.django_db

needs_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="column compression is PostgreSQL's")


def _lz4_supported() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        return bool(cursor.fetchone()[0])


@needs_postgres
def test_payload_bodies_and_finding_documents_are_compressed_with_lz4(playbook) -> None:
    if not _lz4_supported():
        pytest.skip("this PostgreSQL was built without LZ4: the migration keeps pglz")
    # given: a finding whose document is well over the ~2 KB TOAST threshold, so it is compressed
    document = wire(ANONYMOUS) | {"description": "anonymous access " * 400}
    # when
    report = payload_receive(source="webhook", body=as_bytes(document))
    # then: both stored copies were compressed, and with LZ4
    finding = Finding.objects.get()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_column_compression(p.body), pg_column_compression(f.raw) "
            "FROM incidents_inboundpayload p, incidents_finding f WHERE p.id = %s AND f.id = %s",
            [report.payload_id, finding.pk],
        )
        assert cursor.fetchone() == ("lz4", "lz4")
    assert Finding.objects.get().raw["description"] == document["description"]  # and it reads back whole
