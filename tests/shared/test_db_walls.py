"""The database's own walls (docs/security.md, migration 0013), each tried by breaking it from a connection of
the application's own logins, as SQL injected into a tenant's session would:
- the tenant login cannot become anyone else (RESET ROLE, SET ROLE, SET SESSION AUTHORIZATION);
- no setting opens every tenant or another tenant: '*', another tenant's id, a signature replayed from this or
  another connection, a key planted in a temporary table;
- global tables are read-only; the system functions and the scope key are out of its reach; the bulk writer
  too, so another tenant's rows cannot be COPYed in;
- the system login may call the system functions and do nothing else.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from shared import db, dblogin
from shared.base import new_id
from shared.inventory.models import Category, Item
from shared.tenants import service as tenants

SYSTEM_FUNCTIONS = (
    "asora_sys_scope_key()",
    "asora_sys_ensure_operator_key('key_x', 'x', 'h')",
    "asora_sys_create_operator_key('key_x', 'x', 'h', NULL, NULL)",
    "asora_sys_job_counts()",
    "asora_sys_wake_streams(now(), now(), 10)",
    "asora_sys_stale_jobs(now())",
    "asora_sys_purge_idempotency_keys(now())",
    "asora_sys_run_activity()",
    "asora_sys_weekly_runs()",
    "asora_sys_end_frozen_fence_holder(0)",
)
GLOBAL_WRITES = (
    "UPDATE plan_limits SET maximum = NULL",
    "DELETE FROM plan_limits",
    "INSERT INTO plans (name) VALUES ('unlimited')",
    "UPDATE plans SET name = name",
    "DELETE FROM plans WHERE name = 'free'",
    "TRUNCATE plans CASCADE",
    "UPDATE alembic_version SET version_num = '0001'",
    "DELETE FROM alembic_version",
    "INSERT INTO alembic_version VALUES ('9999')",
)
OTHER_ROLES = ("postgres", "asora_system", "asora_ops", "asora_ops_login", "pg_read_all_data", "pg_write_all_data")


def _tenant_with_item(prefix: str) -> str:
    tenant_id = f"{prefix}-{secrets.token_hex(4)}"
    with db.unit_of_work() as session:
        tenants.create_tenant(
            session, tenant_id=tenant_id, name=tenant_id, plan="free", role_model="standard", actor=None
        )
    with db.unit_of_work(tenant_id) as session:
        category = Category(id=new_id("cat"), tenant_id=tenant_id, name="c")
        session.add(category)
        session.add(Item(id=new_id("item"), tenant_id=tenant_id, sku="SKU-1", name="i", category_id=category.id))
    return tenant_id


@pytest.fixture(scope="module")
def two_tenants(service_urls: dict[str, str]) -> tuple[str, str]:
    return _tenant_with_item("walls-a"), _tenant_with_item("walls-b")


def _connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True)


@pytest.fixture
def app(service_urls: dict[str, str]) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A connection as the application's tenant login, exactly as the engine makes it."""
    with _connect(dblogin.app_url(db.database_url())) as conn:
        yield conn


@pytest.fixture
def ops(service_urls: dict[str, str]) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with _connect(dblogin.ops_url(db.database_url())) as conn:
        yield conn


