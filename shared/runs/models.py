"""COGS runs and their results: per-sale COGS, dry-run allocations, validation errors."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.base import Base, CreatedAt, EnumText, Money, Quantity, UnitCost


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    VALIDATED = "validated"  # a dry run: validated and computed, nothing written to the ledger
    ROLLED_BACK = "rolled_back"


IN_PROGRESS = (RunStatus.QUEUED, RunStatus.RUNNING)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", deferrable=True, initially="DEFERRED"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    status: Mapped[RunStatus] = mapped_column(EnumText(RunStatus, 16), server_default="queued")
    mode: Mapped[str] = mapped_column(String(16), server_default="fifo")
    dry_run: Mapped[bool] = mapped_column(Boolean, server_default="false")
    sales_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    lots_count: Mapped[int] = mapped_column(BigInteger, server_default="0")
    total_quantity: Mapped[Quantity] = mapped_column(server_default="0")
    total_cogs: Mapped[Money] = mapped_column(server_default="0")
    validation_errors_count: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[CreatedAt]
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rolled_back_by: Mapped[str | None] = mapped_column(String(40))
    completed_seq: Mapped[int | None] = mapped_column(BigInteger)
    first_seq: Mapped[int | None] = mapped_column(BigInteger)  # the run's ledger events: [first_seq, last_seq]
    last_seq: Mapped[int | None] = mapped_column(BigInteger)


class RunSale(Base):
    """Per-sale result of a run. Rows of completed (live) runs are the tenant's costed sales."""

    __tablename__ = "run_sales"
    __table_args__ = (Index("ix_run_sales_tenant_sale", "tenant_id", "sale_id"),)

    # No foreign key to runs: the rows are written with their run in one transaction, and a per-row
    # referential check would cost a million-sale run seconds (migration 0005).
    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sale_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    sku: Mapped[str] = mapped_column(String(100))
    sale_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    quantity: Mapped[Quantity]
    cogs: Mapped[Money]


class CostedSku(Base):
    """Derived: each SKU's latest costed sale date among live runs (the BACKDATED_SALE boundary).
    Maintained when a run completes or is rolled back; rebuildable from run_skus of live runs."""

    __tablename__ = "costed_skus"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    sku: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_sale_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunSku(Base):
    """The SKUs a committed run sold, each with its latest sale date (a few rows per run, derived from its
    per-sale results): the BACKDATED_SALE boundary and the cascade of a rollback are computed from these."""

    __tablename__ = "run_skus"
    __table_args__ = (Index("ix_run_skus_tenant_sku", "tenant_id", "sku"),)

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sku: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    last_sale_date: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SkuValuationMethod(Base):
    """The costing method a SKU is held to: set by the first committed run that costs it, changed only by an
    explicit, audited switch (shared/runs/methods.py). A run with another method for the SKU is refused."""

    __tablename__ = "sku_valuation_methods"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    sku: Mapped[str] = mapped_column(String(100), primary_key=True)
    method: Mapped[str] = mapped_column(String(16))
    since_run_id: Mapped[str | None] = mapped_column(String(40))
    updated_at: Mapped[CreatedAt]


class RunAllocation(Base):
    """Allocation slices of a dry run (a committed run's slices are its ISSUE ledger events)."""

    __tablename__ = "run_allocations"

    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)  # no foreign key: as run_sales
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    sale_id: Mapped[str] = mapped_column(String(200))
    lot_id: Mapped[str] = mapped_column(String(200))
    sku: Mapped[str] = mapped_column(String(100))
    quantity: Mapped[Quantity]
    unit_cost: Mapped[UnitCost]
    amount: Mapped[Money]


class RepostRun(Base):
    """What one repost changed on one run: the COGS change of its sales (`amount`, signed: + costs more) and the
    seq range of the COST_ADJUSTMENT events carrying it. `reversed_by` is the job that reversed those events (the
    repost's rollback, or the run's own rollback). The run's adjusting journal entry is read from here."""

    __tablename__ = "repost_runs"

    job_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[Money]
    posted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reversed_by: Mapped[str | None] = mapped_column(String(40))


class RunValidationError(Base):
    __tablename__ = "run_validation_errors"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    row: Mapped[int] = mapped_column(BigInteger)
    field: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(String(1000))
    file: Mapped[str] = mapped_column(String(16))


_ = Decimal  # re-exported annotations above resolve Decimal at runtime
