"""Reads of the playbook library as loaded into the database.

"Latest" means the highest version of a slug. Older versions stay loaded because open incidents
pin them, but new incidents always get the latest one.
"""

from dataclasses import dataclass

from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet

from playbooks.models import Playbook


def playbook_list() -> QuerySet[Playbook]:
    """The latest version of each slug, ordered by slug."""
    newer = Playbook.objects.filter(slug=OuterRef("slug"), version__gt=OuterRef("version"))
    return Playbook.objects.filter(~Exists(newer)).order_by("slug")


def playbook_latest(*, slug: str) -> Playbook:
    playbook = Playbook.objects.filter(slug=slug).order_by("-version").first()
    if playbook is None:
        raise Playbook.DoesNotExist(f"No playbook with slug {slug!r} is loaded.")
    return playbook


def playbook_for_finding_type(*, finding_type: str) -> Playbook:
    """The latest playbook that lists `finding_type`, else the latest fallback playbook.

    Only the latest version of each slug counts: a type dropped in a newer version is no longer
    handled by that playbook. The library check makes a type belong to one slug; should old rows of
    another slug still claim it, the most recently loaded playbook wins.
    """
    return _library_read().playbook_for(finding_type)


LibrarySignature = tuple[int | None, int]  # (highest id, row count)


@dataclass(frozen=True)
class _Library:
    """Which playbook opens a case of each finding type."""

    by_type: dict[str, Playbook]  # every type a latest playbook lists
    fallback: Playbook | None

    def playbook_for(self, finding_type: str) -> Playbook:
        playbook = self.by_type.get(finding_type, self.fallback)
        if playbook is None:
            raise Playbook.DoesNotExist("No fallback playbook is loaded; run `manage.py sync_playbooks`.")
        return playbook


# Ingestion asks for the same few types thousands of times. Loaded rows are never edited (a changed file
# is a new version, a new row), so the highest id and the row count identify the library's state; one
# tiny query per call (or the caller's own, `library_signature_sql`) keeps a worker that did not run
# `sync_playbooks` itself from serving a superseded version.
_LIBRARY: dict[LibrarySignature, _Library] = {}


def playbooks_for_finding_types(
    *, finding_types: set[str], signature: LibrarySignature | None = None
) -> dict[str, Playbook]:
    """`playbook_for_finding_type` for several types at once, from the library read once per state.

    `signature`: the library's state as the caller's own statement read it (`library_signature_sql`),
    which saves the query here. The whole library is one query (a handful of rows): asking type by
    type cost two queries and ~4 ms per type a worker process had not seen yet (P3).
    """
    signature = _library_signature() if signature is None else signature
    library = _LIBRARY.get(signature)
    if library is None:
        _LIBRARY.clear()
        library = _LIBRARY[signature] = _library_read()
    return {finding_type: library.playbook_for(finding_type) for finding_type in finding_types}


def _library_read() -> _Library:
    """The latest playbooks, one query. Matched in Python: the library holds a handful of rows, and
    JSONField `contains` on a list is not available on SQLite, which `make run` uses. Not the stored
    document: opening an incident needs the row and its steps, not the JSON."""
    by_type: dict[str, Playbook] = {}
    fallback = None
    # Most recently loaded first: should old rows of another slug still claim a type, the newest wins.
    for playbook in playbook_list().defer("document").order_by("-loaded_at", "slug"):
        for finding_type in playbook.finding_types:
            by_type.setdefault(finding_type, playbook)
        if fallback is None and playbook.is_fallback:
            fallback = playbook
    return _Library(by_type, fallback)


def library_signature_sql() -> str:
    """The playbook library's state as one row (library_last, library_rows), to fold into another statement.

    On every ingested event: a plain statement, not the ORM's aggregate, whose compilation cost more
    Python than the query costs PostgreSQL. The table name comes from the model's meta.
    """
    table = connection.ops.quote_name(Playbook._meta.db_table)
    return f"SELECT max(id) AS library_last, count(*) AS library_rows FROM {table}"  # noqa: S608


def _library_signature() -> LibrarySignature:
    with connection.cursor() as cursor:
        cursor.execute(library_signature_sql())
        last, rows = cursor.fetchone()
    return last, rows
