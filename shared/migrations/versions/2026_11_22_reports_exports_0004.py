"""Exports (tenant-isolated, permanent history) and the indexes reports read through.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPE = "current_setting('asora.tenant_id', true)"


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("report", sa.String(length=32), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("params_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_exports_job_id_jobs")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_exports_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exports")),
    )
    op.create_index("ix_exports_tenant_created", "exports", ["tenant_id", "created_at"], unique=False)
    # Covering indexes: the reports that read them are answered by index-only scans (shared/reports/models.py).
    op.create_index(
        "ix_lots_on_hand",
        "lots",
        ["tenant_id", "sku"],
        unique=False,
        postgresql_where=sa.text("remaining_quantity <> 0"),
        postgresql_include=["lot_id", "bin_id", "unit_cost", "remaining_quantity"],
    )
    op.create_index(
        "ix_ledger_events_occurred",
        "ledger_events",
        ["tenant_id", "occurred_at"],
        unique=False,
        postgresql_include=["sku", "lot_id", "event_type", "quantity", "amount", "bin_id", "reverses_seq"],
    )

    op.execute("ALTER TABLE exports ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE exports FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON exports "
        f"USING (tenant_id = {SCOPE} OR {SCOPE} = '*') WITH CHECK (tenant_id = {SCOPE} OR {SCOPE} = '*')"
    )

    # Export history is permanent: no DELETE or TRUNCATE (function from 0002), and an export may change only
    # while it is queued or running, and never in its identity.
    op.execute("""
        CREATE FUNCTION asora_exports_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF OLD.status IN ('completed', 'failed') THEN
            RAISE EXCEPTION 'exports: export % is finished and immutable: UPDATE rejected', OLD.id
              USING ERRCODE = 'insufficient_privilege';
          END IF;
          IF NEW.id IS DISTINCT FROM OLD.id OR NEW.tenant_id IS DISTINCT FROM OLD.tenant_id
             OR NEW.job_id IS DISTINCT FROM OLD.job_id OR NEW.report IS DISTINCT FROM OLD.report
             OR NEW.params IS DISTINCT FROM OLD.params OR NEW.params_hash IS DISTINCT FROM OLD.params_hash
             OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
            RAISE EXCEPTION 'exports: the identity of export % is immutable: UPDATE rejected', OLD.id
              USING ERRCODE = 'insufficient_privilege';
          END IF;
          RETURN NEW;
        END $$;
    """)
    op.execute(
        "CREATE TRIGGER exports_guard BEFORE UPDATE ON exports FOR EACH ROW EXECUTE FUNCTION asora_exports_guard()"
    )
    op.execute(
        "CREATE TRIGGER exports_append_only BEFORE DELETE ON exports FOR EACH ROW EXECUTE FUNCTION asora_reject_mutation()"
    )
    op.execute(
        "CREATE TRIGGER exports_no_truncate BEFORE TRUNCATE ON exports "
        "FOR EACH STATEMENT EXECUTE FUNCTION asora_reject_mutation()"
    )
    op.execute("""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_app') THEN
            GRANT SELECT, INSERT, UPDATE ON exports TO asora_app;
            REVOKE DELETE, TRUNCATE ON exports FROM asora_app;
          END IF;
        END $$;
    """)


def downgrade() -> None:
    op.execute("DROP TRIGGER exports_no_truncate ON exports")
    op.execute("DROP TRIGGER exports_append_only ON exports")
    op.execute("DROP TRIGGER exports_guard ON exports")
    op.execute("DROP FUNCTION asora_exports_guard()")
    op.drop_index("ix_ledger_events_occurred", table_name="ledger_events")
    op.drop_index("ix_lots_on_hand", table_name="lots", postgresql_where=sa.text("remaining_quantity <> 0"))
    op.drop_index("ix_exports_tenant_created", table_name="exports")
    op.drop_table("exports")
