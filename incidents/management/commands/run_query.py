"""`manage.py run_query --engine duckdb|athena --template NAME --param key=value ... [--logs DIR] [--csv OUT]`.

Runs one investigation query template outside any incident: the result goes to the CSV file in the
evidence form (`csvstream`: Athena's result object as it is, or rows rendered the same way), and one
line with the row count and the SHA-256 of the CSV bytes goes to standard output. The same template,
parameters and logs always give the same hash, which is how a result kept as evidence can be
reproduced by hand.
"""

import os
import tempfile
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from incidents.services.queries import QuerySpec, engine_build, engine_name_for, query_request
from incidents.services.query_summary import summarize_csv
from integrations.errors import IntegrationError
from integrations.queries import embedded
from integrations.queries.base import QueryEngine, QueryState
from integrations.queries.csvstream import csv_source, csv_write
from playbooks.query_templates import QueryParamError, library, query_params_resolve


class Command(BaseCommand):
    help = "Run an investigation query template; write the rows to a CSV and print the row count and hash."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--engine", choices=["duckdb", "athena"], default="duckdb")
        parser.add_argument("--template", required=True, help=", ".join(sorted(library().templates)))
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--logs", help="DuckDB: the directory holding AWSLogs/ (default: the configured one)")
        parser.add_argument("--csv", dest="csv_path", help="Write the rows here (default: only count and hash)")
        parser.add_argument("--timeout", type=int, default=600, help="Seconds before the query is stopped")

    def handle(self, *args: Any, **options: Any) -> None:
        params = dict(self._pair(text) for text in options["param"])
        try:
            template = library().get(options["template"])
            values = query_params_resolve(template, params, now=timezone.now())
        except QueryParamError as exc:
            raise CommandError(str(exc)) from exc
        engine_name = options["engine"] if template.source == "cloudtrail" else engine_name_for(template)
        spec = QuerySpec(template=template, values=values, engine=engine_name)
        engine = self._engine(engine_name, options["logs"])
        try:
            rows, sha256 = self._run(engine, spec, options["csv_path"], options["timeout"])
        except IntegrationError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            engine.close()
        self.stdout.write(f"{template.name}: {rows} rows, sha256 {sha256}")

    @staticmethod
    def _pair(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--param takes key=value, got {text!r}")
        return key.strip(), value

    @staticmethod
    def _engine(name: str, logs: str | None) -> QueryEngine:
        if name == "duckdb" and logs:
            return embedded.DuckDbEngine(embedded.DuckDbConfig(logs_dir=os.path.abspath(logs)))
        return engine_build(name)

    def _run(self, engine: QueryEngine, spec: QuerySpec, csv_path: str | None, timeout: int) -> tuple[int, str]:
        request = query_request(spec)
        execution_id = engine.start(request, token=f"watchpost-cli-{time.time_ns()}-{os.getpid()}".ljust(32, "0"))
        started, delay = time.monotonic(), 0.1
        while not (status := engine.status(execution_id)).state.done:
            if time.monotonic() - started > timeout:
                engine.stop(execution_id)
                raise CommandError(f"Stopped after {timeout} s (execution {execution_id}).")
            time.sleep(delay)
            delay = min(delay * 1.5, 3.0)
        if status.state is not QueryState.SUCCEEDED:
            raise CommandError(f"Query {status.state.value.lower()}: {status.reason}")
        result = engine.result(execution_id)
        for warning in result.warnings:
            self.stderr.write(warning)
        with tempfile.TemporaryDirectory(prefix="watchpost-run-query-") as scratch:
            # The rows are counted by the same analysis pass the app runs over the stored file.
            path = csv_path or os.path.join(scratch, "result.csv")
            source = csv_source(result)
            try:
                _size, sha256 = csv_write(path, source)
            finally:
                source.close()
            rows = summarize_csv(path, result.columns, preview_size=0, sensitive=()).rows
        return rows, sha256
