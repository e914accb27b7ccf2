"""Integrations: webhook receivers, their ordered outbox of payloads and the history of dispatches.

The three tables are tenant-scoped under forced row-level security like every other, and the application may
not DELETE from them: an integration is disabled, never removed, and a payload's record is permanent.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCOPE = "(SELECT current_setting('asora.tenant_id', true))"
TABLES = ("integrations", "integration_outbox", "integration_dispatches")


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), server_default="webhook", nullable=False),
        sa.Column("url_redacted", sa.String(length=2048), nullable=False),
        sa.Column("url_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("previous_secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_position", sa.BigInteger(), server_default="1", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_integrations_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrations")),
    )
    op.create_index("ix_integrations_tenant", "integrations", ["tenant_id", "id"], unique=False)
    op.create_table(
        "integration_outbox",
        sa.Column("integration_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("event_id", sa.String(length=40), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("dispatch_id", sa.String(length=40), nullable=True),
        sa.Column("sends", sa.Integer(), server_default="0", nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"], ["integrations.id"], name=op.f("fk_integration_outbox_integration_id_integrations")
        ),
        sa.PrimaryKeyConstraint("integration_id", "position", name=op.f("pk_integration_outbox")),
        sa.UniqueConstraint("tenant_id", "event_id", name=op.f("uq_integration_outbox_tenant_id")),
    )
    op.create_index(
        "ix_integration_outbox_queued",
        "integration_outbox",
        ["integration_id", "position"],
        unique=False,
        postgresql_where="status = 'queued'",
    )
    op.create_table(
        "integration_dispatches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("integration_id", sa.String(length=40), nullable=False),
        sa.Column("requested_by_key_id", sa.String(length=40), nullable=True),
        sa.Column("requested_by_role", sa.String(length=16), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("delivered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("stopped_at_event_id", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["integrations.id"],
            name=op.f("fk_integration_dispatches_integration_id_integrations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integration_dispatches")),
    )
    op.create_index(
        "ix_integration_dispatches_integration",
        "integration_dispatches",
        ["integration_id", "requested_at"],
        unique=False,
    )
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} "
            f"USING (tenant_id = {SCOPE} OR {SCOPE} = '*') WITH CHECK (tenant_id = {SCOPE} OR {SCOPE} = '*')"
        )
    op.execute(f"""
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_app') THEN
            GRANT SELECT, INSERT, UPDATE ON {", ".join(TABLES)} TO asora_app;
            REVOKE DELETE, TRUNCATE ON {", ".join(TABLES)} FROM asora_app;
          END IF;
        END $$;
    """)


def downgrade() -> None:
    op.drop_index("ix_integration_dispatches_integration", table_name="integration_dispatches")
    op.drop_table("integration_dispatches")
    op.drop_index("ix_integration_outbox_queued", table_name="integration_outbox", postgresql_where="status = 'queued'")
    op.drop_table("integration_outbox")
    op.drop_index("ix_integrations_tenant", table_name="integrations")
    op.drop_table("integrations")
