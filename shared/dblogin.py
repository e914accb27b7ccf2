"""The two database logins the application uses (docs/security.md), derived from the owner's URL.

`ASORA_DATABASE_URL` stays what users give: the owner's (administrator's) URL, used only by migrations. The
processes log in as
- `asora_app_login`, a member of `asora_app` (tenant-scoped by row-level security; no system scope), and
- `asora_ops_login`, a member of `asora_ops` (may only execute the `asora_sys_*` functions),
on the same host and database. Their passwords are derived from the owner's password (HMAC-SHA256 with the role
name), so every process and every migration of one deployment agrees on them without a file to share, and
neither password reveals the owner's. `ASORA_APP_DATABASE_URL` / `ASORA_OPS_DATABASE_URL` override the
derivation where an operator made the logins itself (a managed database); then nothing here creates roles.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import psycopg
from sqlalchemy import make_url

from shared.config import get_settings

APP_LOGIN, APP_GROUP = "asora_app_login", "asora_app"
OPS_LOGIN, OPS_GROUP = "asora_ops_login", "asora_ops"
WRITER = "asora_writer"
# (login, the group whose privileges it holds, a role it may only SET ROLE to for one COPY)
LOGINS = ((APP_LOGIN, APP_GROUP, WRITER), (OPS_LOGIN, OPS_GROUP, None))


def _password(owner_url: str, role: str) -> str:
    secret = (make_url(owner_url).password or "").encode()
    return hmac.new(secret or b"asora", role.encode(), hashlib.sha256).hexdigest()


def login_url(owner_url: str, role: str) -> str:
    """The owner's URL with `role` and its derived password in place of the owner's credentials."""
    url = make_url(owner_url).set(username=role, password=_password(owner_url, role))
    return url.render_as_string(hide_password=False)


def app_url(owner_url: str) -> str:
    return get_settings().app_database_url or login_url(owner_url, APP_LOGIN)


def ops_url(owner_url: str) -> str:
    return get_settings().ops_database_url or login_url(owner_url, OPS_LOGIN)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# Roles are cluster-wide: test sessions and `asora migrate` on other databases of one server may make them at
# the same moment, and PostgreSQL reports the loser's CREATE ROLE or GRANT as a unique or concurrency error.
_RETRYABLE = (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject, psycopg.errors.InternalError)


def ensure_logins(owner_url: str) -> None:
    """Create (or bring up to date) the two login roles, members of their groups only. Idempotent; run by
    `shared.migrate.upgrade` as the owner. Skipped when the logins are configured explicitly."""
    settings = get_settings()
    if settings.app_database_url or settings.ops_database_url:
        return
    for attempt in range(5):
        try:
            with psycopg.connect(_libpq(owner_url), autocommit=True) as conn:
                pg16 = int(conn.info.server_version) >= 160000
                for login, group, settable in LOGINS:
                    if not _exists(conn, "pg_roles", "rolname", group):
                        continue  # not migrated that far yet
                    # The bulk writer only where migration 0013's statement check guards it (docs/security.md).
                    guarded = settable if _exists(conn, "pg_proc", "proname", "asora_writer_check") else None
                    _ensure_login(conn, login, group, guarded, _password(owner_url, login), pg16=pg16)
            return
        except _RETRYABLE:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def _exists(conn: psycopg.Connection[tuple[object, ...]], catalog: str, column: str, name: str) -> bool:
    return conn.execute(f"SELECT 1 FROM {catalog} WHERE {column} = %s", (name,)).fetchone() is not None


def _ensure_login(
    conn: psycopg.Connection[tuple[object, ...]],
    login: str,
    group: str,
    settable: str | None,
    password: str,
    *,
    pg16: bool,
) -> None:
    attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(f"{verb} ROLE {login} {attributes} PASSWORD '{password}'")
    # The login holds its group's privileges and nothing else: no other membership but the bulk writer's, and
    # (PostgreSQL 16) no SET ROLE to the group and no inheriting the writer's privileges, so `SET ROLE` can reach
    # the insert-only writer at most and `RESET ROLE` goes back to the login.
    wanted = {
        group: " WITH INHERIT TRUE, SET FALSE",
        **({settable: " WITH INHERIT FALSE, SET TRUE"} if settable else {}),
    }
    held = {
        str(name)
        for (name,) in conn.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid"
            " WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = %s)",
            (login,),
        ).fetchall()
    }
    for other in held - set(wanted):
        conn.execute(f'REVOKE "{other}" FROM {login}')
    for role, options in wanted.items():
        if role not in held:
            conn.execute(f"GRANT {role} TO {login}" + (options if pg16 else ""))
