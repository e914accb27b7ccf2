"""Valuation methods: the tenant's default costing method, and the method each costed SKU is held to.

`tenants.valuation_method` is the method of a run that names none. `sku_valuation_methods` records, per SKU,
the method its first committed run costed it under; a run with another method for that SKU is refused
(VALUATION_METHOD_MISMATCH) until the SKU is switched explicitly (an audited operation, docs/costing.md).
Tenant-scoped under forced row-level security like every other table; the application may not DELETE rows.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPE = "(SELECT current_setting('asora.tenant_id', true))"
METHODS = "('fifo', 'lifo', 'moving_average')"


def upgrade() -> None:
    op.add_column("tenants", sa.Column("valuation_method", sa.String(length=16), server_default="fifo", nullable=False))
    op.create_check_constraint("ck_tenants_valuation_method", "tenants", f"valuation_method IN {METHODS}")
    op.create_table(
        "sku_valuation_methods",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("since_run_id", sa.String(length=40), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"method IN {METHODS}", name=op.f("ck_sku_valuation_methods_method")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_sku_valuation_methods_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "sku", name=op.f("pk_sku_valuation_methods")),
    )
    op.execute("ALTER TABLE sku_valuation_methods ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE sku_valuation_methods FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON sku_valuation_methods "
        f"USING (tenant_id = {SCOPE} OR {SCOPE} = '*') WITH CHECK (tenant_id = {SCOPE} OR {SCOPE} = '*')"
    )
    # Every SKU costed so far was costed FIFO (the only method before this revision).
    op.execute("""
        INSERT INTO sku_valuation_methods (tenant_id, sku, method)
        SELECT DISTINCT s.tenant_id, s.sku, 'fifo' FROM run_skus s JOIN runs r ON r.id = s.run_id
        WHERE r.status = 'completed' AND NOT r.dry_run
    """)
    op.execute("""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_app') THEN
            GRANT SELECT, INSERT, UPDATE ON sku_valuation_methods TO asora_app;
            REVOKE DELETE, TRUNCATE ON sku_valuation_methods FROM asora_app;
          END IF;
        END $$;
    """)


def downgrade() -> None:
    op.drop_table("sku_valuation_methods")
    op.drop_constraint("ck_tenants_valuation_method", "tenants", type_="check")
    op.drop_column("tenants", "valuation_method")
