"""The plan ceiling on a run's size: `rows_per_run`, the data rows (sales and lots together) one COGS run may
carry. Free 10,000, pro 1,000,000, enterprise unlimited (bounded by the upload and body size limits).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROWS_PER_RUN: dict[str, int | None] = {"free": 10_000, "pro": 1_000_000, "enterprise": None}


def upgrade() -> None:
    for plan, maximum in ROWS_PER_RUN.items():
        value = "NULL" if maximum is None else str(maximum)
        op.execute(f"INSERT INTO plan_limits (plan, limit_name, maximum) VALUES ('{plan}', 'rows_per_run', {value})")


def downgrade() -> None:
    op.execute("DELETE FROM plan_limits WHERE limit_name = 'rows_per_run'")
