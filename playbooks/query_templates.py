"""Investigation query templates as data (`playbooks/queries/*.yaml`): loading, typed parameters, binding.

A template names its parameters (`params`, typed below) and, for each `?` in its SQL, the value bound
there (`bind`, the parameters plus a few derived values). `query_bind` turns the responder's text into
checked, normalised values and the ordered tuple an engine binds; nothing typed by a user is ever
formatted into the SQL text. What is formatted in (`{table}`, the DDL location) comes from settings
and is checked against strict patterns first.
"""

import fnmatch
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

QUERY_DIR = Path(__file__).resolve().parent / "queries"
DEFAULT_WINDOW = timedelta(days=90)  # seed Part 3: "in the last 90 days"
ParamName = Literal["principal_id", "username", "since", "until", "source_ip", "cluster"]
BindName = Literal[
    "principal_id", "username", "username_like", "since", "until", "source_ip", "partition_from", "partition_to"
]
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}(\.[A-Za-z_][A-Za-z0-9_]{0,127})?$")
S3_LOCATION = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*()/-]*)?$")


class QueryParamError(ValueError):
    """A parameter value that does not fit its type; the message names the parameter."""


class QueryTemplateError(Exception):
    """A template file breaks the format."""


@dataclass(frozen=True)
class ParamType:
    label: str
    help: str
    pattern: re.Pattern[str] | None = None
    max_length: int = 200


