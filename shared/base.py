"""The one declarative base, its naming convention, and the column types every domain shares."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from sqlalchemy import DateTime, Dialect, MetaData, Numeric, String, Table, TypeDecorator, func
from sqlalchemy.orm import DeclarativeBase, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# Quantities and unit costs carry 4 decimal places, amounts (quantity x unit cost) 8, so products are exact.
Quantity = Annotated[Decimal, mapped_column(Numeric(20, 4))]
Money = Annotated[Decimal, mapped_column(Numeric(28, 8))]
UnitCost = Annotated[Decimal, mapped_column(Numeric(20, 4))]
Timestamp = Annotated[datetime, mapped_column(DateTime(timezone=True))]
CreatedAt = Annotated[datetime, mapped_column(DateTime(timezone=True), server_default=func.now())]
TenantId = Annotated[str, mapped_column(String(63), index=True)]

E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E]):
    """A StrEnum stored as plain text (VARCHAR(n), no database enum type): the application sees the enum,
    and adding a member needs no migration."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(self.enum(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id(prefix: str) -> str:
    """A time-ordered, URL-safe id: 48 bits of milliseconds then 80 random bits, Crockford base32."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def text_limit(model: type[Base], column: str) -> int:
    """The length of a model's VARCHAR column: the one source of the documented maximum of the text field that
    fills it. Schemas and checks read it here, so a validation limit cannot drift from its column (and a value
    past it is a validation error, never a failed write). `tests/hostile/test_text_limits.py` holds the map of
    fields to columns."""
    length = getattr(table_of(model).c[column].type, "length", None)
    assert isinstance(length, int), f"{model.__name__}.{column} is not a VARCHAR(n) column"
    return length


def table_of(model: type[Base]) -> Table:
    """A model's table, for a plain INSERT on a hot path (no unit of work, no identity map)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table
