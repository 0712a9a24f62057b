"""`manage.py rbac_inspect (--cluster NAME | --kubeconfig FILE [--context CTX]) [--json]`.

Lists every binding, selects anonymous subjects, classifies and rates each grant, and confirms with
SubjectAccessReviews. Read-only. `--json` prints the report (`rows`, `probes`, `authenticated`,
`counts`) and the remediation plan it implies.
"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from integrations.errors import IntegrationError
from integrations.kubernetes.client import Connection, api_client
from integrations.kubernetes.rbac import rbac_inspect
from integrations.kubernetes.remediation import plan_compute
from integrations.models import Cluster
from integrations.services import cluster_connection


class Command(BaseCommand):
    help = "Report what system:anonymous / system:unauthenticated can do on a cluster (read-only)."

    def add_arguments(self, parser: Any) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--cluster", help="A configured cluster's name (Admin → Clusters).")
        target.add_argument("--kubeconfig", help="A kubeconfig file.")
        parser.add_argument("--context", default="", help="Kubeconfig context (default: the current one).")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["cluster"]:
            cluster = Cluster.objects.filter(name=options["cluster"]).select_related("account").first()
            if cluster is None:
                raise CommandError(f"no cluster named {options['cluster']!r}")
            connection = cluster_connection(cluster)
        else:
            connection = Connection(
                name=options["kubeconfig"], kubeconfig=options["kubeconfig"], context=options["context"]
            )
        try:
            objects, report = rbac_inspect(api_client(connection))
        except IntegrationError as exc:
            raise CommandError(str(exc)) from exc
        data = report.as_dict() | {"plan": plan_compute(objects).as_dict()}
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2))
            return
        for row in report.rows:
            self.stdout.write(
                f"{row.subject:<32} {row.scope:<14} {row.role:<36} {row.binding:<44} "
                f"{row.classification:<15} {row.risk}"
            )
        for probe in report.probes:
            self.stdout.write(f"SAR {probe.label:<60} {'allowed' if probe.allowed else 'denied'}")
