"""Engines and sessions. Processes log in as `asora_app_login` (tenant-scoped by row-level security) and, for
the few cross-tenant system jobs, as `asora_ops_login`, which may only call the `asora_sys_*` functions
(docs/security.md; the logins are derived from ASORA_DATABASE_URL in shared/dblogin.py). Neither can assume
another role, and no setting opens every tenant.

Every tenant-scoped transaction states its tenant with `SET LOCAL` and signs it: the policies honour
`asora.tenant_id` only with `asora.tenant_sig`, a MAC over the backend's pid and the tenant under a key the
tenant login cannot read (`scope_signature`). Both settings go in one statement, so a scope costs no extra round
trip.

Lock waits and idle transactions are bounded on every connection (`lock_timeout`,
`idle_in_transaction_session_timeout`, TCP keepalives), so neither a waiting request nor a frozen or
partitioned worker can hold a tenant up for longer than those bounds.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from shared import dblogin
from shared.config import get_settings

APP_ROLE = dblogin.APP_GROUP  # the tenant role
APP_LOGIN = dblogin.APP_LOGIN  # the role the processes log in as


class SystemScope:
    """The marker for cross-tenant work (`unit_of_work(SYSTEM_SCOPE)`): an object, not a string, so no tenant id
    a caller supplies (an operator's X-Tenant-ID, a CLI argument) can ever select the system login."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SYSTEM_SCOPE"


SYSTEM_SCOPE: Final = SystemScope()


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
        # Large runs stage millions of rows in temporary tables; keep them in memory (the setting must come
        # before a session's first temporary table, so it is a start-up option: no round trip).
        "-c temp_buffers=256MB",
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


def json_text(value: Any) -> str:
    """How every JSONB value is written: one with a date or a decimal in it is stored as its text rather than
    failing the transaction (the engines' serializer; statements sent as driver SQL use it too)."""
    return json.dumps(value, default=str)


# A pooled connection that has sat unused for longer than this is pinged before it is handed out, and replaced
# if the server no longer answers (a restart, an idle timeout, a terminated backend). One used more recently
# than that is not: under load every checkout would otherwise cost a round trip (SQLAlchemy's pool_pre_ping),
# and a connection that breaks in use anyway is detected by the statement that fails, which invalidates the
# pool's older connections with it.
PING_AFTER_IDLE_SECONDS = 1.0
_IDLE_SINCE = "asora.idle_since"


@dataclass(frozen=True, slots=True)
class Insert:
    """One INSERT as driver SQL whose parameters are written `%({p}name)s`: sent as a statement of its own
    (`execute_insert`), or as a CTE of a larger statement, where `{p}` becomes that CTE's own prefix so that two
    of them never share a parameter name (the job numbering statement, shared/jobs/service.py)."""

    sql: str
    params: dict[str, Any]

    def text(self, prefix: str = "") -> str:
        return self.sql.replace("{p}", prefix)

    def size(self) -> int:
        """The bytes its text and binary parameters carry."""
        return sum(len(v) for v in self.params.values() if isinstance(v, str | bytes))

    def prefixed(self, prefix: str) -> dict[str, Any]:
        return {prefix + name: value for name, value in self.params.items()}


def execute_insert(session: Session, insert: Insert) -> None:
    session.connection().exec_driver_sql(insert.text(), insert.params)


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure of the ping: the pool replaces the connection and retries
            raise DisconnectionError(f"a pooled connection did not answer its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("a pooled connection did not answer its ping")


def make_engine(url: str, *, statement_timeout_ms: int = 0, **kwargs: Any) -> Engine:
    """An engine that logs in with `url` as it is: the role is the URL's (no SET ROLE on connect)."""
    connect_args = {
        "application_name": kwargs.pop("application_name", _process_name()),
        **connection_options(statement_timeout_ms=statement_timeout_ms),
    }
    engine = create_engine(url, connect_args=connect_args, json_serializer=json_text, **kwargs)
    _ping_when_idle(engine)
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
    reset_engines()


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The tenant login's engine: every tenant-scoped session of the process."""
    url = dblogin.app_url(database_url())
    return make_engine(url, statement_timeout_ms=_statement_timeout_ms, pool_size=10, max_overflow=30)


@lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


@lru_cache(maxsize=1)
def get_system_engine() -> Engine:
    """The system login's engine (relay, reaper, metrics, operator commands): `asora_sys_*` functions only."""
    return make_engine(dblogin.ops_url(database_url()), pool_size=2, max_overflow=8)


@lru_cache(maxsize=1)
def get_system_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(get_system_engine(), expire_on_commit=False)


def reset_engines() -> None:
    """Forget every engine and key (a new ASORA_DATABASE_URL; tests)."""
    for cached in (get_engine, get_sessionmaker, get_system_engine, get_system_sessionmaker, _scope_key):
        cached.cache_clear()


@lru_cache(maxsize=4)
def _scope_key(url: str) -> bytes:
    with get_system_engine().connect() as conn:
        key = conn.exec_driver_sql("SELECT asora_sys_scope_key()").scalar()
    if not isinstance(key, bytes | memoryview) or len(key) != 32:
        raise RuntimeError("the database has no scope key (is it migrated to head?)")
    return bytes(key)


def scope_signature(backend_pid: int, tenant_id: str) -> str:
    """The MAC `asora_tenant()` (migration 0013) checks: SHA-256(k || SHA-256(k || "pid:tenant"))."""
    key = _scope_key(database_url())
    inner = hashlib.sha256(key + f"{backend_pid}:{tenant_id}".encode()).digest()
    return hashlib.sha256(key + inner).hexdigest()


# Sent as driver SQL (no SQLAlchemy compilation): it opens every tenant-scoped transaction.
_SET_SCOPE = "SELECT set_config('asora.tenant_id', %(t)s, true), set_config('asora.tenant_sig', %(s)s, true)"


def backend_pid(connection: Connection) -> int:
    raw = connection.connection.driver_connection
    assert raw is not None
    return int(raw.info.backend_pid)


def scope_params(connection: Connection, tenant_id: str) -> dict[str, str]:
    """Bind parameters of a statement that sets `asora.tenant_id` (:t) and `asora.tenant_sig` (:s). Any string
    may be signed: one that is no tenant's id (`*` included) scopes the transaction to nothing."""
    return {"t": tenant_id, "s": scope_signature(backend_pid(connection), tenant_id)}


def set_tenant(session: Session, tenant_id: str) -> None:
    """Scope the current transaction to one tenant for row-level security."""
    connection = session.connection()
    connection.exec_driver_sql(_SET_SCOPE, scope_params(connection, tenant_id))


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
        connection.exec_driver_sql(_SET_SCOPE, scope_params(connection, tenant_id))


@contextmanager
def unit_of_work(tenant_id: str | SystemScope | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception. `tenant_id=SYSTEM_SCOPE` opens the
    system login instead, for the relay, reaper and operator views that legitimately span tenants: there the
    session may only call the `asora_sys_*` functions."""
    if isinstance(tenant_id, SystemScope):
        with get_system_sessionmaker()() as session, session.begin():
            yield session
        return
    with get_sessionmaker()() as session, session.begin():
        if tenant_id is not None:
            set_tenant(session, tenant_id)
        yield session
