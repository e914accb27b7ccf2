"""Job streams, attempts that tell a crash from a lost worker, and a short per-tenant critical section.

- `jobs.stream`: a tenant's jobs run one at a time in `seq` order within their stream. Ledger-affecting
  kinds share the tenant's `ledger` stream; an integration's dispatches have a stream of their own
  (`integration:<id>`), so a slow receiver never holds up receipts, counts and runs.
- `jobs.lost_attempts`: attempts whose worker died without recording an outcome (killed, OOM, a lost node),
  counted apart from attempts that raised, with their own cap; `jobs.available_at`: the time a re-queued job
  may be claimed again (back-off after a lost worker).
- `jobs.queue` goes: a kind's queue is the registry's (`shared/registry.py`), not a per-row copy.
- `ix_jobs_pending` covers the stream; `ix_jobs_queued` replaces `ix_jobs_unpublished` for the relay, which
  re-sends wake-ups of queued jobs whose last one is old (`published_at` is now when a wake-up was last
  scheduled, set at intake by a process that publishes after commit).
- The foreign keys from a job's rows (its run, its uploaded files, its count, its export) to `jobs` are
  checked at commit (DEFERRABLE INITIALLY DEFERRED): intake writes those rows first and numbers the job last,
  so the tenant's counter row is locked only for the last statements of the transaction.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_FOREIGN_KEYS = (
    ("runs", "fk_runs_job_id_jobs"),
    ("job_blobs", "fk_job_blobs_job_id_jobs"),
    ("counts", "fk_counts_job_id_jobs"),
    ("exports", "fk_exports_job_id_jobs"),
)


def upgrade() -> None:
    op.drop_column("jobs", "queue")
    op.add_column("jobs", sa.Column("stream", sa.String(length=80), server_default="ledger", nullable=False))
    op.add_column("jobs", sa.Column("lost_attempts", sa.SmallInteger(), server_default="0", nullable=False))
    op.add_column("jobs", sa.Column("available_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_index("ix_jobs_pending", table_name="jobs", postgresql_where="status IN ('queued', 'running')")
    op.create_index(
        "ix_jobs_pending",
        "jobs",
        ["tenant_id", "stream", "seq"],
        unique=False,
        postgresql_where="status IN ('queued', 'running')",
    )
    op.drop_index("ix_jobs_unpublished", table_name="jobs", postgresql_where="published_at IS NULL")
    op.create_index("ix_jobs_queued", "jobs", ["created_at"], unique=False, postgresql_where="status = 'queued'")
    for table, name in JOB_FOREIGN_KEYS:
        op.execute(f"ALTER TABLE {table} ALTER CONSTRAINT {name} DEFERRABLE INITIALLY DEFERRED")


def downgrade() -> None:
    for table, name in JOB_FOREIGN_KEYS:
        op.execute(f"ALTER TABLE {table} ALTER CONSTRAINT {name} NOT DEFERRABLE")
    op.drop_index("ix_jobs_queued", table_name="jobs", postgresql_where="status = 'queued'")
    op.create_index(
        "ix_jobs_unpublished", "jobs", ["created_at"], unique=False, postgresql_where="published_at IS NULL"
    )
    op.drop_index("ix_jobs_pending", table_name="jobs", postgresql_where="status IN ('queued', 'running')")
    op.create_index(
        "ix_jobs_pending",
        "jobs",
        ["tenant_id", "seq"],
        unique=False,
        postgresql_where="status IN ('queued', 'running')",
    )
    op.drop_column("jobs", "available_at")
    op.drop_column("jobs", "lost_attempts")
    op.drop_column("jobs", "stream")
    op.add_column("jobs", sa.Column("queue", sa.String(length=32), nullable=True))
    op.execute("""
        UPDATE jobs SET queue = CASE kind WHEN 'cogs_run' THEN 'runs' WHEN 'rollback' THEN 'runs'
            WHEN 'receipt' THEN 'inventory' WHEN 'count' THEN 'inventory' WHEN 'export' THEN 'exports'
            ELSE 'dispatch' END""")
    op.alter_column("jobs", "queue", nullable=False)
