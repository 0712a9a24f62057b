"""JSON values PostgreSQL can store.

PostgreSQL stores neither a NUL character nor half of a surrogate pair, in text or in jsonb, and both
reach Python from outside: a JSON string can spell either (an escaped NUL, a lone high surrogate), a
CSV cell can hold a NUL, and a file name that is not UTF-8 decodes to lone surrogates. Where that text
is evidence of what an attacker did, refusing it would hide it: `storable` keeps it, each such
character replaced by U+FFFD, and the original bytes stay where they were kept (the payload row, the
evidence file).
"""

import re
from typing import Any

# How a valid JSON text spells either one: only a text holding such an escape needs `storable`.
UNSTORABLE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """A JSON value with each NUL and lone surrogate replaced by U+FFFD, in keys and values alike."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value
