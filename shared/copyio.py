"""Set-based writes: COPY rows through the session's own connection (same transaction).

PostgreSQL refuses COPY FROM into a table with row-level security. The high-volume tables
(`BULK_TABLES`) are written by the `asora_writer` role instead (migration 0005): it may only INSERT into
them and it bypasses row-level security. A CHECK constraint admits only rows of the transaction's
`asora.tenant_id`, and a statement trigger (0013) admits them only if that is the signed scope
(docs/security.md). Every other tenant table, and the bulk tables where that role is unavailable, get their
rows through a scratch table and one INSERT ... SELECT, which the table's policy then checks.

Rows go to the server from a writer thread (psycopg's queued writer), so the caller encodes the next
chunk while PostgreSQL ingests the previous one: on two cores the encoding hides behind the database.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from psycopg import Copy
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Connection
from sqlalchemy.orm import Session

BULK_TABLES = frozenset({"ledger_events", "lots", "run_sales", "run_allocations"})
WRITER_ROLE = "asora_writer"
_stage_ids = itertools.count(1)


def _writer_available(connection: Connection, table: str) -> bool:
    """Whether this login may act as the bulk writer and the writer may insert into `table` here. Asked once
    per database connection and table (the answer lives in the pooled connection's `info`): roles and grants
    change only with a migration, and a COPY refused after one fails its job, which is retried."""
    known: dict[str, bool] = connection.connection.info.setdefault("asora.bulk_writer", {})
    if table not in known:
        known[table] = bool(
            connection.exec_driver_sql(
                "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %(role)s"
                " AND pg_has_role(session_user, oid, 'MEMBER') AND has_table_privilege(oid, %(table)s, 'INSERT'))",
                {"role": WRITER_ROLE, "table": table},
            ).scalar()
        )
    return known[table]


class _ResponsiveGil:
    """A short GIL switch interval while any COPY runs in this process. The writer thread needs the GIL for
    a moment per buffer it sends; while the caller computes, the default 5 ms would leave the server waiting
    for data. Counted, so concurrent COPYs (API threads) restore the default only when the last one ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._default = sys.getswitchinterval()

    def __enter__(self) -> None:
        with self._lock:
            self._users += 1
            sys.setswitchinterval(min(self._default, 0.0005))

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._users -= 1
            if not self._users:
                sys.setswitchinterval(self._default)


_responsive_gil = _ResponsiveGil()


@contextmanager
def copy_into(session: Session, table: str, columns: Sequence[str]) -> Iterator[Copy]:
    """A COPY into `table`: directly for scratch (`tmp_`) tables and, as the bulk writer, for the bulk
    tables; through a staging table otherwise. Leaving the block waits for the server to ingest the rows, so
    Python work done inside it after the last write overlaps with the server's."""
    connection = session.connection()
    raw = connection.connection.driver_connection
    assert raw is not None
    cols = ", ".join(columns)
    target, as_writer = table, False
    if table in BULK_TABLES and _writer_available(connection, table):
        as_writer = True
        connection.exec_driver_sql(f"SET LOCAL ROLE {WRITER_ROLE}")
    elif not table.startswith("tmp_"):
        target = f"tmp_stage_{table}_{next(_stage_ids)}"
        connection.exec_driver_sql(
            f"CREATE TEMP TABLE {target} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"
        )
    with (
        _responsive_gil,
        raw.cursor() as cur,
        cur.copy(f"COPY {target} ({cols}) FROM STDIN", writer=QueuedLibpqWriter(cur)) as copy,
    ):
        yield copy
    # After a failed COPY the transaction is aborted and its rollback undoes SET LOCAL; nothing to restore.
    # Processes log in as the role they act as and never set another (docs/security.md), so "back" is the
    # session's own login.
    if as_writer:
        connection.exec_driver_sql("SET LOCAL ROLE NONE")
    if target != table:
        connection.exec_driver_sql(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {target}")
        connection.exec_driver_sql(f"DROP TABLE {target}")


def copy_rows(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY Python values (psycopg adapts them); for modest row counts."""
    count = 0
    with copy_into(session, table, columns) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def copy_chunks(session: Session, table: str, columns: Sequence[str], chunks: Iterable[str]) -> None:
    """COPY pre-encoded text (whole lines, each ending in a newline; see shared.copytext), chunk by chunk as
    the iterable produces them, for millions of rows."""
    with copy_into(session, table, columns) as copy:
        for chunk in chunks:
            copy.write(chunk)


def copy_lines(session: Session, table: str, columns: Sequence[str], rows: Sequence[str]) -> int:
    """COPY pre-encoded rows, without line ends (as `copytext.join_rows` makes them)."""
    chunks = ("\n".join(rows[s : s + 20_000]) + "\n" for s in range(0, len(rows), 20_000))
    copy_chunks(session, table, columns, chunks)
    return len(rows)


def insert_values(session: Session, tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]) -> None:
    """Rows for one or more tables in ONE multi-row INSERT statement (the later tables through data-modifying
    CTEs), as the session's own login: the tables' row-level security policies check every row, and no role
    switch is needed. For a small run's rows, where the writer's role switch and a COPY per table cost more
    round trips than the rows themselves (`SMALL_WRITE_ROWS`). Values go as bound parameters, so text needs no
    escaping; PostgreSQL coerces each to its column's type, as COPY does."""
    parts: list[tuple[str, list[Any]]] = []
    for table, columns, rows in tables:
        if not rows:
            continue
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * len(rows))
        parts.append((sql, [value for r in rows for value in r]))
    if not parts:
        return
    *first, (last, last_params) = parts
    ctes = [f"w{n} AS ({sql})" for n, (sql, _) in enumerate(first)]
    statement = (f"WITH {', '.join(ctes)} " if ctes else "") + last
    params = [value for _, p in first for value in p] + last_params
    assert len(params) < 65_535, "a multi-row INSERT is for small writes"
    session.connection().exec_driver_sql(statement, tuple(params))


# Up to this many rows per table, a run's per-sale rows and slices go in one multi-row INSERT under row-level
# security (`insert_values`) instead of a COPY as the bulk writer. A COPY costs the role switch around it and a
# round trip of its own per table (4-6 for a dry run's two tables); an INSERT binds each value as a parameter,
# which costs more client CPU per row than COPY's text. 500 rows of 9 columns is 4,500 parameters (the protocol's
# ceiling is 65,535), well inside the range where one round trip beats four; past a few thousand rows COPY's
# streaming, which overlaps encoding with the server's ingest, is the faster path.
SMALL_WRITE_ROWS = 500


def temp_table(session: Session, name: str, definition: str) -> None:
    """A scratch table that disappears at commit."""
    session.connection().exec_driver_sql(f"CREATE TEMP TABLE {name} ({definition}) ON COMMIT DROP")