def _refused(conn: psycopg.Connection[tuple[object, ...]], statement: str) -> str:
    """Run `statement`, which must fail for lack of privilege; returns the error's text."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as raised:
        conn.execute(statement)
    return str(raised.value)


def _who(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[object, ...]:
    row = conn.execute(
        "SELECT current_user, session_user, r.rolsuper, r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user"
    ).fetchone()
    assert row is not None
    return row


def _items(conn: psycopg.Connection[tuple[object, ...]], scope: str | None, sig: str | None) -> list[str]:
    """The tenant ids of the items this connection sees with these settings (one transaction)."""
    with conn.transaction():
        conn.execute(
            "SELECT set_config('asora.tenant_id', %s, true), set_config('asora.tenant_sig', %s, true)",
            (scope or "", sig or ""),
        )
        return [str(t) for (t,) in conn.execute("SELECT DISTINCT tenant_id FROM items ORDER BY 1").fetchall()]


def test_the_tenant_login_is_no_superuser_and_reset_role_goes_nowhere(
    app: psycopg.Connection[tuple[object, ...]],
) -> None:
    assert _who(app) == (dblogin.APP_LOGIN, dblogin.APP_LOGIN, False, False)
    app.execute("RESET ROLE")
    assert _who(app) == (dblogin.APP_LOGIN, dblogin.APP_LOGIN, False, False)
    members = app.execute(
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid"
        " WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    ).fetchall()
    assert sorted(members) == [(dblogin.APP_GROUP,), (dblogin.WRITER,)]  # not the system roles


@pytest.mark.parametrize("role", OTHER_ROLES)
def test_the_tenant_login_cannot_set_role_to_another_role(
    app: psycopg.Connection[tuple[object, ...]], role: str
) -> None:
    _refused(app, f"SET ROLE {role}")
    _refused(app, f"SET SESSION AUTHORIZATION {role}")
    assert _who(app)[0] == dblogin.APP_LOGIN


def test_set_role_to_its_own_group_gains_nothing(app: psycopg.Connection[tuple[object, ...]]) -> None:
    """PostgreSQL 16 refuses it (the membership is granted WITH SET FALSE); 15 allows it, to a role that holds
    exactly the login's privileges and no more."""
    if int(app.info.server_version) >= 160000:
        _refused(app, f"SET ROLE {dblogin.APP_GROUP}")
        return
    app.execute(f"SET ROLE {dblogin.APP_GROUP}")
    assert _who(app)[2:] == (False, False)
    _refused(app, "SET ROLE asora_system")


def test_no_setting_opens_every_tenant(
    app: psycopg.Connection[tuple[object, ...]], two_tenants: tuple[str, str]
) -> None:
    a, _ = two_tenants
    assert _items(app, "*", None) == []
    assert _items(app, "*", db.scope_signature(app.info.backend_pid, "*")) == []  # even signed: no policy has '*'
    assert _items(app, None, None) == []
    assert _items(app, a, db.scope_signature(app.info.backend_pid, a)) == [a]  # the real thing works


