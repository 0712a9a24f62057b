"""The two browser scenarios of the issue, in real Chromium against the live server."""

import hashlib
import io
import json
import re
import zipfile

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from incidents.models import Evidence, Incident, Phase
from playbooks.models import ChecklistItem
from tests.e2e.conftest import login, shot

pytestmark = pytest.mark.e2e

NOT_VERIFIED = re.compile(r"Not invoked by the owner.*part-2")


def test_responder_works_part_1_decides_writes_a_note_and_uploads_evidence(demo: str, page: Page, tmp_path) -> None:
    # given: a demo incident nobody has started, opened from the SuccessfulAnonymousAccess playbook
    incident = Incident.objects.filter(phase=Phase.NEW, title__contains="SuccessfulAnonymousAccess").order_by("pk")[0]
    login(page, demo, "responder")
    shot(page, "1-incident-list")
    page.click(f"text={incident.reference}")
    expect(page.locator("h1")).to_contain_text(incident.reference)

    # when: every Part 1 task is ticked (one click each, updated in place)
    part1 = page.locator("details.part").first
    tasks = part1.locator("button.tick[aria-pressed=false]")
    count = tasks.count()
    assert count >= 5
    for _ in range(count):
        tasks.first.click()
        page.wait_for_load_state("networkidle")
    expect(part1.locator("button.tick[aria-pressed=true]")).to_have_count(count)
    # and the decision "not verified → Part 2" is recorded
    page.get_by_role("button", name=NOT_VERIFIED).click()
    expect(page.get_by_role("button", name=re.compile(r"✓ chosen: Not invoked"))).to_be_visible()
    # and a Markdown note is added
    page.fill("#note-body", "Owner **did not** make these calls; removing anonymous bindings.")
    page.click("#war-room button[type=submit]")
    expect(page.locator("#notes strong", has_text="did not")).to_be_visible()
    # and evidence is uploaded
    data = b"2026-11-20T09:02:41Z GET /api/v1/namespaces/kube-system/secrets system:anonymous 200\n"
    log = tmp_path / "audit-excerpt.log"
    log.write_bytes(data)
    page.set_input_files("#ev-file", str(log))
    page.fill("#ev-desc", "EKS audit log excerpt")
    page.click("text=Upload evidence")
    page.wait_for_load_state()

    # then: the page shows the file's SHA-256, and the database agrees
    digest = hashlib.sha256(data).hexdigest()
    expect(page.locator("#evidence td.hash", has_text=digest)).to_be_visible()
    shot(page, "1-incident-after-part-1")
    assert Evidence.objects.get(incident=incident).sha256 == digest
    items = ChecklistItem.objects.filter(incident=incident, step__part=1)
    assert not items.filter(status=ChecklistItem.Status.TODO).exists()
    assert items.get(step__kind="decision").decision == "not-authorized"
    assert incident.notes.get().body.startswith("Owner **did not**")
    assert page.console_errors == []  # type: ignore[attr-defined]  # no CSP violation, no script error


def test_manager_sees_sla_change_opens_timeline_and_exports_the_pdf(demo: str, page: Page) -> None:
    # given: a manager lands on the dashboard, where a demo case breaches its SLA
    login(page, demo, "manager")
    expect(page.locator("h1")).to_have_text("Dashboard")
    shot(page, "2-dashboard-before")
    breach = page.locator("#breaches tr.breach-breached").first
    reference = breach.locator("td").first.inner_text().strip()
    incident = Incident.objects.get(pk=int(reference.removeprefix("WP-")))
    expect(breach).to_contain_text("still not acknowledged")

    # when: the manager acknowledges it
    breach.locator("a").first.click()
    page.get_by_role("button", name="Move to Acknowledged").click()
    expect(page.locator(".badge.phase").first).to_contain_text("Acknowledged")
    shot(page, "2-incident-acknowledged")

    # then: the dashboard shows it acknowledged late, no longer waiting
    page.click("nav >> text=Dashboard")
    row = page.locator("#breaches tr", has_text=reference)
    expect(row).to_contain_text("acknowledged late")
    expect(page.locator("#breaches tr.breach-breached", has_text=reference)).to_have_count(0)
    shot(page, "2-dashboard-after")

    # and the timeline shows the acknowledgement in its lane
    page.goto(f"{demo}/incidents/{incident.pk}/timeline/")
    expect(page.locator("#timeline-rows li.lane-workflow", has_text="new → acknowledged")).to_be_visible()
    shot(page, "2-timeline")

    # and the PDF report downloads, non-empty, with the title and the checklist
    page.goto(f"{demo}/incidents/{incident.pk}/")
    shot(page, "2-incident-post-incident-panel")
    with page.expect_download() as download_info:
        page.click("#post-incident #report-pdf")
    path = download_info.value.path()
    pdf = path.read_bytes()
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    flat = "".join(text.split())  # line breaks fall anywhere in a long title
    assert "".join(incident.title.split()) in flat and incident.reference in flat
    assert "Checklist" in text and "Confirm a ticket/case has been raised" in " ".join(text.split())

    # and the evidence bundle downloads with hashes that check out
    with page.expect_download() as bundle_info:
        page.click("#post-incident button:has-text('Evidence bundle')")
    archive = zipfile.ZipFile(bundle_info.value.path())
    for entry in json.loads(archive.read("manifest.json")):
        assert hashlib.sha256(archive.read(entry["path"])).hexdigest() == entry["sha256"]

    # and the review page and the cluster's cross-incident timeline render
    page.goto(f"{demo}/incidents/{incident.pk}/review/")
    page.fill("#id_root_cause", "system:unauthenticated bound to system:discovery")
    page.click("text=Save lessons learned")
    expect(page.locator("#id_root_cause")).to_have_value("system:unauthenticated bound to system:discovery")
    shot(page, "2-review")
    page.goto(f"{demo}/incidents/clusters/{incident.cluster_name}/timeline/")
    expect(page.locator("#timeline-rows")).to_contain_text(reference)
    shot(page, "2-cluster-timeline")
    assert page.console_errors == []  # type: ignore[attr-defined]
