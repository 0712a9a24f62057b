"""`manage.py import_findings`: one summary line per file, rejections listed, exit status 1 on any rejection."""

import os
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError

from incidents.models import Finding, InboundPayload, Incident, QuarantinedDocument
from incidents.services.findings import payload_receive
from tests.fixtures import GUARDDUTY

pytestmark = pytest.mark.django_db

GOOD = GUARDDUTY / "wire" / "Discovery_Kubernetes_SuccessfulAnonymousAccess.json"
GZ = GUARDDUTY / "export.jsonl.gz"


def run(*paths: Path | str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("import_findings", *map(str, paths), stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def test_good_files_are_imported_with_one_summary_line_each_and_exit_0(playbook) -> None:
    out, error = run(GOOD, GZ)
    assert error is None
    assert out.splitlines() == [
        f"{GOOD}: created 1, updated 0, duplicate 0, stale 0, rejected 0",
        f"{GZ}: created 3, updated 0, duplicate 0, stale 0, rejected 0",
    ]
    assert Finding.objects.count() == 4
    payload = InboundPayload.objects.get(meta__file=str(GZ))
    assert payload.source == InboundPayload.Source.IMPORT and bytes(payload.body) == GZ.read_bytes()
    assert payload.meta["size"] == GZ.stat().st_size


def test_a_directory_mixing_good_and_bad_files_imports_the_good_and_exits_1(playbook, tmp_path) -> None:
    # given: files in a directory, imported in name order
    shutil.copy(GUARDDUTY / "list.json", tmp_path / "a_list.json")
    shutil.copy(GUARDDUTY / "bad" / "missing_id.json", tmp_path / "b_missing_id.json")
    shutil.copy(GUARDDUTY / "bad" / "not_json.txt", tmp_path / "c_not_json.txt")
    shutil.copy(GUARDDUTY / "cli_get_findings.json", tmp_path / "d_cli.json")
    # when
    out, error = run(tmp_path)
    # then
    assert error is not None and error.returncode == 1 and "2 of 4 file(s)" in str(error)
    lines = out.splitlines()
    assert lines[0] == f"{tmp_path / 'a_list.json'}: created 2, updated 0, duplicate 0, stale 0, rejected 0"
    assert lines[1] == f"{tmp_path / 'b_missing_id.json'}: created 0, updated 0, duplicate 0, stale 0, rejected 1"
    assert lines[2] == "  rejected #0: missing id"
    assert lines[3] == f"{tmp_path / 'c_not_json.txt'}: created 0, updated 0, duplicate 0, stale 0, rejected 1"
    assert lines[4].startswith("  rejected payload: invalid JSON")
    assert lines[5].startswith(f"{tmp_path / 'd_cli.json'}: created ")
    assert Finding.objects.count() == 5  # list.json's 2 and the CLI output's 3 share no id
    assert QuarantinedDocument.objects.count() == 2 and InboundPayload.objects.count() == 4


@pytest.mark.django_db(transaction=True)  # run_from_argv closes the connection when it is done
def test_the_exit_status_is_1_when_anything_was_rejected(playbook, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(
            ["manage.py", "import_findings", str(GOOD), str(GUARDDUTY / "bad" / "empty_list.json")]
        )
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert "rejected payload: the payload holds no findings" in captured.out
    assert "Traceback" not in captured.err and "1 of 2 file(s)" in captured.err
    assert Finding.objects.count() == 1


def test_re_importing_a_file_counts_duplicates_and_creates_nothing(playbook) -> None:
    # given
    run(GZ)
    findings, incidents = list(Finding.objects.values_list("pk", "count")), Incident.objects.count()
    # when
    out, error = run(GZ)
    # then
    assert error is None
    assert out.splitlines() == [f"{GZ}: created 0, updated 0, duplicate 3, stale 0, rejected 0"]
    assert list(Finding.objects.values_list("pk", "count")) == findings and Incident.objects.count() == incidents
    assert InboundPayload.objects.count() == 2  # every delivery is kept


def test_a_missing_path_is_reported_and_counts_as_rejected(playbook, tmp_path) -> None:
    missing = tmp_path / "nope.json"
    out, error = run(missing, GOOD)
    assert error is not None and error.returncode == 1
    assert out.splitlines()[:2] == [
        f"{missing}: created 0, updated 0, duplicate 0, stale 0, rejected 1",
        "  rejected payload: cannot read the file (No such file or directory)",
    ]
    assert Finding.objects.count() == 1


def test_an_oversized_file_is_kept_as_an_empty_payload_and_quarantined(playbook, settings, tmp_path) -> None:
    # given
    settings.WATCHPOST_IMPORT_MAX_BYTES = 1000
    big = tmp_path / "big.json"
    shutil.copy(GOOD, big)
    size = big.stat().st_size
    # when
    out, error = run(big)
    # then
    assert error is not None
    assert f"  rejected payload: the file is {size} bytes, over the import limit of 1000" in out.splitlines()
    payload = InboundPayload.objects.get()
    assert bytes(payload.body) == b"" and payload.meta["size"] == size and payload.meta["file"] == str(big)
    assert payload.status == InboundPayload.Status.REJECTED and payload.counts["rejected"] == 1
    assert "over the import limit" in QuarantinedDocument.objects.get(payload=payload).reason
    assert not Finding.objects.exists()


def test_a_file_name_that_is_not_utf8_is_imported_and_shown_with_a_replacement_character(playbook, tmp_path) -> None:
    # given: a name from another system (Latin-1 "é"), which Python hands over with a lone surrogate
    name = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.json")
    shutil.copy(GOOD, name)
    # when
    out, error = run(name)
    # then: imported; the line and the payload's meta show the odd byte as U+FFFD
    shown = f"{tmp_path}/caf\ufffd.json"
    assert error is None and out.splitlines() == [f"{shown}: created 1, updated 0, duplicate 0, stale 0, rejected 0"]
    assert InboundPayload.objects.get().meta["file"] == shown


def test_whatever_comes_with_a_payload_is_stored_even_text_jsonb_refuses(playbook) -> None:
    report = payload_receive(source=InboundPayload.Source.SQS, body=GOOD.read_bytes(), meta={"attribute\x00": "\udcff"})
    assert InboundPayload.objects.get(pk=report.payload_id).meta == {"attribute\ufffd": "\ufffd"}