def test_another_tenants_scope_cannot_be_forged(
    app: psycopg.Connection[tuple[object, ...]], two_tenants: tuple[str, str]
) -> None:
    a, b = two_tenants
    pid = app.info.backend_pid
    own = db.scope_signature(pid, a)
    assert _items(app, b, None) == []  # the tenant id alone
    assert _items(app, b, own) == []  # this connection's signature of its own tenant, replayed for another
    with _connect(dblogin.app_url(db.database_url())) as other:
        assert _items(app, b, db.scope_signature(other.info.backend_pid, b)) == []  # another connection's
    assert _items(app, b, hashlib.sha256(f"{pid}:{b}".encode()).hexdigest()) == []  # a guess without the key
    with app.transaction():
        app.execute(
            "SELECT set_config('asora.tenant_id', %s, true), set_config('asora.tenant_sig', %s, true)", (b, own)
        )
        assert app.execute("UPDATE items SET name = 'stolen'").rowcount == 0
        assert app.execute("DELETE FROM items").rowcount == 0
        assert app.execute("SELECT count(*) FROM tenants").fetchone() == (0,)
    with app.transaction(force_rollback=True):
        app.execute(
            "SELECT set_config('asora.tenant_id', %s, true), set_config('asora.tenant_sig', %s, true)", (b, own)
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            app.execute("INSERT INTO categories (id, tenant_id, name) VALUES ('cat_planted', %s, 'x')", (b,))


def test_a_key_planted_in_a_temporary_table_is_not_read(
    app: psycopg.Connection[tuple[object, ...]], two_tenants: tuple[str, str]
) -> None:
    """`asora_tenant()` and the system functions name their tables with pg_temp searched last: a temporary
    `asora_scope_keys` holding a key the attacker knows signs nothing."""
    _, b = two_tenants
    key = secrets.token_bytes(32)
    app.execute("CREATE TEMP TABLE asora_scope_keys (id integer, key bytea)")
    app.execute("INSERT INTO asora_scope_keys VALUES (1, %s)", (key,))
    inner = hashlib.sha256(key + f"{app.info.backend_pid}:{b}".encode()).digest()
    assert _items(app, b, hashlib.sha256(key + inner).hexdigest()) == []


@pytest.mark.parametrize("statement", GLOBAL_WRITES)
def test_global_tables_are_read_only_to_the_tenant_login(
    app: psycopg.Connection[tuple[object, ...]], statement: str
) -> None:
    _refused(app, statement)


def test_global_tables_stay_readable(app: psycopg.Connection[tuple[object, ...]]) -> None:
    plans = {name for (name,) in app.execute("SELECT name FROM plans").fetchall()}
    assert {"free", "pro", "enterprise"} <= plans
    assert app.execute("SELECT version_num FROM alembic_version").fetchone() is not None


@pytest.mark.parametrize("call", SYSTEM_FUNCTIONS)
def test_the_tenant_login_cannot_call_the_system_functions(
    app: psycopg.Connection[tuple[object, ...]], call: str
) -> None:
    assert "permission denied for function" in _refused(app, f"SELECT * FROM {call}")


def test_the_tenant_login_cannot_read_the_scope_key_or_unlock_the_tables(
    app: psycopg.Connection[tuple[object, ...]],
) -> None:
    _refused(app, "SELECT key FROM public.asora_scope_keys")
    _refused(app, "ALTER TABLE items DISABLE ROW LEVEL SECURITY")
    _refused(app, "ALTER TABLE items NO FORCE ROW LEVEL SECURITY")
    _refused(app, "DROP POLICY tenant_isolation ON items")
    _refused(app, "CREATE TABLE public.planted (id int)")
    _refused(app, "CREATE OR REPLACE FUNCTION public.asora_tenant() RETURNS text LANGUAGE sql AS $$ SELECT 'x' $$")


def _copy_run_sale(conn: psycopg.Connection[tuple[object, ...]], tenant_id: str) -> None:
    with conn.cursor().copy(
        "COPY run_sales (run_id, sale_id, tenant_id, sku, sale_date, quantity, cogs) FROM STDIN"
    ) as copy:
        copy.write_row(("run_x", f"S-{secrets.token_hex(4)}", tenant_id, "SKU-1", "2024-01-01T00:00:00Z", "1", "1"))


def _as_writer(conn: psycopg.Connection[tuple[object, ...]], scope: str, sig: str | None) -> None:
    conn.execute(
        "SELECT set_config('asora.tenant_id', %s, true), set_config('asora.tenant_sig', %s, true)", (scope, sig or "")
    )
    conn.execute("SET LOCAL ROLE asora_writer")


def test_the_tenant_login_cannot_copy_into_a_bulk_table_under_row_level_security(
    app: psycopg.Connection[tuple[object, ...]], two_tenants: tuple[str, str]
) -> None:
    a, _ = two_tenants
    with app.transaction(force_rollback=True):
        app.execute(
            "SELECT set_config('asora.tenant_id', %s, true), set_config('asora.tenant_sig', %s, true)",
            (a, db.scope_signature(app.info.backend_pid, a)),
        )
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="row-level security"):
            _copy_run_sale(app, a)


