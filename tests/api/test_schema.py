"""The generated OpenAPI document is valid OpenAPI 3 and has no generation warnings."""

from pathlib import Path

import pytest
import yaml
from django.core.management import call_command


def test_schema_is_valid_and_complete(tmp_path: Path) -> None:
    target = tmp_path / "schema.yaml"
    # --validate checks the document against the OpenAPI 3 JSON schema; --fail-on-warn makes any
    # unresolvable serializer, path parameter or operationId collision an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    document = yaml.safe_load(target.read_text())
    assert document["openapi"].startswith("3.")
    assert "/api/v1/incidents/{incident_id}/checklist/{item_id}/{action}/" in document["paths"]
    assert document["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"


@pytest.mark.parametrize("status", ["401", "403", "404"])
def test_every_operation_documents_its_problem_answers(tmp_path: Path, status: str) -> None:
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(target))
    paths = yaml.safe_load(target.read_text())["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            content = operation["responses"][status]["content"]
            assert "application/problem+json" in content, f"{method} {path}"
