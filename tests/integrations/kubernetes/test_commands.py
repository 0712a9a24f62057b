"""`manage.py sandbox_cluster` serves a scenario and writes a working kubeconfig; errors name what is missing."""

import json
import os
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations.kubernetes.client import missing_permission
from integrations.models import Cluster

ROOT = Path(__file__).resolve().parents[3]


def test_sandbox_cluster_command_serves_the_scenario_until_terminated(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "sandbox.yaml"
    command = [
        sys.executable,
        "manage.py",
        "sandbox_cluster",
        "--scenario",
        "custom-cluster-admin-anonymous",
        "--port",
        "0",
        "--kubeconfig-out",
        str(kubeconfig),
    ]
    server = subprocess.Popen(  # noqa: S603 - our interpreter, our arguments
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        assert "SANDBOX Kubernetes API server (not a real cluster) listening on http://127.0.0.1:" in banner
        assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"  # it holds a token
        out = StringIO()
        call_command("rbac_inspect", "--kubeconfig", str(kubeconfig), "--json", stdout=out)
        rows = json.loads(out.getvalue())["rows"]
        assert rows[0]["binding"] == "ClusterRoleBinding/debug-anonymous-admin" and rows[0]["risk"] == "critical"
    finally:
        server.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = server.wait(15)
    assert code == 0 and time.monotonic() - started < 15


def test_rbac_inspect_names_an_unknown_cluster(db: None) -> None:
    with pytest.raises(CommandError, match="no cluster named 'nowhere'"):
        call_command("rbac_inspect", "--cluster", "nowhere")


@pytest.mark.parametrize(
    ("message", "needed"),
    [
        (
            'roles.rbac.authorization.k8s.io is forbidden: User "wp" cannot list resource "roles" in API group '
            '"rbac.authorization.k8s.io" in the namespace "payments"',
            'list roles.rbac.authorization.k8s.io (in the namespace "payments")',
        ),
        ('forbidden: User "wp" cannot get path "/apis"', "get /apis"),
        (
            'subjectaccessreviews.authorization.k8s.io is forbidden: User "wp" cannot create resource '
            '"subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope',
            "create subjectaccessreviews.authorization.k8s.io (cluster scope)",
        ),
        ("something else entirely", ""),
    ],
)
def test_a_403_message_gives_the_missing_permission(message: str, needed: str) -> None:
    assert missing_permission(message) == needed


def test_rbac_inspect_reaches_a_configured_cluster_by_name(db: None, sandbox) -> None:  # type: ignore[no-untyped-def]
    box = sandbox("gitops-anonymous-binding")
    Cluster.objects.create(name="payments-prod", via=Cluster.Via.KUBECONFIG, kubeconfig_path=str(box.kubeconfig))
    out = StringIO()
    call_command("rbac_inspect", "--cluster", "payments-prod", stdout=out)
    first = out.getvalue().splitlines()[0].split()
    assert first[:2] == ["User/system:anonymous", "cluster-wide"] and first[-2:] == ["custom", "high"]
