"""`manage.py sandbox_cluster --scenario FILE --port N --kubeconfig-out FILE`: run the SANDBOX API server.

A local stand-in for a Kubernetes API server (RBAC and authorization APIs only), seeded with the
bootstrap defaults plus the scenario's objects. The kubeconfig written holds a context with a valid
token. Runs until interrupted. Scenarios ship in integrations/kubernetes/sandbox/scenarios/.
"""

import signal
import threading
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from integrations.kubernetes.sandbox.server import SandboxCluster, scenario_load

SCENARIOS = Path(__file__).resolve().parents[2] / "kubernetes" / "sandbox" / "scenarios"


class Command(BaseCommand):
    help = "Run the Watchpost SANDBOX Kubernetes API server (not a real cluster) with a scenario."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--scenario", required=True, help=f"YAML/JSON file, or a name in {SCENARIOS}.")
        parser.add_argument("--port", type=int, default=0, help="Port on 127.0.0.1 (0: any free port).")
        parser.add_argument("--kubeconfig-out", required=True, help="Where to write the kubeconfig (mode 600).")
        parser.add_argument("--context", default="watchpost-sandbox")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["scenario"])
        if not path.exists() and (SCENARIOS / f"{options['scenario']}.yaml").exists():
            path = SCENARIOS / f"{options['scenario']}.yaml"
        try:
            objects = scenario_load(path)
            cluster = SandboxCluster(objects, port=options["port"])
        except (OSError, ValueError) as exc:
            raise CommandError(f"sandbox: {exc}") from exc
        kubeconfig = cluster.kubeconfig_write(options["kubeconfig_out"], context=options["context"])
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        cluster.start()
        self.stdout.write(
            f"SANDBOX Kubernetes API server (not a real cluster) listening on {cluster.url} with scenario "
            f"{path.name} ({len(objects)} object(s)); kubeconfig: {kubeconfig}",
        )
        self.stdout.flush()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            cluster.stop()
