"""Returns as accepted (`returns`) and what each one ledgered (`return_lines`). Both are append-only: a return's
status is its job's, and its lines are written once, with its ledger events, when the job executes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import DateTime, ForeignKey, Index, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.base import Base, CreatedAt, EnumText, Money, Quantity, UnitCost


class ReturnKind(StrEnum):
    SALE = "sale"  # a customer brings units back: they re-enter stock at the cost they were issued at
    PURCHASE = "purchase"  # units go back to the vendor out of the lot they were received in


class Return(Base):
    __tablename__ = "returns"
    __table_args__ = (
        Index("ix_returns_tenant", "tenant_id", "id"),
        Index("ix_returns_tenant_sale", "tenant_id", "sale_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", deferrable=True, initially="DEFERRED"), unique=True)
    kind: Mapped[ReturnKind] = mapped_column(EnumText(ReturnKind, 16))
    sale_id: Mapped[str | None] = mapped_column(String(200))  # a sale return: the sale
    lot_id: Mapped[str | None] = mapped_column(String(200))  # a purchase return: the lot the units leave
    quantity: Mapped[Quantity]
    returned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[CreatedAt]


class ReturnLine(Base):
    """One slice of an executed return. A sale return has a slice per lot the sale drew from (latest
        allocation first), each received as the new lot `lot_id`; a purchase return has one slice, out of
        `source_lot_id` (= `lot_id`). `run_id` is the live run whose sale came back (the rollback of a run with
    returns against it is refused). `amount` is the slice's signed ledger amount."""

    __tablename__ = "return_lines"
    __table_args__ = (
        PrimaryKeyConstraint("return_id", "line"),
        Index("ix_return_lines_source_lot", "tenant_id", "source_lot_id"),
        Index("ix_return_lines_tenant_run", "tenant_id", "run_id"),
    )

    return_id: Mapped[str] = mapped_column(ForeignKey("returns.id"))
    line: Mapped[int] = mapped_column(Integer)
    tenant_id: Mapped[str] = mapped_column(String(63))
    run_id: Mapped[str | None] = mapped_column(String(40))
    sku: Mapped[str] = mapped_column(String(100))
    source_lot_id: Mapped[str] = mapped_column(String(200))
    lot_id: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[Quantity]
    unit_cost: Mapped[UnitCost]
    amount: Mapped[Money]


_ = Decimal  # annotations above resolve Decimal at runtime