# Reference: IAM API "Unique identifiers" (AIDA/AROA/…), RoleSessionName [\w+=,.@-]{2,64}; EKS
# CreateCluster name ^[0-9A-Za-z][A-Za-z0-9\-_]*$ (1-100).
PARAM_TYPES: dict[str, ParamType] = {
    "principal_id": ParamType(
        "Principal id",
        "AIDA… (IAM user), AROA… (a role), AROA…:session (one session), or the account id (root).",
        re.compile(r"^(?:[A-Z0-9]{16,128}(?::[\w+=,.@-]{1,64})?|\d{12})$"),
        200,
    ),
    "username": ParamType("User or role name", "IAM user or role name (any text; bound as a value).", None, 128),
    "since": ParamType("Since", "ISO-8601 time, UTC if no offset. Default: 90 days ago."),
    "until": ParamType("Until", "ISO-8601 time, UTC if no offset. Default: now."),
    "source_ip": ParamType("Source IP", "IPv4 or IPv6 address."),
    "cluster": ParamType("EKS cluster", "Cluster name.", re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$"), 100),
}

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]
ActionPattern = Annotated[str, StringConstraints(pattern=r"^[A-Za-z*]+$", max_length=60)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class QueryTemplate(_Strict):
    name: Identifier
    title: str
    description: str = ""
    kind: Literal["query", "setup"] = "query"
    params: list[ParamName] = []
    bind: list[BindName] = []
    sql: str
    athena_sql: str = ""
    # Checklist steps (ids) whose panel offers this template; empty: every query.run step.
    steps: list[str] = []
    source: Literal["cloudtrail", "eks_audit"] = "cloudtrail"

    @model_validator(mode="after")
    def _check(self) -> "QueryTemplate":
        needed = {_bind_source(name) for name in self.bind}
        missing = needed - set(self.params)
        if missing:
            raise ValueError(f"template {self.name}: bind uses {sorted(missing)} which are not in params")
        if self.sql.count("?") != len(self.bind):
            raise ValueError(f"template {self.name}: {self.sql.count('?')} placeholders but {len(self.bind)} binds")
        if self.source == "eks_audit" and (self.bind or "cluster" not in self.params):
            raise ValueError(f"template {self.name}: Logs Insights takes no bound values and needs `cluster`")
        return self


class QueryFile(_Strict):
    version: Annotated[int, Field(gt=0)]
    source: Literal["cloudtrail", "eks_audit"]
    sensitive_actions: list[ActionPattern] = []
    templates: list[QueryTemplate]


@dataclass(frozen=True)
class QueryLibrary:
    templates: dict[str, QueryTemplate]
    sensitive_actions: tuple[str, ...]

    def for_step(self, step_id: str) -> list[QueryTemplate]:
        return [t for t in self.templates.values() if not t.steps or step_id in t.steps]

    def get(self, name: str) -> QueryTemplate:
        try:
            return self.templates[name]
        except KeyError:
            raise QueryParamError(f"Unknown query template {name!r}.") from None


def _bind_source(name: str) -> str:
    return {"username_like": "username", "partition_from": "since", "partition_to": "until"}.get(name, name)


def library_load(directory: Path = QUERY_DIR) -> QueryLibrary:
    templates: dict[str, QueryTemplate] = {}
    sensitive: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            document = QueryFile.model_validate(
                {
                    **(raw := yaml.safe_load(path.read_text(encoding="utf-8"))),
                    "templates": [{**t, "source": raw.get("source")} for t in raw.get("templates", [])],
                }
            )
        except (ValidationError, yaml.YAMLError, TypeError, AttributeError) as exc:
            raise QueryTemplateError(f"{path.name}: {exc}") from exc
        for template in document.templates:
            if template.name in templates:
                raise QueryTemplateError(f"{path.name}: duplicate template name {template.name!r}")
            templates[template.name] = template
        sensitive += document.sensitive_actions
    return QueryLibrary(templates=templates, sensitive_actions=tuple(sensitive))


@cache
def library() -> QueryLibrary:
    return library_load()


# --- parameters ------------------------------------------------------------------------------------


def _iso(value: str, name: str) -> datetime:
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise QueryParamError(f"{name}: not an ISO-8601 time ({value[:40]!r}), e.g. 2026-11-20T09:00:00Z.") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _iso_text(moment: datetime) -> str:
    # CloudTrail's eventTime spelling, so the string comparison in SQL is a time comparison.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def param_check(name: str, value: str) -> str:
    kind = PARAM_TYPES[name]
    text = value.strip()
    if not text:
        raise QueryParamError(f"{kind.label}: required.")
    if len(text) > kind.max_length or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise QueryParamError(f"{kind.label}: at most {kind.max_length} printable characters.")
    if name == "source_ip":
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise QueryParamError(f"{kind.label}: {text[:60]!r} is not an IP address.") from None
    if kind.pattern is not None and not kind.pattern.match(text):
        raise QueryParamError(f"{kind.label}: {text[:60]!r} does not look right. {kind.help}")
    return text


def query_params_resolve(template: QueryTemplate, raw: dict[str, str], *, now: datetime) -> dict[str, str]:
    """The template's parameters, checked and normalised, with the time window filled in (90 days)."""
    unknown = set(raw) - set(template.params) - {"since", "until"}
    if unknown:
        raise QueryParamError(f"{template.name} takes no parameter {sorted(unknown)[0]!r}.")
    values: dict[str, str] = {}
    for name in template.params:
        if name in ("since", "until"):
            continue
        values[name] = param_check(name, str(raw.get(name, "")))
    if "since" in template.params or "until" in template.params:
        until = _iso(raw["until"], "until") if str(raw.get("until") or "").strip() else now
        since = _iso(raw["since"], "since") if str(raw.get("since") or "").strip() else until - DEFAULT_WINDOW
        if since >= until:
            raise QueryParamError("since: must be before until.")
        values["since"], values["until"] = _iso_text(since), _iso_text(until)
    return values


def _like_contains(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _partition(moment: str, *, days: int = 0) -> str:
    # Folders are named by delivery date, which is never before the event: from the day of `since`
    # to the day after `until` (DOMAIN.md §3.1).
    return (_iso(moment, "time") + timedelta(days=days)).strftime("%Y/%m/%d")


def bind_values(template: QueryTemplate, values: dict[str, str]) -> tuple[str, ...]:
    derived = {
        **values,
        "username_like": _like_contains(values.get("username", "")),
        "partition_from": _partition(values["since"]) if "since" in values else "",
        "partition_to": _partition(values["until"], days=1) if "until" in values else "",
    }
    return tuple(derived[name] for name in template.bind)


# --- SQL text ---------------------------------------------------------------------------------------


def sensitive_filter(patterns: tuple[str, ...]) -> str:
    """`eventname LIKE 'Create%' OR …`: the patterns are checked to be letters and `*` only."""
    if not patterns:
        return "FALSE"
    return " OR ".join(f"eventname LIKE '{p.replace('*', '%')}'" for p in patterns)


@cache
def _sensitive_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    # One compiled alternation instead of one fnmatch per pattern per row (a million-row result).
    return re.compile("|".join(fnmatch.translate(p) for p in patterns) or r"(?!)")


def is_sensitive(event_name: str | None, patterns: tuple[str, ...]) -> bool:
    return bool(event_name) and _sensitive_regex(patterns).match(str(event_name)) is not None


def query_sql(
    template: QueryTemplate,
    *,
    engine: str,
    table: str,
    sensitive: tuple[str, ...],
    location: str = "",
    range_start: str = "2020/01/01",
) -> str:
    if not TABLE_NAME.match(table):
        raise QueryParamError(f"The configured table name {table!r} is not a plain identifier.")
    text = template.athena_sql if engine == "athena" and template.athena_sql else template.sql
    if "{location}" in text and not S3_LOCATION.match(location.rstrip("/")):
        raise QueryParamError(
            "Set WATCHPOST_CLOUDTRAIL_S3_LOCATION to s3://<bucket>/AWSLogs/<account>/CloudTrail/<region>."
        )
    if not re.match(r"^\d{4}/\d{2}/\d{2}$", range_start):
        raise QueryParamError("The projection range start must be yyyy/MM/dd.")
    for key, value in (
        ("{table}", table),
        ("{sensitive_filter}", sensitive_filter(sensitive)),
        ("{location}", location.rstrip("/")),
        ("{range_start}", range_start),
    ):
        text = text.replace(key, value)
    return text.strip()
