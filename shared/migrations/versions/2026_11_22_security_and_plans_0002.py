"""Application role, row-level security, append-only ledger and audit, plan limits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "api_keys",
    "audit_events",
    "bins",
    "categories",
    "costed_skus",
    "hubs",
    "idempotency_keys",
    "items",
    "job_blobs",
    "jobs",
    "ledger_events",
    "ledger_heads",
    "lots",
    "run_allocations",
    "run_sales",
    "run_validation_errors",
    "runs",
    "tenant_counters",
    "vendors",
)
APPEND_ONLY = ("ledger_events", "audit_events")

# Contract section 3; NULL = unlimited.
PLAN_LIMITS: dict[str, dict[str, int | None]] = {
    "free": {
        "items": 100,
        "categories": 10,
        "hubs": 1,
        "bins": 10,
        "vendors": 5,
        "exports_per_month": 5,
        "integrations": 0,
    },
    "pro": {
        "items": 10000,
        "categories": 500,
        "hubs": 10,
        "bins": 1000,
        "vendors": 500,
        "exports_per_month": 500,
        "integrations": 5,
    },
    "enterprise": {
        "items": None,
        "categories": None,
        "hubs": None,
        "bins": None,
        "vendors": None,
        "exports_per_month": None,
        "integrations": None,
    },
}

# Wrapped in a scalar subquery so PostgreSQL evaluates it once per statement (an InitPlan), not per row.
SCOPE = "(SELECT current_setting('asora.tenant_id', true))"


def upgrade() -> None:
    # The role applications assume (shared/db.py). A managed database may not allow CREATE ROLE; then the
    # owner connects directly and FORCE ROW LEVEL SECURITY still applies to it.
    op.execute("""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_app') THEN
            CREATE ROLE asora_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
          END IF;
          EXECUTE format('GRANT asora_app TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege THEN
          RAISE NOTICE 'cannot manage role asora_app; row-level security applies to the owner';
        END $$;
    """)
    op.execute("""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_app') THEN
            GRANT USAGE ON SCHEMA public TO asora_app;
            GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO asora_app;
            GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO asora_app;
            REVOKE UPDATE, DELETE, TRUNCATE ON ledger_events, audit_events FROM asora_app;
            ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO asora_app;
            ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO asora_app;
          END IF;
        END $$;
    """)

    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (tenant_id = {SCOPE} OR {SCOPE} = '*') WITH CHECK (tenant_id = {SCOPE} OR {SCOPE} = '*')"
        )
    op.execute("ALTER TABLE tenants ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tenants FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON tenants USING (id = {SCOPE} OR {SCOPE} = '*') "
        f"WITH CHECK (id = {SCOPE} OR {SCOPE} = '*')"
    )

    op.execute("""
        CREATE FUNCTION asora_reject_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'insufficient_privilege';
        END $$;
    """)
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION asora_reject_mutation()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION asora_reject_mutation()"
        )

    for plan, limits in PLAN_LIMITS.items():
        op.execute(f"INSERT INTO plans (name) VALUES ('{plan}')")
        for name, maximum in limits.items():
            value = "NULL" if maximum is None else str(maximum)
            op.execute(f"INSERT INTO plan_limits (plan, limit_name, maximum) VALUES ('{plan}', '{name}', {value})")


def downgrade() -> None:
    op.execute("DELETE FROM plan_limits")
    op.execute("DELETE FROM plans")
    for table in APPEND_ONLY:
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
    op.execute("DROP FUNCTION asora_reject_mutation()")
    for table in (*TENANT_TABLES, "tenants"):
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_app') THEN
            REVOKE ALL ON ALL TABLES IN SCHEMA public FROM asora_app;
            REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM asora_app;
            REVOKE USAGE ON SCHEMA public FROM asora_app;
            ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM asora_app;
            ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM asora_app;
          END IF;
        EXCEPTION WHEN insufficient_privilege THEN NULL;
        END $$;
    """)
