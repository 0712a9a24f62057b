"""Keyset (seek) pagination: no OFFSET, no COUNT(*); a page costs the same at any depth.

An ordering is a list of (field, descending). The cursor is the ordering values of the last row of
the page, base64-encoded JSON, and the next page is the rows strictly after it in that ordering.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, Q, QuerySet

# Django 5.2's row-value lookups (added for composite primary keys); wrapped here and nowhere else.
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.db.models.lookups import Lookup

Ordering = Sequence[tuple[str, bool]]
M = TypeVar("M")  # a model instance, or a named row from values_list(named=True)


class CursorError(ValueError):
    pass


@dataclass(frozen=True)
class Page(Generic[M]):
    items: list[M]
    next_cursor: str | None


def order_by_args(ordering: Ordering) -> list[str]:
    return [f"-{field}" if desc else field for field, desc in ordering]


def encode_cursor(obj: object, ordering: Ordering) -> str:
    values = []
    for field, _ in ordering:
        value = getattr(obj, field)
        values.append({"t": value.isoformat()} if isinstance(value, datetime) else value)
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, ordering: Ordering) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(ordering):
            raise CursorError("cursor does not match the sort order")
        return [datetime.fromisoformat(v["t"]) if isinstance(v, dict) else v for v in values]
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CursorError("invalid cursor") from exc


def after(ordering: Ordering, values: Sequence[Any]) -> Q | Lookup:
    """Rows strictly after `values` in this ordering.

    One direction throughout: a row comparison, `(a, b, id) > (x, y, z)`, which PostgreSQL answers
    from the matching index in O(page) at any depth. The OR-expanded form below is only a filter to
    it and reads every row before the cursor (a 1,000-page-deep list page went from 0.2 ms to 150 ms).
    """
    directions = {desc for _, desc in ordering}
    if len(directions) == 1:
        columns = Tuple(*(F(field) for field, _ in ordering))
        return (TupleLessThan if directions.pop() else TupleGreaterThan)(columns, list(values))
    condition = Q()
    for i, (field, desc) in enumerate(ordering):
        prefix = {f: v for (f, _), v in zip(ordering[:i], values[:i], strict=True)}
        condition |= Q(**prefix, **{f"{field}__{'lt' if desc else 'gt'}": values[i]})
    return condition


def paginate(queryset: "QuerySet[Any, M]", *, ordering: Ordering, cursor: str | None, size: int) -> Page[M]:
    try:
        if cursor:
            queryset = queryset.filter(after(ordering, decode_cursor(cursor, ordering)))
        rows = list(queryset.order_by(*order_by_args(ordering))[: size + 1])
    except (ValueError, TypeError, DjangoValidationError) as exc:
        # A well-formed cursor with values of the wrong type (tampered, or from another sort).
        raise CursorError("invalid cursor") from exc
    next_cursor = encode_cursor(rows[size - 1], ordering) if len(rows) > size else None
    return Page(items=rows[:size], next_cursor=next_cursor)
