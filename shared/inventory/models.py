"""Master data (categories, hubs, bins, vendors, items: soft-deleted, identity immutable) and cycle counts
(permanent: what was counted and what was expected stay visible after the adjustment is ledgered)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, Numeric, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.base import Base, CreatedAt, Money, Quantity


class _MasterRecord:
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[CreatedAt]
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Category(_MasterRecord, Base):
    __tablename__ = "categories"
    __table_args__ = (Index("ix_categories_tenant", "tenant_id", "id"),)


class Hub(_MasterRecord, Base):
    __tablename__ = "hubs"
    __table_args__ = (Index("ix_hubs_tenant", "tenant_id", "id"),)


class Bin(_MasterRecord, Base):
    __tablename__ = "bins"
    __table_args__ = (Index("ix_bins_tenant", "tenant_id", "id"),)

    hub_id: Mapped[str] = mapped_column(String(40))


class Vendor(_MasterRecord, Base):
    __tablename__ = "vendors"
    __table_args__ = (Index("ix_vendors_tenant", "tenant_id", "id"),)

    enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")


class Item(_MasterRecord, Base):
    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_tenant", "tenant_id", "id"),
        Index("uq_items_tenant_sku", "tenant_id", "sku", unique=True, postgresql_where="deleted_at IS NULL"),
    )

    sku: Mapped[str] = mapped_column(String(100))
    category_id: Mapped[str] = mapped_column(String(40))
    default_bin_id: Mapped[str | None] = mapped_column(String(40))


class Count(Base):
    """A cycle count as accepted. Append-only; its status is its job's."""

    __tablename__ = "counts"
    __table_args__ = (Index("ix_counts_tenant", "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", deferrable=True, initially="DEFERRED"), unique=True)
    bin_id: Mapped[str] = mapped_column(String(40))
    counted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[CreatedAt]


class CountLine(Base):
    """One counted SKU, written when the count is executed: expected is the bin's stock at that moment.
    `amount` is the signed value of the ADJUSTMENT events the difference produced; `unit_cost` is the cost
    a gain was valued at (shrink is valued per consumed lot)."""

    __tablename__ = "count_lines"
    __table_args__ = (PrimaryKeyConstraint("count_id", "line"),)

    count_id: Mapped[str] = mapped_column(ForeignKey("counts.id"))
    line: Mapped[int] = mapped_column(Integer)
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    sku: Mapped[str] = mapped_column(String(100))
    expected_quantity: Mapped[Quantity]
    counted_quantity: Mapped[Quantity]
    difference: Mapped[Quantity]
    unit_cost: Mapped[Decimal | None] = mapped_column(Numeric(20, 4))
    amount: Mapped[Money]
