"""List pages: the one way to page a query. Every list orders by a unique key and continues after the last
key of the previous page (`next_cursor`, that key as a string); a cursor that cannot be such a key is a 422,
never a database error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Integer, Select, SmallInteger
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import InstrumentedAttribute

from shared.errors import ValidationFailed

T = TypeVar("T")
MAX_INT_KEY = 2**63 - 1  # bigint
MAX_KEY_OF = ((BigInteger, MAX_INT_KEY), (SmallInteger, 2**15 - 1), (Integer, 2**31 - 1))  # subclasses first
MAX_TEXT_CURSOR = 200


def bad_cursor(message: str) -> ValidationFailed:
    return ValidationFailed(
        f"cursor {message}; pass the next_cursor of the previous page",
        reason="BAD_CURSOR",
        details=[{"field": "cursor", "message": message}],
    )


def parse_cursor(cursor: str, key: InstrumentedAttribute[Any]) -> Any:
    if isinstance(key.type, Integer):
        largest = next(bound for kind, bound in MAX_KEY_OF if isinstance(key.type, kind))
        if not (cursor.isascii() and cursor.isdigit()) or int(cursor) > largest:
            raise bad_cursor(f"must be a whole number from 0 to {largest}")
        return int(cursor)
    if len(cursor) > MAX_TEXT_CURSOR or not cursor.isprintable():
        raise bad_cursor("is not a cursor this list gave out")
    return cursor


def page(
    session: Session,
    query: Select[*tuple[Any, ...]],
    key: InstrumentedAttribute[Any],
    *,
    limit: int,
    cursor: str | None,
    descending: bool = False,
    key_of: Callable[[Any], Any] | None = None,
    scalars: bool = True,
) -> tuple[list[Any], str | None]:
    """Rows of `query` after `cursor` in `key` order, at most `limit`, and the cursor of the next page (None
    on the last). `scalars=False` pages over rows (tuples) and needs `key_of`."""
    if cursor:
        value = parse_cursor(cursor, key)
        query = query.where(key < value if descending else key > value)
    query = query.order_by(key.desc() if descending else key).limit(limit + 1)
    rows: Sequence[Any] = session.scalars(query).all() if scalars else session.execute(query).all()
    if len(rows) <= limit:
        return list(rows), None
    last = rows[limit - 1]
    value = key_of(last) if key_of is not None else getattr(last, key.key)
    return list(rows[:limit]), str(value)
