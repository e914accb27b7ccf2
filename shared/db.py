"""Engine and session factories. Every application connection runs as the `asora_app` role, so row-level
security applies, and every tenant-scoped transaction states its tenant with `SET LOCAL`."""

from __future__ import annotations

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
    return f"asora:{os.path.basename(sys.argv[0]) if sys.argv else 'python'}"[:63]


def make_engine(url: str, *, app_role: bool = True, **kwargs: Any) -> Engine:
    connect_args = {"application_name": kwargs.pop("application_name", _process_name())}
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
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


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    return make_engine(database_url(), pool_size=10, max_overflow=10)


@lru_cache(maxsize=1)
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


def set_tenant(session: Session, tenant_id: str) -> None:
    """Scope the current transaction to one tenant for row-level security."""
    session.execute(text("SELECT set_config('asora.tenant_id', :t, true)"), {"t": tenant_id})


@contextmanager
def unit_of_work(tenant_id: str | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception. `tenant_id=SYSTEM_SCOPE` is for
    the relay, reaper and operator views that legitimately span tenants."""
    with get_sessionmaker()() as session, session.begin():
        if tenant_id is not None:
            set_tenant(session, tenant_id)
        yield session
