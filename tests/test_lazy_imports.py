"""Heavy clients load where they are used, not in every process: the kubernetes package (~35 MB of RSS)
where a cluster is called, DuckDB (~34 MB, ~70 MB once connected) where a query runs or is analysed."""

import os
import subprocess
import sys

from django.conf import settings

PROBE = """
import sys
import django
django.setup()
from django.urls import resolve
resolve("/")  # the URLconf, with every view module it imports
from config.celery import app
app.loader.import_default_modules()  # every task module, as a worker imports them
import incidents.services.rbac, integrations.kubernetes.remediation  # the RBAC service itself, not yet called
import incidents.services.queries, integrations.queries.embedded  # the query service, no query run
print(",".join(sorted(m for m in ("kubernetes", "kubernetes.client", "duckdb") if m in sys.modules)) or "none")
"""


def test_setting_up_the_app_and_its_tasks_imports_neither_kubernetes_nor_duckdb() -> None:
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=settings.BASE_DIR, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "none"


def test_the_client_still_loads_it_when_a_cluster_is_called(tmp_path) -> None:
    from integrations.errors import PermanentIntegrationError
    from integrations.kubernetes.client import Connection, api_client

    missing = tmp_path / "kubeconfig"
    try:
        api_client(Connection(name="c", kubeconfig=str(missing)))
    except PermanentIntegrationError as exc:  # the kubernetes package's own ConfigException, translated
        assert "Kubeconfig for c" in str(exc)
    else:
        raise AssertionError("a missing kubeconfig must fail")
    assert "kubernetes.config" in sys.modules
