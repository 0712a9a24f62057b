"""The playbook YAML document: pydantic models, the rules across fields, and readable errors.

The loader (`playbooks.loader`) parses a file with PyYAML and hands the data to
`playbook_document_validate`, which either returns a `PlaybookDocument` or raises
`PlaybookValidationError` with a message that names the file and, when the problem sits inside a
step, the step id.
"""

# Document format (one playbook per file in playbooks/library/, UTF-8 YAML, top level a mapping).
# Unknown keys are refused at every level; types are strict (quote step numbers: "1.2", not 1.2).
#
#   slug: discovery-kubernetes-successful-anonymous-access   # stable across versions
#   version: 1                     # positive int; bump on any content change (rows are never updated)
#   title: ...
#   description: ...               # markdown, optional
#   finding_types: [Discovery:Kubernetes/SuccessfulAnonymousAccess]   # may be empty only if fallback
#   fallback: false                # exactly one playbook in the library has fallback: true
#   upstream:                      # where the text comes from; required when `fixes` is not empty
#     repository: aws-samples/aws-incident-response-playbooks
#     path: "playbooks/Amazon GuardDuty Playbooks/EKS Findings/IRP-GD-....md"
#     commit: <40 hex digits>
#   fixes:                         # every deliberate change from the upstream text
#     - id: iam-user-query-and     # unique, slug-like
#       step: p3-example-queries   # the step the fix applies to (must exist)
#       original: "..."            # upstream text
#       corrected: "..."           # our text (must differ)
#       reason: "..."
#   parts:                         # in ascending, unique `number` order
#     - number: 1
#       title: Acquire, Preserve, Document Evidence
#       intro: markdown, optional
#       steps:                     # at least one
#         - id: p1-confirm-ticket  # unique within the playbook, slug-like, never of the form part-N
#           number: "1.2"          # the step's number as shown (string, at most 20 characters)
#           title: ...
#           body: markdown, optional
#           kind: task             # task | decision (default task)
#           mandatory: true        # default true
#           action: rbac.inspect   # optional: rbac.inspect | rbac.remediate | query.run
#           commands:              # optional
#             - {description: ..., command: ...}
#           queries:               # optional; names unique within the step
#             - {name: principal_call_summary, description: ..., sql: ...}
#           options:               # decision steps only, at least 2, ids unique within the step
#             - id: authorized
#               label: ...
#               goto: part-5       # "part-N" or a step id; must exist
#               not_applicable: [part-2, p5-x]   # parts or step ids; must exist, must not contain
#                                                # the goto target, this step or this step's part

import re
from collections import Counter
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

# Automation hooks a step may name: the steps the app can carry out (or help with) for the responder.
Action = Literal["rbac.inspect", "rbac.remediate", "query.run"]
ACTIONS: tuple[str, ...] = get_args(Action)
PART_REF = re.compile(r"^part-(\d+)$")

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=100)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=100)]
Text = Annotated[str, StringConstraints(pattern=r"\S")]
# Lengths match the PlaybookStep / Playbook columns, so a valid document always fits the database.
Title200 = Annotated[str, StringConstraints(pattern=r"\S", max_length=200)]
Title300 = Annotated[str, StringConstraints(pattern=r"\S", max_length=300)]
StepNumber = Annotated[str, StringConstraints(pattern=r"\S", max_length=20)]
PositiveInt = Annotated[int, Field(gt=0)]
# Reference: GuardDuty UG "Finding format", e.g. Backdoor:EC2/C&CActivity.B!DNS.
FindingType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]+:[A-Za-z0-9]+/\S+$", max_length=200)]


