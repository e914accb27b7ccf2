"""The bulk writer: COPY straight into the high-volume tables, with the tenant wall kept by a constraint.

PostgreSQL refuses COPY FROM into a table with row-level security, so the application's role (`asora_app`)
stages COPY rows in a temporary table and moves them with INSERT ... SELECT, which roughly doubles the cost of
a million-row run. `asora_writer` may only INSERT into `ledger_events`, `lots` and the per-run result tables,
and it bypasses row-level security so it can COPY. The second wall stays: a CHECK constraint admits a row that
`asora_writer` writes only when its `tenant_id` is the transaction's tenant (`asora.tenant_id`), and never
under the system scope or with no tenant set. Other roles are unaffected by the constraint (their writes still
pass the row-level security policies). Also here: the per-run result tables lose their per-row foreign key,
runs record their seq range, and run_skus keeps the SKUs each run sold (see the comments below).

The constraint reads the current role and a setting, so it is not immutable: it holds trivially for every
other role (the migration's own check of existing rows, a restore), which is what we want.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WRITER_TABLES = ("ledger_events", "lots", "run_sales", "run_allocations")
# Per-row referential checks on the per-run result tables cost more than writing the rows; they are written
# in the same transaction as their run, which is never deleted.
RESULT_TABLES = ("run_sales", "run_allocations")
SCOPE = "current_setting('asora.tenant_id', true)"
CHECK = "current_user <> 'asora_writer' OR tenant_id IS NOT DISTINCT FROM current_setting('asora.tenant_id', true)"


def upgrade() -> None:
    # Where a run's events sit in the ledger: its rollback reads them along the primary key, in order.
    op.add_column("runs", sa.Column("first_seq", sa.BigInteger(), nullable=True))
    op.add_column("runs", sa.Column("last_seq", sa.BigInteger(), nullable=True))
    # The SKUs a live run sold with its latest sale date each: the BACKDATED_SALE boundary and the runs a
    # rollback must cascade to are computed from these few rows per run, not from every per-sale row.
    op.create_table(
        "run_skus",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("last_sale_date", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "sku", name=op.f("pk_run_skus")),
    )
    op.create_index("ix_run_skus_tenant_sku", "run_skus", ["tenant_id", "sku"], unique=False)
    op.execute("ALTER TABLE run_skus ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE run_skus FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON run_skus "
        f"USING (tenant_id = {SCOPE} OR {SCOPE} = '*') WITH CHECK (tenant_id = {SCOPE} OR {SCOPE} = '*')"
    )
    op.execute("""
        INSERT INTO run_skus (run_id, sku, tenant_id, last_sale_date)
        SELECT s.run_id, s.sku, s.tenant_id, max(s.sale_date) FROM run_sales s JOIN runs r ON r.id = s.run_id
        WHERE NOT r.dry_run AND r.status IN ('completed', 'rolled_back') GROUP BY s.run_id, s.sku, s.tenant_id
    """)
    # Like asora_app (0002): where roles cannot be managed, writers fall back to staging (shared/copyio.py).
    op.execute("""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_writer') THEN
            CREATE ROLE asora_writer NOLOGIN NOSUPERUSER BYPASSRLS;
          END IF;
          EXECUTE format('GRANT asora_writer TO %I', current_user);
        EXCEPTION WHEN insufficient_privilege THEN
          RAISE NOTICE 'cannot manage role asora_writer; bulk writes are staged';
        END $$;
    """)
    op.execute(f"""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_writer') THEN
            GRANT USAGE ON SCHEMA public TO asora_writer;
            GRANT INSERT ON {", ".join(WRITER_TABLES)} TO asora_writer;
          END IF;
        END $$;
    """)
    for table in RESULT_TABLES:
        op.drop_constraint(f"fk_{table}_run_id_runs", table, type_="foreignkey")
    for table in WRITER_TABLES:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_writer_tenant CHECK ({CHECK})")


def downgrade() -> None:
    op.drop_index("ix_run_skus_tenant_sku", table_name="run_skus")
    op.drop_table("run_skus")
    op.drop_column("runs", "last_seq")
    op.drop_column("runs", "first_seq")
    for table in RESULT_TABLES:
        op.create_foreign_key(f"fk_{table}_run_id_runs", table, "runs", ["run_id"], ["id"])
    for table in WRITER_TABLES:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT ck_{table}_writer_tenant")
    # The role is cluster-wide and may serve other databases: only this database's grants go.
    op.execute(f"""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_writer') THEN
            REVOKE INSERT ON {", ".join(WRITER_TABLES)} FROM asora_writer;
            REVOKE USAGE ON SCHEMA public FROM asora_writer;
          END IF;
        END $$;
    """)