def test_the_bulk_writer_writes_the_signed_tenants_rows_and_reads_nothing(
    app: psycopg.Connection[tuple[object, ...]], two_tenants: tuple[str, str]
) -> None:
    a, _ = two_tenants
    with app.transaction(force_rollback=True):
        _as_writer(app, a, db.scope_signature(app.info.backend_pid, a))
        _copy_run_sale(app, a)  # the one thing it is for
        assert _who(app)[0] == "asora_writer"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("SELECT count(*) FROM run_sales")
    for statement in ("SELECT count(*) FROM ledger_events", "UPDATE lots SET status = 'x'", "DELETE FROM run_sales"):
        with app.transaction(force_rollback=True):
            _as_writer(app, a, db.scope_signature(app.info.backend_pid, a))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute(statement)
    assert _who(app)[0] == dblogin.APP_LOGIN  # SET LOCAL ended with the transaction


@pytest.mark.parametrize("forgery", ["unsigned", "replayed", "no scope"])
def test_the_bulk_writer_cannot_copy_another_tenants_rows(
    app: psycopg.Connection[tuple[object, ...]], two_tenants: tuple[str, str], forgery: str
) -> None:
    """The writer bypasses row-level security so that it can COPY. Its CHECK (migration 0005) trusts the unsigned
    setting; the statement check of 0013 compares every row with the signed scope."""
    a, b = two_tenants
    sig = {"unsigned": None, "replayed": db.scope_signature(app.info.backend_pid, a), "no scope": None}[forgery]
    with app.transaction(force_rollback=True):
        _as_writer(app, "" if forgery == "no scope" else b, sig)
        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.CheckViolation)):
            _copy_run_sale(app, b)


def test_the_bulk_writer_cannot_switch_the_scope_mid_statement(
    app: psycopg.Connection[tuple[object, ...]], two_tenants: tuple[str, str]
) -> None:
    """An INSERT ... SELECT that sets `asora.tenant_id` to another tenant as it produces its rows passes the
    per-row CHECK; the check at the statement's end still refuses it."""
    a, b = two_tenants
    with app.transaction(force_rollback=True):
        _as_writer(app, a, db.scope_signature(app.info.backend_pid, a))
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="signed tenant scope"):
            app.execute(
                "INSERT INTO run_sales (run_id, sale_id, tenant_id, sku, sale_date, quantity, cogs)"
                " SELECT 'run_x', 'S-mid', set_config('asora.tenant_id', %s, true), 'SKU-1', now(), 1, 1",
                (b,),
            )


def test_the_system_login_may_only_call_the_system_functions(
    ops: psycopg.Connection[tuple[object, ...]], two_tenants: tuple[str, str]
) -> None:
    assert _who(ops)[:3] == (dblogin.OPS_LOGIN, dblogin.OPS_LOGIN, False)
    assert ops.execute("SELECT count(*) FROM asora_sys_job_counts()").fetchone() is not None
    for table in ("items", "jobs", "api_keys", "tenants", "ledger_events", "asora_scope_keys", "plans"):
        _refused(ops, sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)).as_string(ops))
    for role in ("asora_system", "asora_app", "asora_writer", "postgres"):
        _refused(ops, f"SET ROLE {role}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _items(ops, two_tenants[0], db.scope_signature(ops.info.backend_pid, two_tenants[0]))


def test_every_system_function_is_a_definer_with_a_pinned_search_path(
    app: psycopg.Connection[tuple[object, ...]],
) -> None:
    rows = app.execute(
        "SELECT p.proname, p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner) FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
        " AND (p.proname LIKE 'asora\\_sys\\_%' OR p.proname IN ('asora_tenant', 'asora_key_principal'))"
    ).fetchall()
    assert len(rows) == len(SYSTEM_FUNCTIONS) + 2  # asora_writer_check is a trigger and runs as the writer
    for name, definer, config, owner in rows:
        assert definer, name
        assert config == ["search_path=pg_catalog, public, pg_temp"], name
        assert owner == ("asora_reaper" if name == "asora_sys_end_frozen_fence_holder" else "asora_system"), name


def test_the_reaper_role_may_signal_backends_and_touch_no_table(app: psycopg.Connection[tuple[object, ...]]) -> None:
    """`asora_reaper` owns the one function that may end a frozen fence holder (migration 0014): it has
    PostgreSQL's signalling and statistics powers, no privilege on any table, and no login is a member of it."""
    row = app.execute(
        "SELECT pg_has_role('asora_reaper', 'pg_signal_backend', 'USAGE'),"
        " pg_has_role('asora_reaper', 'pg_read_all_stats', 'USAGE'),"
        " (SELECT rolcanlogin OR rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'asora_reaper')"
    ).fetchone()
    assert row == (True, True, False)
    tables = app.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        " AND c.relkind = 'r' AND (has_table_privilege('asora_reaper', c.oid, 'SELECT')"
        " OR has_table_privilege('asora_reaper', c.oid, 'INSERT, UPDATE, DELETE'))"
    ).fetchall()
    assert tables == []
    for login in (dblogin.APP_LOGIN, dblogin.OPS_LOGIN):
        assert app.execute("SELECT pg_has_role(%s, 'asora_reaper', 'MEMBER')", (login,)).fetchone() == (False,)


