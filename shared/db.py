"""Engines and sessions. Every application connection runs as the `asora_app` role, so row-level security
applies, and every tenant-scoped transaction states its tenant with `SET LOCAL`.

Lock waits and idle transactions are bounded on every connection (`lock_timeout`,
`idle_in_transaction_session_timeout`, TCP keepalives), so neither a waiting request nor a frozen or
partitioned worker can hold a tenant up for longer than those bounds.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from shared.config import get_settings

APP_ROLE = "asora_app"
SYSTEM_SCOPE = "*"


def _process_name() -> str:
    """`asora:<program>:<pid>` (pg_stat_activity's application_name): which process holds a connection."""
    program = os.path.basename(sys.argv[0]) if sys.argv else "python"
    return f"asora:{program[:40]}:{os.getpid()}"


def connection_options(*, statement_timeout_ms: int = 0) -> dict[str, Any]:
    """libpq connection parameters every Asora process uses: bounded lock waits and idle transactions, and TCP
    keepalives on both ends so that a dead peer is noticed in about a minute rather than the kernel's two hours:
    libpq's (the process notices a lost server) and the server's own `tcp_keepalives_*`/`tcp_user_timeout` for
    this session (the server notices a partitioned worker even mid-statement, ends its transaction and
    releases the tenant's fence). The server ignores the latter on a Unix socket, where no partition exists."""
    settings = get_settings()
    options = [
        f"-c lock_timeout={settings.db_lock_timeout_ms}",
        f"-c idle_in_transaction_session_timeout={settings.db_idle_in_transaction_timeout_ms}",
        "-c tcp_keepalives_idle=30",
        "-c tcp_keepalives_interval=10",
        "-c tcp_keepalives_count=3",
        "-c tcp_user_timeout=60000",
    ]
    if statement_timeout_ms:
        options.append(f"-c statement_timeout={statement_timeout_ms}")
    return {
        "options": " ".join(options),
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 60_000,
    }


def _json_text(value: Any) -> str:
    return json.dumps(value, default=str)


def make_engine(url: str, *, app_role: bool = True, statement_timeout_ms: int = 0, **kwargs: Any) -> Engine:
    connect_args = {
        "application_name": kwargs.pop("application_name", _process_name()),
        **connection_options(statement_timeout_ms=statement_timeout_ms),
    }
    # JSONB values (job payloads, audit details) with a date or a decimal in them are stored as their text
    # rather than failing the transaction.
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args, json_serializer=_json_text, **kwargs)
    if app_role:

        @event.listens_for(engine, "connect")
        def _assume_app_role(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cur:
                # Large runs stage millions of rows in temporary tables; keep them in memory (the setting
                # must come before a session's first temporary table).
                cur.execute("SET temp_buffers = '256MB'")
                cur.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s AND pg_has_role(current_user, oid, 'MEMBER')",
                    (APP_ROLE,),
                )
                if cur.fetchone() is not None:
                    cur.execute(f"SET ROLE {APP_ROLE}")
            dbapi_connection.commit()

    return engine


def database_url() -> str:
    url = get_settings().database_url
    if url is None:
        raise RuntimeError("ASORA_DATABASE_URL is not set (run through `asora up`, or set it)")
    return url


# A process states its role once (`configure_process`): the API bounds its statements, workers do not.
_statement_timeout_ms = 0


def configure_process(*, statement_timeout_ms: int = 0) -> None:
    global _statement_timeout_ms  # noqa: PLW0603 - one setting per process, read when the engine is made
    _statement_timeout_ms = statement_timeout_ms
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(database_url(), statement_timeout_ms=_statement_timeout_ms, pool_size=10, max_overflow=30)


@lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


def set_tenant(session: Session, tenant_id: str) -> None:
    """Scope the current transaction to one tenant for row-level security."""
    session.execute(text("SELECT set_config('asora.tenant_id', :t, true)"), {"t": tenant_id})


_SCOPE = "asora.tenant_scope"


def scope_session(session: Session, tenant_id: str) -> None:
    """Scope every transaction this session begins (and the one it is in) to one tenant. The request edge
    calls this once after authentication; nothing else sets a request's tenant."""
    session.info[_SCOPE] = tenant_id
    if session.in_transaction():
        set_tenant(session, tenant_id)


@event.listens_for(Session, "after_begin")
def _apply_scope(session: Session, _transaction: Any, connection: Any) -> None:
    tenant_id = session.info.get(_SCOPE)
    if tenant_id is not None:
        connection.execute(text("SELECT set_config('asora.tenant_id', :t, true)"), {"t": tenant_id})


@contextmanager
def unit_of_work(tenant_id: str | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception. `tenant_id=SYSTEM_SCOPE` is for
    the relay, reaper and operator views that legitimately span tenants."""
    with get_sessionmaker()() as session, session.begin():
        if tenant_id is not None:
            set_tenant(session, tenant_id)
        yield session
