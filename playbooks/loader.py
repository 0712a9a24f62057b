"""Read the playbook library from disk, validate it, and load new versions into the database.

Rows are only ever inserted: incidents pin a Playbook row, so a loaded (slug, version) must never
change under them. A file whose content changed without a version bump is refused.
"""

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from django.db import IntegrityError, transaction

from playbooks.models import Playbook, PlaybookStep
from playbooks.schema import PlaybookDocument, PlaybookValidationError, playbook_document_validate

__all__ = ["PlaybookFile", "PlaybookValidationError", "SyncResult", "playbook_library_read", "playbook_sync"]

SUFFIXES = {".yaml", ".yml"}
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class SyncResult:
    file: str
    slug: str
    version: int
    status: Literal["created", "unchanged"]


@dataclass(frozen=True)
class PlaybookFile:
    name: str
    sha256: str
    document: PlaybookDocument


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a repeated key instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if not isinstance(key, str) or key_node.tag == MERGE_TAG:
                continue  # merge keys and odd keys are left to PyYAML
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_parse(*, raw: bytes, file_name: str) -> object:
    try:
        return yaml.load(raw.decode("utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except UnicodeDecodeError as exc:
        raise PlaybookValidationError(f"{file_name}: not UTF-8 text ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        raise PlaybookValidationError(f"{file_name}: invalid YAML: {exc}") from exc


def playbook_file_read(*, path: Path) -> PlaybookFile:
    raw = path.read_bytes()
    data = _yaml_parse(raw=raw, file_name=path.name)
    document = playbook_document_validate(data=data, file_name=path.name)
    return PlaybookFile(name=path.name, sha256=hashlib.sha256(raw).hexdigest(), document=document)


def playbook_library_read(*, directory: Path) -> list[PlaybookFile]:
    """Validate every file, then the rules that span files; raise on the first problem."""
    if not directory.is_dir():
        raise PlaybookValidationError(f"{directory}: not a directory")
    paths = sorted(path for path in directory.iterdir() if path.suffix in SUFFIXES and path.is_file())
    files = [playbook_file_read(path=path) for path in paths]
    _library_check(files=files)
    return files


def _library_check(*, files: list[PlaybookFile]) -> None:
    fallbacks = [f.name for f in files if f.document.fallback]
    if len(fallbacks) != 1:
        found = ", ".join(fallbacks) or f"none among {', '.join(f.name for f in files) or 'no files'}"
        raise PlaybookValidationError(
            f"the library needs exactly one playbook with fallback: true, found {len(fallbacks)}: {found}"
        )
    _claims_check(files=files, label="slug", claims=lambda f: [f.document.slug])
    # Two playbooks for one finding type would make playbook_for_finding_type a coin toss.
    _claims_check(files=files, label="finding type", claims=lambda f: f.document.finding_types)


def _claims_check(*, files: list[PlaybookFile], label: str, claims: Callable[[PlaybookFile], list[str]]) -> None:
    owner: dict[str, str] = {}
    for playbook_file in files:
        for claim in claims(playbook_file):
            if claim in owner:
                raise PlaybookValidationError(
                    f"{owner[claim]}, {playbook_file.name}: {label} {claim!r} is claimed by both files"
                )
            owner[claim] = playbook_file.name


def playbook_sync(*, directory: Path) -> list[SyncResult]:
    """Load every file of the library whose (slug, version) is not in the database yet."""
    files = playbook_library_read(directory=directory)
    # Refuse a changed-but-not-bumped file before writing anything for the others.
    for playbook_file in files:
        _existing_status(playbook_file=playbook_file)
    return [_playbook_load(playbook_file=playbook_file) for playbook_file in files]


def _existing_status(*, playbook_file: PlaybookFile) -> Literal["unchanged"] | None:
    document = playbook_file.document
    existing = Playbook.objects.filter(slug=document.slug, version=document.version).first()
    if existing is None:
        return None
    if existing.source_sha256 != playbook_file.sha256:
        raise PlaybookValidationError(
            f"{playbook_file.name}: content changed but version {document.version} is already loaded; bump the version"
        )
    return "unchanged"


def _playbook_load(*, playbook_file: PlaybookFile) -> SyncResult:
    try:
        with transaction.atomic():
            status = _existing_status(playbook_file=playbook_file) or _playbook_create(playbook_file=playbook_file)
    except IntegrityError:
        # A concurrent sync inserted the same (slug, version) first: judge its row like any other.
        existing = _existing_status(playbook_file=playbook_file)
        if existing is None:
            raise
        status = existing
    document = playbook_file.document
    return SyncResult(file=playbook_file.name, slug=document.slug, version=document.version, status=status)


def _playbook_create(*, playbook_file: PlaybookFile) -> Literal["created"]:
    document = playbook_file.document
    upstream = document.upstream
    playbook = Playbook.objects.create(
        slug=document.slug,
        version=document.version,
        title=document.title,
        description=document.description,
        finding_types=list(document.finding_types),
        is_fallback=document.fallback,
        upstream_repository=upstream.repository if upstream else "",
        upstream_path=upstream.path if upstream else "",
        upstream_commit=upstream.commit if upstream else "",
        document=document.model_dump(mode="json"),
        source_file=playbook_file.name,
        source_sha256=playbook_file.sha256,
    )
    PlaybookStep.objects.bulk_create(_steps_build(playbook=playbook, document=document))
    return "created"


def _steps_build(*, playbook: Playbook, document: PlaybookDocument) -> list[PlaybookStep]:
    return [
        PlaybookStep(
            playbook=playbook,
            step_id=step.id,
            part=part.number,
            part_title=part.title,
            position=position,
            number=step.number,
            title=step.title,
            body=step.body,
            kind=step.kind,
            mandatory=step.mandatory,
            action=step.action or "",
            commands=[command.model_dump() for command in step.commands],
            queries=[query.model_dump() for query in step.queries],
            options=[option.model_dump() for option in step.options],
        )
        for position, (part, step) in enumerate(document.steps(), start=1)
    ]
