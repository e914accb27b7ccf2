"""Backdated entries: the tenant's `backdated_entries` setting (reject | repost) and `repost_runs`, what each
repost changed on each run (its COST_ADJUSTMENT events' seq range and COGS change), tenant-scoped under forced
row-level security; the application may not DELETE from it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPE = "(SELECT current_setting('asora.tenant_id', true))"


def upgrade() -> None:
    op.add_column(
        "tenants", sa.Column("backdated_entries", sa.String(length=8), server_default="reject", nullable=False)
    )
    op.create_table(
        "repost_runs",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reversed_by", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("job_id", "run_id", name=op.f("pk_repost_runs")),
    )
    op.execute("ALTER TABLE repost_runs ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE repost_runs FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY tenant_isolation ON repost_runs "
        f"USING (tenant_id = {SCOPE} OR {SCOPE} = '*') WITH CHECK (tenant_id = {SCOPE} OR {SCOPE} = '*')"
    )
    op.execute("""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_app') THEN
            GRANT SELECT, INSERT, UPDATE ON repost_runs TO asora_app;
            REVOKE DELETE, TRUNCATE ON repost_runs FROM asora_app;
          END IF;
        END $$;
    """)


def downgrade() -> None:
    op.drop_table("repost_runs")
    op.drop_column("tenants", "backdated_entries")
