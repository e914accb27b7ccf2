"""Master data: categories, hubs, bins, vendors, items. Soft-deleted, identity immutable."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.base import Base, CreatedAt


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
