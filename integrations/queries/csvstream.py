"""Result rows → CSV bytes, read like a file, with SHA-256 computed over exactly the bytes produced.

Storage backends (Django's FileSystemStorage, S3 multipart uploads) pull from a file object in chunks;
this one renders rows only as the reader asks for them, so memory stays bounded by one chunk plus one
page of rows whatever the result size (goal P9). RFC 4180 quoting, CRLF line ends, header first, NULL
as an empty cell: the same rows always give the same bytes, which is what "re-run to verify" compares.
"""

import csv
import hashlib
import io
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from integrations.queries.base import Row

RowObserver = Callable[[Row], None]
BATCH = 256  # rows rendered at a time: a bounded buffer, and few Python-level calls per row


class CsvStream(io.RawIOBase):
    def __init__(self, columns: Iterable[str], rows: Iterator[Row], observe: RowObserver | None = None) -> None:
        super().__init__()
        self._rows = rows
        self._observe = observe
        self._sink = io.StringIO()
        self._writer = csv.writer(self._sink, lineterminator="\r\n")
        self._buffer = bytearray(self._render([tuple(columns)]))
        self._done = False
        self.digest = hashlib.sha256()
        self.size = 0
        self.rows = 0

    def _render(self, rows: list[Row] | list[tuple[str, ...]]) -> bytes:
        self._sink.seek(0)
        self._sink.truncate()
        self._writer.writerows(rows)  # one C loop per batch rather than a Python call per row
        return self._sink.getvalue().encode("utf-8")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.size

    def _fill(self, wanted: int) -> None:
        while len(self._buffer) < wanted and not self._done:
            batch = list(islice(self._rows, BATCH))
            if not batch:
                self._done = True
                break
            if self._observe is not None:
                for row in batch:
                    self._observe(row)
            self._buffer += self._render(batch)
            self.rows += len(batch)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        self._fill(size)
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        self.digest.update(chunk)
        self.size += len(chunk)
        return chunk

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


def csv_write(path: str, columns: Iterable[str], rows: Iterator[Row], observe: RowObserver | None = None) -> CsvStream:
    """Write the CSV to `path`; the returned stream holds the row count, size and SHA-256."""
    stream = CsvStream(columns, rows, observe)
    with open(path, "wb") as out:
        while chunk := stream.read(1024 * 1024):
            out.write(chunk)
    return stream
