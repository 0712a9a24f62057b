"""`manage.py run_query`: rows to a CSV, one summary line with the count and the hash of those bytes."""

import hashlib
import io
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.integrations.query_helpers import BUNDLED


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("run_query", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_writes_the_csv_and_prints_count_and_hash(tmp_path: Path) -> None:
    target = tmp_path / "result.csv"
    line = _run(
        "--engine",
        "duckdb",
        "--template",
        "sensitive_actions_after",
        "--param",
        "principal_id=AIDAQXAMPLESVCBACKUP1",
        "--param",
        "since=2026-11-20T09:00:00Z",
        "--param",
        "until=2026-11-28T00:00:00Z",
        "--logs",
        str(BUNDLED),
        "--csv",
        str(target),
    )
    data = target.read_bytes()
    assert line == f"sensitive_actions_after: 8 rows, sha256 {hashlib.sha256(data).hexdigest()}"
    assert data.startswith(b'"eventtime","eventsource","eventname","awsregion","sourceipaddress","arn","errorcode",')
    assert len(data.splitlines()) == 9


def test_the_same_query_over_the_same_logs_gives_the_same_hash(tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(BUNDLED, copy)
    args = ["--template", "source_ip_activity", "--param", "source_ip=198.51.100.23", "--param"]
    args += ["since=2026-11-01T00:00:00Z", "--param", "until=2026-11-28T00:00:00Z"]
    assert _run(*args, "--logs", str(BUNDLED)) == _run(*args, "--logs", str(copy))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "nope"], "Unknown query template"),
        (["--template", "source_ip_activity", "--param", "source_ip=not-an-ip"], "not an IP address"),
        (["--template", "source_ip_activity", "--param", "source_ip"], "key=value"),
        (
            ["--template", "source_ip_activity", "--param", "source_ip=10.0.0.1", "--param", "since=yesterday"],
            "ISO-8601",
        ),
        (
            ["--template", "source_ip_activity", "--param", "source_ip=10.0.0.1", "--logs", "/nonexistent"],
            "does not exist",
        ),
    ],
)
def test_bad_input_is_a_clear_error(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        _run(*args)
