"""Set-based writes: COPY rows through the session's own connection (same transaction).

PostgreSQL refuses COPY FROM into a table with row-level security, so rows for a tenant table are COPYed
into a scratch table and moved with one INSERT ... SELECT, which the table's policy then checks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import Copy
from sqlalchemy.orm import Session

_stage_ids = itertools.count(1)


@contextmanager
def _copy_into(session: Session, table: str, columns: Sequence[str]) -> Iterator[Copy]:
    """A COPY into `table`: directly for scratch (`tmp_`) tables, through a staging table otherwise."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    cols = ", ".join(columns)
    connection = session.connection()
    target = table
    if not table.startswith("tmp_"):
        target = f"tmp_stage_{table}_{next(_stage_ids)}"
        connection.exec_driver_sql(
            f"CREATE TEMP TABLE {target} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"
        )
    with raw.cursor() as cur, cur.copy(f"COPY {target} ({cols}) FROM STDIN") as copy:
        yield copy
    if target != table:
        connection.exec_driver_sql(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {target}")
        connection.exec_driver_sql(f"DROP TABLE {target}")


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY Python values (psycopg adapts them); for modest row counts."""
    count = 0
    with _copy_into(session, table, columns) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def copy_lines(session: Session, table: str, columns: Sequence[str], lines: Sequence[str]) -> int:
    """COPY pre-encoded text lines (each ending in a newline; see shared.copytext), for millions of rows."""
    with _copy_into(session, table, columns) as copy:
        for start in range(0, len(lines), 20_000):
            copy.write("".join(lines[start : start + 20_000]))
    return len(lines)


def temp_table(session: Session, name: str, definition: str) -> None:
    """A scratch table that disappears at commit."""
    session.connection().exec_driver_sql(f"CREATE TEMP TABLE {name} ({definition}) ON COMMIT DROP")
