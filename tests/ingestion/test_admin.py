"""Admin: the upload page (admins only, CSRF, POST), the read-only payload pages and re-processing."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from incidents import permissions
from incidents.models import Finding, InboundPayload, QuarantinedDocument
from incidents.services.findings import payload_receive, payload_store
from tests.factories import UserFactory
from tests.fixtures import GUARDDUTY
from tests.ingestion.conftest import ANONYMOUS, as_bytes, wire

pytestmark = pytest.mark.django_db

UPLOAD = reverse("admin:incidents_inboundpayload_upload")
PAYLOADS = reverse("admin:incidents_inboundpayload_changelist")
QUARANTINE = reverse("admin:incidents_quarantineddocument_changelist")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_admin():
    """In the `admin` group and allowed into the admin site, not a superuser."""
    return UserFactory(username="staff-admin", role=permissions.ADMIN, is_staff=True)


def good_and_bad_files() -> list[SimpleUploadedFile]:
    return [
        SimpleUploadedFile("export.jsonl.gz", (GUARDDUTY / "export.jsonl.gz").read_bytes()),
        SimpleUploadedFile("broken.json", (GUARDDUTY / "bad" / "missing_region.json").read_bytes()),
    ]


def test_the_upload_page_sends_anonymous_and_non_staff_users_to_the_login(client, viewer) -> None:
    assert client.get(UPLOAD).status_code == 302
    response = logged_in(viewer).post(UPLOAD, {"uploads": good_and_bad_files()})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert not InboundPayload.objects.exists()


def test_the_upload_page_refuses_staff_who_are_not_admins() -> None:
    staff_viewer = UserFactory(username="staff-viewer", role=permissions.VIEWER, is_staff=True)
    client = logged_in(staff_viewer)
    assert client.get(UPLOAD).status_code == 403
    assert client.post(UPLOAD, {"uploads": good_and_bad_files()}).status_code == 403
    assert not InboundPayload.objects.exists()


def test_an_admin_sees_the_form_and_the_link_from_the_payload_list(staff_admin) -> None:
    client = logged_in(staff_admin)
    page = client.get(UPLOAD)
    assert page.status_code == 200
    assert b'enctype="multipart/form-data"' in page.content and b'name="uploads"' in page.content
    assert b"csrfmiddlewaretoken" in page.content
    assert UPLOAD.encode() in client.get(PAYLOADS).content


def test_the_add_permission_is_enough_to_upload(playbook) -> None:
    clerk = UserFactory(username="clerk", role=permissions.RESPONDER, is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="add_inboundpayload"))
    response = logged_in(clerk).post(UPLOAD, {"uploads": [SimpleUploadedFile("one.json", as_bytes(wire(ANONYMOUS)))]})
    assert response.status_code == 302 and Finding.objects.count() == 1


def test_uploading_a_good_and_a_bad_file_imports_one_and_quarantines_the_other(staff_admin, playbook) -> None:
    # when
    response = logged_in(staff_admin).post(UPLOAD, {"uploads": good_and_bad_files()})
    # then
    assert response.status_code == 302 and response["Location"] == PAYLOADS
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "export.jsonl.gz: created 3, updated 0, duplicate 0, stale 0, rejected 0",
        "broken.json: created 0, updated 0, duplicate 0, stale 0, rejected 1",
        "rejected #0: missing region",
    ]
    good = InboundPayload.objects.get(meta__file="export.jsonl.gz")
    assert good.source == InboundPayload.Source.IMPORT and good.status == InboundPayload.Status.ACCEPTED
    assert good.meta["uploaded_by"] == "staff-admin"
    bad = InboundPayload.objects.get(meta__file="broken.json")
    assert bytes(bad.body) == (GUARDDUTY / "bad" / "missing_region.json").read_bytes()
    assert QuarantinedDocument.objects.get().payload == bad
    assert Finding.objects.count() == 3


def test_an_upload_needs_the_csrf_token(staff_admin) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_admin)
    assert client.post(UPLOAD, {"uploads": good_and_bad_files()}).status_code == 403
    assert not InboundPayload.objects.exists()


def test_a_get_or_an_empty_post_imports_nothing(staff_admin) -> None:
    client = logged_in(staff_admin)
    assert client.get(UPLOAD, {"uploads": "x"}).status_code == 200
    response = client.post(UPLOAD, {})
    assert response.status_code == 200 and b"This field is required" in response.content
    assert not InboundPayload.objects.exists()


def test_an_oversized_upload_is_kept_empty_and_quarantined(staff_admin, settings) -> None:
    settings.WATCHPOST_IMPORT_MAX_BYTES = 100
    response = logged_in(staff_admin).post(UPLOAD, {"uploads": [SimpleUploadedFile("big.json", b"x" * 101)]})
    assert "over the import limit of 100" in [str(m) for m in get_messages(response.wsgi_request)][1]
    payload = InboundPayload.objects.get()
    assert bytes(payload.body) == b"" and payload.meta["size"] == 101


def test_the_payload_page_shows_the_body_and_cannot_be_edited(staff_admin) -> None:
    report = payload_receive(
        source=InboundPayload.Source.WEBHOOK, body=b'{"hello": "<world>"}', meta={"file": "hello.json"}
    )
    client = logged_in(staff_admin)
    page = client.get(reverse("admin:incidents_inboundpayload_change", args=[report.payload_id]))
    assert page.status_code == 200
    assert b"&lt;world&gt;" in page.content and b"<world>" not in page.content  # escaped
    assert b"not a finding" in page.content  # the inline quarantine row
    assert b'name="_save"' not in page.content
    assert b"hello.json" in client.get(PAYLOADS, {"q": "hello"}).content
    assert b"hello.json" not in client.get(PAYLOADS, {"q": "nothing-like-it"}).content
    assert client.get(reverse("admin:incidents_inboundpayload_add")).status_code == 403
    delete = reverse("admin:incidents_inboundpayload_delete", args=[report.payload_id])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert InboundPayload.objects.filter(pk=report.payload_id).exists()


def _reprocess(client: Client, rows: list[QuarantinedDocument]):
    return client.post(QUARANTINE, {"action": "reprocess", "_selected_action": [row.pk for row in rows]}, follow=True)


def test_re_processing_an_unchanged_bad_payload_keeps_it_quarantined(staff_admin, playbook) -> None:
    # given
    report = payload_receive(
        source=InboundPayload.Source.IMPORT, body=(GUARDDUTY / "bad" / "missing_id.json").read_bytes()
    )
    row = QuarantinedDocument.objects.get(payload_id=report.payload_id)
    # when
    response = _reprocess(logged_in(staff_admin), [row])
    # then
    assert response.status_code == 200
    assert "Re-processed 1 payload(s): rejected 1. Resolved 0 quarantine row(s); 1 still rejected." in [
        str(m) for m in response.context["messages"]
    ]
    row.refresh_from_db()
    assert row.resolved_at is None
    assert not Finding.objects.exists()
    assert QuarantinedDocument.objects.filter(payload_id=report.payload_id, resolved_at=None).count() == 2


def test_re_processing_resolves_a_row_that_now_passes(staff_admin, playbook) -> None:
    # given: a good payload whose earlier run (say, by an older parser) left a quarantine row
    payload = payload_store(source=InboundPayload.Source.IMPORT, body=as_bytes(wire(ANONYMOUS)))
    old = QuarantinedDocument.objects.create(payload=payload, position=0, reason="an old parser's doubt")
    # when
    response = _reprocess(logged_in(staff_admin), [old])
    # then
    assert "Re-processed 1 payload(s): created 1. Resolved 1 quarantine row(s); 0 still rejected." in [
        str(m) for m in response.context["messages"]
    ]
    old.refresh_from_db()
    assert old.resolved_at is not None and Finding.objects.count() == 1


def test_staff_who_are_not_admins_cannot_re_process() -> None:
    report = payload_receive(source=InboundPayload.Source.IMPORT, body=b"not json")
    staff_viewer = UserFactory(username="staff-viewer", role=permissions.VIEWER, is_staff=True)
    staff_viewer.user_permissions.add(Permission.objects.get(codename="view_quarantineddocument"))
    response = _reprocess(logged_in(staff_viewer), list(QuarantinedDocument.objects.all()))
    assert QuarantinedDocument.objects.count() == 1  # no second run happened
    assert InboundPayload.objects.get(pk=report.payload_id).counts == {
        "created": 0,
        "updated": 0,
        "duplicate": 0,
        "stale": 0,
        "rejected": 1,
    }
    assert response.status_code == 200
