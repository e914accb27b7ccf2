"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 13:59:11.239640
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "costed_skus",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("last_sale_date", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "sku", name=op.f("pk_costed_skus")),
    )

    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=True),
        sa.Column("actor_key_id", sa.String(length=40), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("job_id", sa.String(length=40), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_tenant_created", "audit_events", ["tenant_id", "created_at"], unique=False)
    op.create_table(
        "bins",
        sa.Column("hub_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bins")),
    )
    op.create_index("ix_bins_tenant", "bins", ["tenant_id", "id"], unique=False)
    op.create_table(
        "categories",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_categories")),
    )
    op.create_index("ix_categories_tenant", "categories", ["tenant_id", "id"], unique=False)
    op.create_table(
        "hubs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hubs")),
    )
    op.create_index("ix_hubs_tenant", "hubs", ["tenant_id", "id"], unique=False)
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "items",
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("category_id", sa.String(length=40), nullable=False),
        sa.Column("default_bin_id", sa.String(length=40), nullable=True),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
    )
    op.create_index("ix_items_tenant", "items", ["tenant_id", "id"], unique=False)
    op.create_index(
        "uq_items_tenant_sku", "items", ["tenant_id", "sku"], unique=True, postgresql_where="deleted_at IS NULL"
    )
    op.create_table(
        "ledger_events",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=16), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("lot_id", sa.String(length=200), nullable=False),
        sa.Column("bin_id", sa.String(length=40), nullable=True),
        sa.Column("quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("unit_cost", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("amount", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("reverses_seq", sa.BigInteger(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "seq", name=op.f("pk_ledger_events")),
    )
    op.create_index(
        "ix_ledger_events_run",
        "ledger_events",
        ["tenant_id", "run_id"],
        unique=False,
        postgresql_where="run_id IS NOT NULL",
    )
    op.create_table(
        "lots",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("lot_id", sa.String(length=200), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("bin_id", sa.String(length=40), nullable=True),
        sa.Column("vendor_id", sa.String(length=40), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("original_quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("received_quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("freight_cost_per_unit", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("unit_cost", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("remaining_quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="live", nullable=False),
        sa.Column("source_job_id", sa.String(length=40), nullable=False),
        sa.Column("source_run_id", sa.String(length=40), nullable=True),
        sa.Column("receipt_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "lot_id", name=op.f("pk_lots")),
    )
    op.create_index("ix_lots_fifo", "lots", ["tenant_id", "sku", "received_at", "lot_id"], unique=False)
    op.create_table(
        "plans",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_plans")),
    )
    op.create_table(
        "vendors",
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendors")),
    )
    op.create_index("ix_vendors_tenant", "vendors", ["tenant_id", "id"], unique=False)
    op.create_table(
        "plan_limits",
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("limit_name", sa.String(length=32), nullable=False),
        sa.Column("maximum", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["plan"], ["plans.name"], name=op.f("fk_plan_limits_plan_plans")),
        sa.PrimaryKeyConstraint("plan", "limit_name", name=op.f("pk_plan_limits")),
    )
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("plan", sa.String(length=32), nullable=False),
        sa.Column("role_model", sa.String(length=16), nullable=False),
        sa.Column("cogs_account_code", sa.String(length=32), server_default="5000", nullable=False),
        sa.Column("cogs_account_name", sa.String(length=100), server_default="Cost of Goods Sold", nullable=False),
        sa.Column("inventory_account_code", sa.String(length=32), server_default="1400", nullable=False),
        sa.Column("inventory_account_name", sa.String(length=100), server_default="Inventory Asset", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["plan"], ["plans.name"], name=op.f("fk_tenants_plan_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_tenant_id"), "api_keys", ["tenant_id"], unique=False)
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("attempts", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("actor_key_id", sa.String(length=40), nullable=True),
        sa.Column("actor_role", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_jobs_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("tenant_id", "seq", name=op.f("uq_jobs_tenant_id")),
    )
    op.create_index(
        "ix_jobs_pending",
        "jobs",
        ["tenant_id", "seq"],
        unique=False,
        postgresql_where="status IN ('queued', 'running')",
    )
    op.create_index(
        "ix_jobs_unpublished", "jobs", ["created_at"], unique=False, postgresql_where="published_at IS NULL"
    )
    op.create_table(
        "ledger_heads",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("hash", sa.String(length=64), server_default=sa.text("repeat('0', 64)"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_ledger_heads_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_ledger_heads")),
    )
    op.create_table(
        "tenant_counters",
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("job_seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_counters_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_counters")),
    )
    op.create_table(
        "job_blobs",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_job_blobs_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", "name", name=op.f("pk_job_blobs")),
    )
    op.create_index(op.f("ix_job_blobs_tenant_id"), "job_blobs", ["tenant_id"], unique=False)
    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("mode", sa.String(length=16), server_default="fifo", nullable=False),
        sa.Column("dry_run", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("sales_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("lots_count", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("total_quantity", sa.Numeric(precision=20, scale=4), server_default="0", nullable=False),
        sa.Column("total_cogs", sa.Numeric(precision=28, scale=8), server_default="0", nullable=False),
        sa.Column("validation_errors_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rolled_back_by", sa.String(length=40), nullable=True),
        sa.Column("completed_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_runs_job_id_jobs")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_runs_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    op.create_index("ix_runs_tenant_created", "runs", ["tenant_id", "created_at"], unique=False)
    op.create_table(
        "run_allocations",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("sale_id", sa.String(length=200), nullable=False),
        sa.Column("lot_id", sa.String(length=200), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("unit_cost", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("amount", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_allocations_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "position", name=op.f("pk_run_allocations")),
    )
    op.create_table(
        "run_sales",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("sale_id", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("sku", sa.String(length=100), nullable=False),
        sa.Column("sale_date", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=20, scale=4), nullable=False),
        sa.Column("cogs", sa.Numeric(precision=28, scale=8), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_sales_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "sale_id", name=op.f("pk_run_sales")),
    )
    op.create_index("ix_run_sales_tenant_sale", "run_sales", ["tenant_id", "sale_id"], unique=False)
    op.create_table(
        "run_validation_errors",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=63), nullable=False),
        sa.Column("row", sa.BigInteger(), nullable=False),
        sa.Column("field", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("file", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_run_validation_errors_run_id_runs")),
        sa.PrimaryKeyConstraint("run_id", "position", name=op.f("pk_run_validation_errors")),
    )


def downgrade() -> None:
    op.drop_table("costed_skus")

    op.drop_table("run_validation_errors")
    op.drop_index("ix_run_sales_tenant_sale", table_name="run_sales")
    op.drop_table("run_sales")
    op.drop_table("run_allocations")
    op.drop_index("ix_runs_tenant_created", table_name="runs")
    op.drop_table("runs")
    op.drop_index(op.f("ix_job_blobs_tenant_id"), table_name="job_blobs")
    op.drop_table("job_blobs")
    op.drop_table("tenant_counters")
    op.drop_table("ledger_heads")
    op.drop_index("ix_jobs_unpublished", table_name="jobs", postgresql_where="published_at IS NULL")
    op.drop_index("ix_jobs_pending", table_name="jobs", postgresql_where="status IN ('queued', 'running')")
    op.drop_table("jobs")
    op.drop_index(op.f("ix_api_keys_tenant_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
    op.drop_table("plan_limits")
    op.drop_index("ix_vendors_tenant", table_name="vendors")
    op.drop_table("vendors")
    op.drop_table("plans")
    op.drop_index("ix_lots_fifo", table_name="lots")
    op.drop_table("lots")
    op.drop_index("ix_ledger_events_run", table_name="ledger_events", postgresql_where="run_id IS NOT NULL")
    op.drop_table("ledger_events")
    op.drop_index("uq_items_tenant_sku", table_name="items", postgresql_where="deleted_at IS NULL")
    op.drop_index("ix_items_tenant", table_name="items")
    op.drop_table("items")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_hubs_tenant", table_name="hubs")
    op.drop_table("hubs")
    op.drop_index("ix_categories_tenant", table_name="categories")
    op.drop_table("categories")
    op.drop_index("ix_bins_tenant", table_name="bins")
    op.drop_table("bins")
    op.drop_index("ix_audit_events_tenant_created", table_name="audit_events")
    op.drop_table("audit_events")