class PlaybookValidationError(Exception):
    """A playbook file (or the library as a whole) breaks the format; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _rule_error(problems: list[str]) -> PydanticCustomError:
    # The message goes through the context so braces in user text are never read as a template.
    return PydanticCustomError("playbook_rule", "{problems}", {"problems": "; ".join(problems)})


class Command(_Strict):
    description: Text
    command: Text


class Query(_Strict):
    name: Identifier
    description: str = ""
    sql: Text


class Option(_Strict):
    id: Slug
    label: Title300
    goto: Slug
    not_applicable: list[Slug] = []


class Step(_Strict):
    id: Slug
    number: StepNumber
    title: Title300
    body: str = ""
    kind: Literal["task", "decision"] = "task"
    mandatory: bool = True
    action: Action | None = None
    commands: list[Command] = []
    queries: list[Query] = []
    options: list[Option] = []

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = _step_problems(step=self)
        if problems:
            raise _rule_error(problems)
        return self


class Part(_Strict):
    number: PositiveInt
    title: Title200
    intro: str = ""
    steps: list[Step] = Field(min_length=1)


class Upstream(_Strict):
    repository: Annotated[str, StringConstraints(pattern=r"^[\w.-]+/[\w.-]+$", max_length=200)]
    path: Annotated[str, StringConstraints(pattern=r"\S", max_length=300)]
    commit: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]


class Fix(_Strict):
    id: Slug
    step: Slug
    original: Text
    corrected: Text
    reason: Text


class PlaybookDocument(_Strict):
    slug: Slug
    version: PositiveInt
    title: Title200
    description: str = ""
    finding_types: list[FindingType] = []
    fallback: bool = False
    upstream: Upstream | None = None
    fixes: list[Fix] = []
    # Actions that change a system (rbac.remediate, rbac.rollback) need a second person's approval
    # unless the playbook turns the rule off.
    two_person_rule: bool = True
    parts: list[Part] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = _document_problems(document=self)
        if problems:
            raise _rule_error(problems)
        return self

    def steps(self) -> list[tuple[Part, Step]]:
        """Every step with its part, in running order."""
        return [(part, step) for part in self.parts for step in part.steps]


def _duplicates(values: list[Any]) -> list[Any]:
    return [value for value, count in Counter(values).items() if count > 1]


def _step_problems(*, step: Step) -> list[str]:
    problems = []
    if step.kind == "decision" and len(step.options) < 2:
        problems.append(f"a decision needs at least 2 options, found {len(step.options)}")
    if step.kind == "task" and step.options:
        problems.append("options are only allowed on a decision step (kind: decision)")
    problems += [f"duplicate option id {dup!r}" for dup in _duplicates([o.id for o in step.options])]
    problems += [f"duplicate query name {dup!r}" for dup in _duplicates([q.name for q in step.queries])]
    return problems


def _document_problems(*, document: PlaybookDocument) -> list[str]:
    return [
        *_part_problems(document=document),
        *_step_id_problems(document=document),
        *_option_problems(document=document),
        *_fix_problems(document=document),
        *_finding_type_problems(document=document),
    ]


def _part_problems(*, document: PlaybookDocument) -> list[str]:
    numbers = [part.number for part in document.parts]
    problems = [f"duplicate part number {dup}" for dup in _duplicates(numbers)]
    if not problems and numbers != sorted(numbers):
        problems.append(f"parts must be listed in ascending order, found {numbers}")
    return problems


def _step_id_problems(*, document: PlaybookDocument) -> list[str]:
    ids = [step.id for _, step in document.steps()]
    problems = [f"step {dup!r}: duplicate step id" for dup in _duplicates(ids)]
    # A step called part-3 would make a goto target ambiguous.
    problems += [f"step {sid!r}: a step id must not look like a part reference" for sid in ids if PART_REF.match(sid)]
    return problems


def _option_problems(*, document: PlaybookDocument) -> list[str]:
    targets = {f"part-{part.number}" for part in document.parts} | {step.id for _, step in document.steps()}
    return [
        f"step {step.id!r}: option {option.id!r}: {problem}"
        for part, step in document.steps()
        for option in step.options
        for problem in _option_target_problems(option=option, own=(step.id, f"part-{part.number}"), targets=targets)
    ]


def _option_target_problems(*, option: Option, own: tuple[str, str], targets: set[str]) -> list[str]:
    problems = [] if option.goto in targets else [f"goto {option.goto!r} does not exist"]
    problems += [f"not_applicable {t!r} does not exist" for t in option.not_applicable if t not in targets]
    if option.goto in option.not_applicable:
        problems.append(f"goto {option.goto!r} is also listed as not_applicable")
    # Marking its own step or part N/A would close the decision that is being taken.
    problems += [f"not_applicable {t!r} contains the decision itself" for t in own if t in option.not_applicable]
    return problems


def _fix_problems(*, document: PlaybookDocument) -> list[str]:
    step_ids = {step.id for _, step in document.steps()}
    problems = [f"duplicate fix id {dup!r}" for dup in _duplicates([fix.id for fix in document.fixes])]
    for fix in document.fixes:
        if fix.step not in step_ids:
            problems.append(f"fix {fix.id!r}: step {fix.step!r} does not exist")
        if fix.original == fix.corrected:
            problems.append(f"fix {fix.id!r}: original and corrected are the same")
    if document.fixes and document.upstream is None:
        problems.append("fixes record changes from an upstream text, so `upstream` is required")
    return problems


def _finding_type_problems(*, document: PlaybookDocument) -> list[str]:
    problems = [f"duplicate finding type {dup!r}" for dup in _duplicates(document.finding_types)]
    if not document.fallback and not document.finding_types:
        problems.append("finding_types may be empty only for the fallback playbook")
    return problems


def playbook_document_validate(*, data: object, file_name: str) -> PlaybookDocument:
    """Validate parsed YAML; raise PlaybookValidationError naming the file and the step."""
    if not isinstance(data, dict):
        raise PlaybookValidationError(f"{file_name}: the top level must be a mapping, found {type(data).__name__}")
    try:
        return PlaybookDocument.model_validate(data)
    except ValidationError as exc:
        lines = [_error_line(error=error, data=data) for error in exc.errors(include_url=False)]
        raise PlaybookValidationError(f"{file_name}: " + "; ".join(lines)) from exc


def _error_line(*, error: ErrorDetails, data: dict[str, Any]) -> str:
    loc = list(error["loc"])
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = f"unknown key {loc.pop()!r}"
    prefix, rest = _step_prefix(loc=loc, data=data)
    where = ".".join(str(item) for item in rest)
    return ": ".join(item for item in (prefix, where, message) if item)


def _step_prefix(*, loc: list[Any], data: dict[str, Any]) -> tuple[str, list[Any]]:
    """Turn a location like parts.0.steps.3.options.0.goto into ("step 'p1-x'", [options, 0, goto])."""
    if len(loc) < 4 or loc[0] != "parts" or loc[2] != "steps":
        return "", loc
    try:
        step_id = data["parts"][loc[1]]["steps"][loc[3]]["id"]
    except (KeyError, IndexError, TypeError):
        step_id = None
    if not isinstance(step_id, str):
        return "", loc
    return f"step {step_id!r}", loc[4:]
