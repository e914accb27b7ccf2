"""Cycle counts: counts and count_lines, tenant-isolated and append-only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("counts", "count_lines")
SCOPE = "current_setting('asora.tenant_id', true)"


def upgrade() -> None:
    op.create_table(
        "counts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("bin_id", sa.String(length=40), nullable=False),
        sa.Column("counted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_counts_job_id_jobs")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_counts_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_counts")),
        sa.UniqueConstraint("job_id", name=op.f("uq_counts_job_id")),
    )
    op.create_index("ix_counts_tenant", "counts", ["tenant_id", "id"], unique=False)
    op.create_table(
        "count_lines",
        sa.Column("count_id", sa.String(length=40), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("expected_quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("counted_quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("difference", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("unit_cost", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("amount", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.ForeignKeyConstraint(["count_id"], ["counts.id"], name=op.f("fk_count_lines_count_id_counts")),
        sa.PrimaryKeyConstraint("count_id", "line", name=op.f("pk_count_lines")),
    )
    op.create_index(op.f("ix_count_lines_tenant_id"), "count_lines", ["tenant_id"], unique=False)

    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (tenant_id = {SCOPE} OR {SCOPE} = '*') WITH CHECK (tenant_id = {SCOPE} OR {SCOPE} = '*')"
        )
        # A count is evidence for the adjustments it ledgered: it is never rewritten (function from 0002).
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION asora_reject_mutation()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION asora_reject_mutation()"
        )
    op.execute("""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_app') THEN
            GRANT SELECT, INSERT ON counts, count_lines TO asora_app;
            REVOKE UPDATE, DELETE, TRUNCATE ON counts, count_lines FROM asora_app;
          END IF;
        END $$;
    """)


def downgrade() -> None:
    op.drop_index(op.f("ix_count_lines_tenant_id"), table_name="count_lines")
    op.drop_table("count_lines")
    op.drop_index("ix_counts_tenant", table_name="counts")
    op.drop_table("counts")
