"""Query results as evidence bytes: one CSV form for every engine and path, hashed as it is stored.

The form is the CSV Athena itself writes to the query result location (and moto's Athena writes the
same way): a header row of the column names, then one line per row; every value in double quotes
with a quote inside doubled; NULL as an empty field with no quotes, so it differs from an empty
string (`""`); fields separated by `,`, lines ended by LF (`\\n`); UTF-8. A value may hold commas
and line breaks: they stay inside its quotes.

Because GetQueryResults pages, DuckDB rows and the object Athena leaves in S3 all come out as the
same bytes, a result has one SHA-256 whichever way it was fetched, and "re-run to verify" compares
across paths. The S3 object is therefore copied byte for byte (`QueryResult.open_csv`), never parsed.

Storage backends (Django's FileSystemStorage, S3 multipart uploads) pull from a file object in chunks;
`CsvStream` renders rows only as the reader asks for them, so memory stays bounded by one chunk plus
one batch of rows whatever the result size (goal P9).
"""

import csv
import hashlib
import io
import re
import tempfile
from collections.abc import Iterable, Iterator
from itertools import islice

from integrations.queries.base import ByteSource, QueryResult, Row

BATCH = 256  # rows rendered at a time: a bounded buffer, and few Python-level calls per row
CHUNK = 1024 * 1024
LINE_END = "\n"
# Python 3.11's csv has no QUOTE_NOTNULL: QUOTE_ALL would write NULL as `""`, like an empty string.
# NULL goes in as this lone surrogate instead and its quoted form is removed from each rendered batch
# (one C-level str.replace). A lone surrogate cannot be encoded as UTF-8, so no value that can be
# written at all can be mistaken for it.
_NULL = "\udcff"
_QUOTED_NULL = f'"{_NULL}"'

# How DuckDB's read_csv must read this form (the analysis pass): quote and escape are both `"`, and
# a quoted empty value stays an empty string while an unquoted one is NULL.
DUCKDB_CSV_OPTIONS = (
    "header = true, delim = ',', quote = '\"', escape = '\"', new_line = '\\n', "
    "auto_detect = false, allow_quoted_nulls = false"
)


def _marked(row: Row) -> Row:
    return tuple(_NULL if cell is None else cell for cell in row) if None in row else row


class CsvStream(io.RawIOBase):
    """Rows → the evidence CSV form, read like a file; `size` and `rows` count what was read. The reader
    hashes what it stores (the evidence service's `_HashingFile`, `csv_write`): hashing here too would
    hash every byte twice."""

    def __init__(self, columns: Iterable[str], rows: Iterator[Row]) -> None:
        super().__init__()
        self._rows = rows
        self._sink = io.StringIO()
        self._writer = csv.writer(self._sink, quoting=csv.QUOTE_ALL, lineterminator=LINE_END)
        self._buffer = bytearray(self._render([tuple(columns)]))
        self._done = False
        self.size = 0
        self.rows = 0

    def _render(self, rows: list[Row]) -> bytes:
        self._sink.seek(0)
        self._sink.truncate()
        self._writer.writerows(rows)  # one C loop per batch rather than a Python call per row
        return self._sink.getvalue().replace(_QUOTED_NULL, "").encode("utf-8")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.size

    def _fill(self, wanted: int) -> None:
        while len(self._buffer) < wanted and not self._done:
            batch = list(map(_marked, islice(self._rows, BATCH)))
            if not batch:
                self._done = True
                break
            self._buffer += self._render(batch)
            self.rows += len(batch)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        self._fill(size)
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        self.size += len(chunk)
        return chunk

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)


def csv_source(result: QueryResult) -> ByteSource:
    """The result's evidence bytes as a readable stream: Athena's own object as it is, or rendered rows."""
    if result.open_csv is not None:
        return result.open_csv()
    return CsvStream(result.columns, result.rows)


class SpoolingReader(io.RawIOBase):
    """Passes reads through and keeps a local copy of every byte read, for the analysis pass when the
    evidence storage is not a local disk (django-storages S3): one read of the source, no download back."""

    def __init__(self, source: ByteSource) -> None:
        super().__init__()
        self._source = source
        self.spool = tempfile.NamedTemporaryFile(prefix="watchpost-result-", suffix=".csv")  # noqa: SIM115

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._source.read(-1 if size is None else size)
        self.spool.write(data)
        return data

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self.spool.close()  # removes the file
        super().close()


def csv_write(path: str, source: ByteSource) -> tuple[int, str]:
    """Copy `source` to `path` in bounded chunks; returns the size and SHA-256 of the bytes written."""
    digest, size = hashlib.sha256(), 0
    with open(path, "wb") as out:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


# --- reading the form back as rows (tests, the command line; the app itself never parses it) ------

_FIELD = re.compile(r'"([^"]*(?:""[^"]*)*)"|')


def parse_record(text: str) -> Row:
    """One record (without its line end) → cells, NULL (an unquoted empty field) as None."""
    cells: list[str | None] = []
    position = 0
    while True:
        match = _FIELD.match(text, position)
        value = match.group(1) if match else None
        cells.append(None if value is None else value.replace('""', '"'))
        position = match.end() if match else position
        if position >= len(text):
            return tuple(cells)
        if text[position] != ",":
            raise ValueError(f"Not in the evidence CSV form at character {position}: {text[:80]!r}")
        position += 1


def parse_lines(lines: Iterable[str]) -> Iterator[Row]:
    """Lines with their line ends kept → rows; a quoted value that spans lines is joined back."""
    record = ""
    for line in lines:
        record += line
        if record.count('"') % 2 == 0:  # every quote paired: the line end is the record's end
            yield parse_record(record.removesuffix(LINE_END))
            record = ""
    if record:
        raise ValueError("The CSV ends inside a quoted value.")