def test_no_tenant_id_a_caller_supplies_selects_the_system_login(service_urls: dict[str, str]) -> None:
    """`SYSTEM_SCOPE` is an object, not '*': an operator's `X-Tenant-ID: *` is an unknown tenant (404), and a
    unit of work for '*' is an ordinary tenant unit on the tenant login that sees nothing."""
    from sqlalchemy import text

    from shared.errors import NotFound

    raw = tenants.KEY_PREFIX + "walls-" + secrets.token_hex(8)
    with db.unit_of_work(db.SYSTEM_SCOPE) as system:
        tenants.ensure_operator_key(system, raw)
    with pytest.raises(NotFound):
        tenants.authenticate(raw, "*")
    with db.unit_of_work("*") as session:
        assert session.scalar(text("SELECT current_user")) == dblogin.APP_LOGIN
        assert session.scalar(text("SELECT count(*) FROM tenants")) == 0
    with db.unit_of_work(db.SYSTEM_SCOPE) as system:
        assert system.scalar(text("SELECT current_user")) == dblogin.OPS_LOGIN


def test_the_system_jobs_work_through_the_system_login(two_tenants: tuple[str, str]) -> None:
    """The relay's wake-up (which marks the stream's jobs scheduled, under their foreign keys' triggers), the
    reaper's candidates, the purge and the metrics, each as the relay and the API run them."""
    from datetime import timedelta

    from sqlalchemy import text

    from shared.base import utcnow
    from shared.jobs import runner
    from shared.jobs import service as jobs
    from shared.jobs.kinds import JobKind
    from shared.jobs.models import Job
    from tests.support import owner_unit

    a, _ = two_tenants
    with db.unit_of_work(a) as session:
        accepted = jobs.accept_job(session, tenant_id=a, kind=JobKind.COUNT, payload={}, actor=None)
        jobs.number_pending(session)
    with db.unit_of_work(db.SYSTEM_SCOPE) as system:
        heads = runner.wake_streams(system, republish_after_seconds=3600)
        counts = system.execute(text("SELECT kind, status, n FROM asora_sys_job_counts()")).all()
        stale = system.execute(text("SELECT id FROM asora_sys_stale_jobs(:c)"), {"c": utcnow() + timedelta(days=1)})
        assert jobs.purge_idempotency_keys(system, retention_days=3650) >= 0
    assert accepted.id in {head.id for head in heads if head.tenant_id == a}
    assert ("count", "queued") in {(kind, status) for kind, status, _ in counts}
    assert accepted.id not in {job_id for (job_id,) in stale}  # queued, not running
    with owner_unit() as owner:
        assert owner.get(Job, accepted.id).published_at is not None  # type: ignore[union-attr]
