"""Set-based writes: COPY rows through the session's own connection (same transaction).

PostgreSQL refuses COPY FROM into a table with row-level security, so rows for a tenant table are COPYed
into a scratch table and moved with one INSERT ... SELECT, which the table's policy then checks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.orm import Session

_stage_ids = itertools.count(1)


def _copy(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    raw = session.connection().connection.driver_connection
    assert raw is not None
    count = 0
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    if table.startswith("tmp_"):
        return _copy(session, table, columns, rows)
    stage = f"tmp_stage_{table}_{next(_stage_ids)}"
    cols = ", ".join(columns)
    connection = session.connection()
    connection.exec_driver_sql(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA")
    count = _copy(session, stage, columns, rows)
    connection.exec_driver_sql(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}")
    connection.exec_driver_sql(f"DROP TABLE {stage}")
    return count


def copy_lines(session: Session, table: str, columns: Sequence[str], lines: Sequence[str]) -> int:
    """COPY pre-encoded text lines (each ending in a newline), staged like `copy_rows` for tenant tables."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    cols = ", ".join(columns)
    target = table
    connection = session.connection()
    if not table.startswith("tmp_"):
        target = f"tmp_stage_{table}_{next(_stage_ids)}"
        connection.exec_driver_sql(
            f"CREATE TEMP TABLE {target} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"
        )
    with raw.cursor() as cur, cur.copy(f"COPY {target} ({cols}) FROM STDIN") as copy:
        for start in range(0, len(lines), 20_000):
            copy.write("".join(lines[start : start + 20_000]))
    if target != table:
        connection.exec_driver_sql(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {target}")
        connection.exec_driver_sql(f"DROP TABLE {target}")
    return len(lines)


def temp_table(session: Session, name: str, definition: str) -> None:
    """A scratch table that disappears at commit."""
    session.connection().exec_driver_sql(f"CREATE TEMP TABLE {name} ({definition}) ON COMMIT DROP")
