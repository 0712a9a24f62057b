"""Log formatting shared by every process (web, worker, beat, commands)."""

import logging
import time


class UTCFormatter(logging.Formatter):
    """ISO-8601 UTC times (`2026-11-28T08:59:01.123Z`): security logs are compared across hosts."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging API)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
