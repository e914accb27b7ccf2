"""Landed costs as accepted (`landed_costs`) and how each was spread (`landed_cost_lines`). Append-only: the
status is the job's, and the lines are written once, with the ledger events, when the job executes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Index, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.base import Base, CreatedAt, EnumText, Money, Quantity, UnitCost


class Target(StrEnum):
    ON_HAND = "on_hand"  # the lot's units still in stock: the lot is revalued (LANDED_COST)
    SALES = "sales"  # units a live run's sales issued: COGS adjustments on those sales (COST_ADJUSTMENT)
    ROUNDING = "rounding"  # nothing was issued: the sub-cent remainder of the per-unit rate goes to COGS


class LandedCost(Base):
    __tablename__ = "landed_costs"
    __table_args__ = (
        Index("ix_landed_costs_tenant", "tenant_id", "id"),
        Index("ix_landed_costs_tenant_lot", "tenant_id", "lot_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", deferrable=True, initially="DEFERRED"), unique=True)
    lot_id: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Money]
    allocated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    memo: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[CreatedAt]


class LandedCostLine(Base):
    """Where part of a landed cost went: the lot's units on hand, the sales of one live run (`run_id`; the
    per-sale shares are that run's COST_ADJUSTMENT events), or the rounding remainder. `unit_cost` is the
    per-unit rate. The lines' amounts sum to the landed cost exactly."""

    __tablename__ = "landed_cost_lines"
    __table_args__ = (
        PrimaryKeyConstraint("landed_cost_id", "line"),
        Index("ix_landed_cost_lines_tenant_run", "tenant_id", "run_id"),
    )

    landed_cost_id: Mapped[str] = mapped_column(ForeignKey("landed_costs.id"))
    line: Mapped[int] = mapped_column(Integer)
    tenant_id: Mapped[str] = mapped_column(String(63))
    target: Mapped[Target] = mapped_column(EnumText(Target, 16))
    run_id: Mapped[str | None] = mapped_column(String(40))
    quantity: Mapped[Quantity]
    unit_cost: Mapped[UnitCost]
    amount: Mapped[Money]


_ = Decimal  # annotations above resolve Decimal at runtime
