"""Returns and landed costs: returns, return_lines, landed_costs, landed_cost_lines; tenant-isolated and
append-only (a return or landed cost is evidence for the ledger events it wrote).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("returns", "return_lines", "landed_costs", "landed_cost_lines")
SCOPE = "(SELECT current_setting('asora.tenant_id', true))"


def _created_at() -> sa.Column[datetime]:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sale_id", sa.String(length=200), nullable=True),
        sa.Column("lot_id", sa.String(length=200), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=False),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_returns_job_id_jobs"), initially="DEFERRED", deferrable=True
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_returns_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_returns")),
        sa.UniqueConstraint("job_id", name=op.f("uq_returns_job_id")),
    )
    op.create_index("ix_returns_tenant", "returns", ["tenant_id", "id"], unique=False)
    op.create_index("ix_returns_tenant_sale", "returns", ["tenant_id", "sale_id"], unique=False)
    op.create_table(
        "return_lines",
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("source_lot_id", sa.String(length=200), nullable=False),
        sa.Column("lot_id", sa.String(length=200), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("unit_cost", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("amount", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.ForeignKeyConstraint(["return_id"], ["returns.id"], name=op.f("fk_return_lines_return_id_returns")),
        sa.PrimaryKeyConstraint("return_id", "line", name=op.f("pk_return_lines")),
    )
    op.create_index("ix_return_lines_source_lot", "return_lines", ["tenant_id", "source_lot_id"], unique=False)
    op.create_index("ix_return_lines_tenant_run", "return_lines", ["tenant_id", "run_id"], unique=False)
    op.create_table(
        "landed_costs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("lot_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.Column("allocated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("memo", sa.String(length=500), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_landed_costs_job_id_jobs"), initially="DEFERRED", deferrable=True
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_landed_costs_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_landed_costs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_landed_costs_job_id")),
    )
    op.create_index("ix_landed_costs_tenant", "landed_costs", ["tenant_id", "id"], unique=False)
    op.create_index("ix_landed_costs_tenant_lot", "landed_costs", ["tenant_id", "lot_id"], unique=False)
    op.create_table(
        "landed_cost_lines",
        sa.Column("landed_cost_id", sa.String(length=40), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("unit_cost", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("amount", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["landed_cost_id"], ["landed_costs.id"], name=op.f("fk_landed_cost_lines_landed_cost_id_landed_costs")
        ),
        sa.PrimaryKeyConstraint("landed_cost_id", "line", name=op.f("pk_landed_cost_lines")),
    )
    op.create_index("ix_landed_cost_lines_tenant_run", "landed_cost_lines", ["tenant_id", "run_id"], unique=False)

    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (tenant_id = {SCOPE} OR {SCOPE} = '*') WITH CHECK (tenant_id = {SCOPE} OR {SCOPE} = '*')"
        )
        # Evidence for the ledger events it wrote: never rewritten (function from 0002).
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION asora_reject_mutation()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION asora_reject_mutation()"
        )
    op.execute(f"""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_app') THEN
            GRANT SELECT, INSERT ON {", ".join(TABLES)} TO asora_app;
            REVOKE UPDATE, DELETE, TRUNCATE ON {", ".join(TABLES)} FROM asora_app;
          END IF;
        END $$;
    """)


def downgrade() -> None:
    op.drop_index("ix_landed_cost_lines_tenant_run", table_name="landed_cost_lines")
    op.drop_table("landed_cost_lines")
    op.drop_index("ix_landed_costs_tenant_lot", table_name="landed_costs")
    op.drop_index("ix_landed_costs_tenant", table_name="landed_costs")
    op.drop_table("landed_costs")
    op.drop_index("ix_return_lines_tenant_run", table_name="return_lines")
    op.drop_index("ix_return_lines_source_lot", table_name="return_lines")
    op.drop_table("return_lines")
    op.drop_index("ix_returns_tenant_sale", table_name="returns")
    op.drop_index("ix_returns_tenant", table_name="returns")
    op.drop_table("returns")
