"""The database's own walls: a tenant scope the session cannot forge, no system scope for the application,
cross-tenant work only through a few SECURITY DEFINER functions, global tables read-only (docs/security.md).

- `asora.tenant_id` alone no longer scopes anything. Every tenant policy compares with `asora_tenant()`, which
  returns the setting only when `asora.tenant_sig` carries its MAC: SHA-256(k || SHA-256(k || pid ":" tenant)),
  with `k` a random key kept in `asora_scope_keys` (readable by `asora_system` only) and `pid` the backend's
  process id, so a signature is worth nothing on another connection. The application learns `k` through the
  system path (`asora_sys_scope_key`, below), never through its tenant login. The '*' system scope is gone
  from every policy.
- `asora_system` (NOLOGIN, no member) owns the system functions and is the one role with a policy that spans
  tenants. `asora_ops` (NOLOGIN; its login is `asora_ops_login`) may only EXECUTE those functions: it has no
  privilege on any table. `asora_app` (the tenant role; its login is `asora_app_login`) may execute none of
  them but `asora_key_principal` (resolving a bearer key's hash is authentication, and needs the hash).
- `plans`, `plan_limits` and `alembic_version` are read-only to `asora_app`.
- The bulk writer (0005) keeps its COPY, but each statement it runs is checked at its end against the signed
  scope: every row it inserted must be of that tenant (`asora_writer_check`, over a transition table).

The login roles themselves are made by `shared.migrate.upgrade` (shared/dblogin.py), which knows their
passwords. Where the migrating role cannot manage roles (a managed database), an operator creates
`asora_app`, `asora_ops`, `asora_system` and the two logins first (docs/security.md); the migration refuses to
run without them rather than leave the walls down.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

import secrets
from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GLOBAL_TABLES = ("plans", "plan_limits", "alembic_version")
WRITER_TABLES = ("ledger_events", "lots", "run_sales", "run_allocations")
OLD_SCOPE = "(SELECT current_setting('asora.tenant_id', true))"
NEW_SCOPE = "(SELECT asora_tenant())"
# pg_temp last, explicitly: otherwise a caller's temporary table of the same name would be found first.
DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp"

# name(arguments) -> (returns, body). Each is the whole of one system job's cross-tenant statement.
SYSTEM_FUNCTIONS: dict[str, tuple[str, str]] = {
    # The process's copy of the scope key (shared/db.py signs its tenant scopes with it).
    "asora_sys_scope_key()": ("bytea", "SELECT key FROM public.asora_scope_keys WHERE id = 1"),
    # ASORA_BOOTSTRAP_OPERATOR_KEY: every API process at start-up; the first insert wins.
    "asora_sys_ensure_operator_key(p_id text, p_name text, p_hash text)": (
        "void",
        "INSERT INTO api_keys (id, tenant_id, role, name, key_hash) VALUES (p_id, NULL, 'operator', p_name, p_hash)"
        " ON CONFLICT (key_hash) DO NOTHING",
    ),
    # `asora keys create --role operator`: the key and its audit row.
    "asora_sys_create_operator_key(p_id text, p_name text, p_hash text, p_actor_key_id text, p_actor_role text)": (
        "void",
        "INSERT INTO api_keys (id, tenant_id, role, name, key_hash) VALUES (p_id, NULL, 'operator', p_name, p_hash);"
        " INSERT INTO audit_events (tenant_id, actor_key_id, actor_role, action, target, outcome, details)"
        " VALUES (NULL, p_actor_key_id, p_actor_role, 'key.created', p_id, 'ok',"
        " jsonb_build_object('role', 'operator', 'name', p_name))",
    ),
    # The API's /metrics collector: jobs by kind and status.
    "asora_sys_job_counts()": (
        "TABLE (kind text, status text, n bigint)",
        "SELECT kind, status, count(*) FROM jobs GROUP BY kind, status",
    ),
    # The relay: the oldest queued job of each stream that needs a wake-up, every queued job of those streams
    # marked scheduled (shared/jobs/runner.py `wake_streams`).
    "asora_sys_wake_streams(p_now timestamptz, p_cutoff timestamptz, p_limit integer)": (
        "TABLE (id text, tenant_id text, kind text, stream text)",
        """BEGIN
           RETURN QUERY WITH heads AS (
             SELECT DISTINCT ON (j.tenant_id, j.stream) j.id, j.tenant_id, j.kind, j.stream FROM jobs j
             WHERE j.status = 'queued' AND (j.available_at IS NULL OR j.available_at <= p_now)
               AND (j.published_at IS NULL OR j.published_at < p_cutoff OR j.published_at < j.available_at)
             ORDER BY j.tenant_id, j.stream, j.seq LIMIT p_limit),
           marked AS (
             UPDATE jobs SET published_at = p_now FROM heads
             WHERE jobs.status = 'queued' AND jobs.tenant_id = heads.tenant_id AND jobs.stream = heads.stream)
           SELECT h.id::text, h.tenant_id::text, h.kind::text, h.stream::text FROM heads h
           ORDER BY h.tenant_id, h.stream;
           END""",
    ),
    # The reaper: running jobs whose worker stopped heartbeating (each is then handled in its tenant's scope).
    "asora_sys_stale_jobs(p_cutoff timestamptz)": (
        "TABLE (id text, tenant_id text, stream text)",
        "SELECT id, tenant_id, stream FROM jobs WHERE status = 'running' AND heartbeat_at < p_cutoff",
    ),
    # The relay's retention purge.
    "asora_sys_purge_idempotency_keys(p_cutoff timestamptz)": (
        "bigint",
        "WITH gone AS (DELETE FROM idempotency_keys WHERE created_at < p_cutoff RETURNING 1) SELECT count(*) FROM gone",
    ),
    # `asora ops health`: runs of every tenant in the last 24 hours (shared/ops.py).
    "asora_sys_run_activity()": (
        "TABLE (runs_24h bigint, failed_24h bigint, failed_1h bigint, refused_24h bigint)",
        """SELECT count(*),
             count(*) FILTER (WHERE status = 'failed' AND coalesce(error->>'code', 'INTERNAL') <> 'VALIDATION_FAILED'),
             count(*) FILTER (WHERE status = 'failed' AND coalesce(error->>'code', 'INTERNAL') <> 'VALIDATION_FAILED'
                              AND created_at >= now() - interval '1 hour'),
             count(*) FILTER (WHERE status = 'failed' AND error->>'code' = 'VALIDATION_FAILED')
           FROM runs WHERE created_at >= now() - interval '24 hours'""",
    ),
    # `asora ops metrics`: the weekly figures.
    "asora_sys_weekly_runs()": (
        "TABLE (active_tenants bigint, total_runs bigint, rollbacks bigint, failures bigint)",
        """SELECT count(DISTINCT tenant_id), count(*), count(*) FILTER (WHERE status = 'rolled_back'),
             count(*) FILTER (WHERE status = 'failed')
           FROM runs WHERE created_at >= now() - interval '7 days'""",
    ),
}
# Authentication: a bearer key's principal from its hash (callable by the tenant role, which must resolve keys
# before it knows the tenant; it reveals nothing to a caller who does not already hold the key).
KEY_PRINCIPAL = (
    "asora_key_principal(p_hash text)",
    "TABLE (id text, role text, tenant_id text, role_model text)",
    "SELECT k.id, k.role, k.tenant_id, t.role_model FROM api_keys k LEFT JOIN tenants t ON t.id = k.tenant_id"
    " WHERE k.key_hash = p_hash AND k.revoked_at IS NULL",
)
SYSTEM_GRANTS = (
    "GRANT USAGE ON SCHEMA public TO asora_system, asora_ops",
    "GRANT SELECT ON asora_scope_keys, tenants, runs TO asora_system",
    "GRANT SELECT, INSERT ON api_keys, audit_events TO asora_system",
    "GRANT SELECT, UPDATE (published_at) ON jobs TO asora_system",
    "GRANT SELECT, DELETE ON idempotency_keys TO asora_system",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO asora_system",
)


def _require_roles() -> None:
    op.execute("""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_app') THEN
            RAISE EXCEPTION 'role asora_app is missing; see docs/security.md';
          END IF;
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_system') THEN
            CREATE ROLE asora_system NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
          END IF;
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_ops') THEN
            CREATE ROLE asora_ops NOLOGIN NOSUPERUSER NOBYPASSRLS;
          END IF;
          -- The migrating role hands the functions to asora_system (and may act as it in a later migration
          -- that must touch every tenant's rows); it is never an application login.
          IF NOT pg_has_role(current_user, 'asora_system', 'MEMBER') THEN
            EXECUTE format('GRANT asora_system TO %I', current_user);
          END IF;
        EXCEPTION WHEN insufficient_privilege OR duplicate_object OR unique_violation THEN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_system')
             OR NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_ops') THEN
            RAISE EXCEPTION 'cannot create roles asora_system and asora_ops; see docs/security.md';
          END IF;
        END $$;
    """)


def _tenant_policies() -> list[tuple[str, str]]:
    """(table, tenant column) of every tenant_isolation policy."""
    rows = (
        op.get_bind()
        .exec_driver_sql(
            "SELECT tablename FROM pg_policies WHERE schemaname = 'public' AND policyname = 'tenant_isolation'"
            " ORDER BY tablename"
        )
        .all()
    )
    return [(table, "id" if table == "tenants" else "tenant_id") for (table,) in rows]


def _function(signature: str, returns: str, body: str, *, owner: str = "asora_system") -> None:
    # Those that write are PL/pgSQL: a set-returning SQL function runs its last statement lazily, outside the
    # query that would collect its after-trigger events (foreign keys), which PostgreSQL refuses.
    language = "plpgsql" if body.lstrip().startswith(("BEGIN", "DECLARE")) else "sql"
    op.execute(f"CREATE FUNCTION {signature} RETURNS {returns} LANGUAGE {language} {DEFINER} AS $fn$ {body} $fn$")
    op.execute(f"ALTER FUNCTION {signature} OWNER TO {owner}")
    op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")


def upgrade() -> None:
    _require_roles()
    op.execute(
        "CREATE TABLE asora_scope_keys (id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1), key bytea NOT NULL"
        " CHECK (length(key) = 32))"
    )
    op.execute("REVOKE ALL ON asora_scope_keys FROM PUBLIC, asora_app")
    op.execute(f"INSERT INTO asora_scope_keys (key) VALUES (decode('{secrets.token_hex(32)}', 'hex'))")
    for grant in SYSTEM_GRANTS:
        op.execute(grant)

    # STABLE: one value per statement; policies call it through a scalar subquery, so once per statement.
    op.execute(f"""
        CREATE FUNCTION asora_tenant() RETURNS text LANGUAGE sql STABLE PARALLEL RESTRICTED {DEFINER} AS $fn$
          SELECT CASE WHEN s.sig = encode(sha256(k.key || sha256(k.key || convert_to(
                            pg_backend_pid()::text || ':' || s.tenant, 'UTF8'))), 'hex')
                      THEN s.tenant END
          FROM (SELECT current_setting('asora.tenant_id', true) AS tenant,
                       current_setting('asora.tenant_sig', true) AS sig) s, public.asora_scope_keys k
          WHERE k.id = 1 $fn$""")
    op.execute("ALTER FUNCTION asora_tenant() OWNER TO asora_system")

    for table, column in _tenant_policies():
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({column} = {NEW_SCOPE}) WITH CHECK ({column} = {NEW_SCOPE})"
        )
        op.execute(f"CREATE POLICY system_access ON {table} TO asora_system USING (true) WITH CHECK (true)")

    for signature, (returns, body) in SYSTEM_FUNCTIONS.items():
        _function(signature, returns, body)
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO asora_ops")
    signature, returns, body = KEY_PRINCIPAL
    _function(signature, returns, body)
    op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO asora_app, asora_ops")

    # The bulk writer (0005) bypasses row-level security so that it can COPY; its CHECK trusts the unsigned
    # setting, which the session itself may change. Every statement it runs is now checked once, at its end,
    # against the signed scope: each row it inserted must be of that tenant (the transition table holds them).
    op.execute("""
        CREATE FUNCTION asora_writer_check() RETURNS trigger LANGUAGE plpgsql
        SET search_path = pg_catalog, public, pg_temp AS $fn$
        DECLARE scope text := asora_tenant();
        BEGIN
          IF current_user = 'asora_writer'
             AND (scope IS NULL OR EXISTS (SELECT FROM new_rows WHERE tenant_id IS DISTINCT FROM scope)) THEN
            RAISE EXCEPTION 'asora_writer may insert only rows of the signed tenant scope into %', TG_TABLE_NAME
              USING ERRCODE = 'insufficient_privilege';
          END IF;
          RETURN NULL;
        END $fn$""")
    for table in WRITER_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_writer_tenant AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows"
            " FOR EACH STATEMENT EXECUTE FUNCTION asora_writer_check()"
        )

    op.execute(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {', '.join(GLOBAL_TABLES)} FROM asora_app")
    op.execute(f"GRANT SELECT ON {', '.join(GLOBAL_TABLES)} TO asora_app")


def downgrade() -> None:
    for table, column in _tenant_policies():
        op.execute(f"DROP POLICY system_access ON {table}")
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({column} = {OLD_SCOPE} OR {OLD_SCOPE} = '*') "
            f"WITH CHECK ({column} = {OLD_SCOPE} OR {OLD_SCOPE} = '*')"
        )
    for signature in (*SYSTEM_FUNCTIONS, KEY_PRINCIPAL[0]):
        op.execute(f"DROP FUNCTION {signature}")
    for table in WRITER_TABLES:
        op.execute(f"DROP TRIGGER {table}_writer_tenant ON {table}")
    op.execute("DROP FUNCTION asora_writer_check()")
    op.execute("DROP FUNCTION asora_tenant()")
    op.execute("DROP TABLE asora_scope_keys")
    op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON plans, plan_limits, alembic_version TO asora_app")
    # The roles are cluster-wide and may serve other databases: only this database's grants go.
    op.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM asora_system")
    op.execute("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM asora_system")
    op.execute("REVOKE USAGE ON SCHEMA public FROM asora_system, asora_ops")
