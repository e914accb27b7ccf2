"""The append-only ledger and the lot balances derived from it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, LargeBinary, PrimaryKeyConstraint, String, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column, query_expression

from shared.base import Base, CreatedAt, EnumText, Money, Quantity, UnitCost


class EventType(StrEnum):
    """What a ledger event records. Quantities are signed: receipts and gains positive, issues and shrink
    negative; a reversal is the negation of the event it reverses."""

    RECEIPT = "RECEIPT"
    ISSUE = "ISSUE"
    ADJUSTMENT = "ADJUSTMENT"
    REVERSAL = "REVERSAL"
    COST_ADJUSTMENT = "COST_ADJUSTMENT"
    # Returns and landed cost (shared/returns, shared/landed_costs): a sale's units coming back as a new lot
    # (+), units going back to the vendor out of their lot (-), and cost added to a lot after its receipt
    # (quantity 0, `unit_cost` the per-unit increment, `amount` the whole landed cost; the part already issued
    # leaves the lot again as COST_ADJUSTMENT events, amount negative, on the sales that consumed it).
    RETURN_IN = "RETURN_IN"
    RETURN_OUT = "RETURN_OUT"
    LANDED_COST = "LANDED_COST"
    # A switch away from moving average with `revalue` (shared/runs/revaluation.py): quantity 0, unit cost 0,
    # `amount` the signed part of the pool's carried value given to the lot, so that afterwards the SKU's ledger
    # amounts sum to its live lots' quantity x unit cost.
    REVALUATION = "REVALUATION"


class LotStatus(StrEnum):
    LIVE = "live"
    REVERSED = "reversed"  # its receipt was reversed by a rollback; the lot id may be received anew


class HexDigest(TypeDecorator[str]):
    """A SHA-256 digest: stored as its 32 bytes, handled and shown as 64 hex digits."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else bytes.fromhex(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else bytes(value).hex()


class LedgerEvent(Base):
    """One immutable inventory fact. `quantity` and `amount` are signed: receipts and gains positive,
    issues and shrink negative, reversals the negation of what they reverse."""

    __tablename__ = "ledger_events"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "seq"),
        # Deliberately few indexes: a 1M-sale run appends over a million rows and every index is paid per
        # row. Balances and reports read derived tables (lots); a run's events are read by its seq range
        # (`runs.first_seq`/`last_seq`) through the primary key. The one secondary index, on business time,
        # is declared with the reports that read it (shared/reports/models.py).
    )

    tenant_id: Mapped[str] = mapped_column(String(63))
    seq: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[EventType] = mapped_column(EnumText(EventType, 16))
    sku: Mapped[str] = mapped_column(String(100))
    lot_id: Mapped[str] = mapped_column(String(200))
    bin_id: Mapped[str | None] = mapped_column(String(40))
    quantity: Mapped[Quantity]
    unit_cost: Mapped[UnitCost]
    amount: Mapped[Money]
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[CreatedAt]
    job_id: Mapped[str] = mapped_column(String(40))
    run_id: Mapped[str | None] = mapped_column(String(40))
    reference: Mapped[str | None] = mapped_column(String(200))
    reverses_seq: Mapped[int | None] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(HexDigest)
    # The hash this event's hash was chained from. Not stored: it is the `hash` of the event at `seq - 1` (the
    # genesis hash before the first), loaded where it is shown with `queries.previous_hash()`.
    prev_hash: Mapped[str] = query_expression()


class Lot(Base):
    """A cost layer. Attributes are fixed at receipt; `remaining_quantity` is derived from the ledger and
    rebuildable by `asora ledger verify --repair`."""

    __tablename__ = "lots"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "lot_id"),
        # No index of its own on (sku, received_at): FIFO reads want only lots that hold stock, which the
        # partial `ix_lots_on_hand` (shared/reports/models.py) finds; a rollback rewrites every lot of a run,
        # and each index here is paid per rewritten lot.
    )

    tenant_id: Mapped[str] = mapped_column(String(63))
    lot_id: Mapped[str] = mapped_column(String(200))
    sku: Mapped[str] = mapped_column(String(100))
    bin_id: Mapped[str | None] = mapped_column(String(40))
    vendor_id: Mapped[str | None] = mapped_column(String(40))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    original_quantity: Mapped[Quantity]
    received_quantity: Mapped[Quantity]
    unit_price: Mapped[UnitCost]
    freight_cost_per_unit: Mapped[UnitCost]
    unit_cost: Mapped[UnitCost]
    remaining_quantity: Mapped[Quantity]
    status: Mapped[LotStatus] = mapped_column(EnumText(LotStatus, 16), server_default="live")
    source_job_id: Mapped[str] = mapped_column(String(40))
    source_run_id: Mapped[str | None] = mapped_column(String(40))
    receipt_seq: Mapped[int] = mapped_column(BigInteger)
