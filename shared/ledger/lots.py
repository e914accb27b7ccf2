"""Lots' rows for every writer: receiving cost layers and moving their balances (runs, rollbacks, receipts,
counts all go through `insert_lots` and `apply_deltas`).

A lot's `remaining_quantity` and `status` are derived from the ledger (`asora ledger verify --repair` rebuilds
them); a writer keeps them in step with the events it appends, in the same transaction. A lot id is received
once while its lot is live; once a rollback has reversed its receipt the id may be received anew, and the new
receipt replaces the reversed row whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from psycopg.errors import UniqueViolation
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shared import copytext
from shared.copyio import copy_chunks, copy_lines, temp_table
from shared.decimals import COST_SCALE, QTY_SCALE
from shared.errors import ValidationFailed

LOT_COLUMNS = (
    "tenant_id", "lot_id", "sku", "bin_id", "vendor_id", "received_at", "original_quantity", "received_quantity",
    "unit_price", "freight_cost_per_unit", "unit_cost", "remaining_quantity", "source_job_id", "source_run_id",
    "receipt_seq",
)  # fmt: skip
# A delta row: the lot, what to add to its remaining quantity, and whether its receipt is now reversed.
DELTA_COLUMNS = ("lot_id", "delta", "reversed")

# (lot_id, sku, bin_id, vendor_id, received_at, quantity, unit_price, freight, receipt_seq), scaled 10^4
LotRow = tuple[str, str, str | None, str | None, datetime, int, int, int, int]


@dataclass(frozen=True, slots=True)
class NewLots:
    """Lots to receive, in columns. Quantities and prices are scaled 10^4 (int64, or Python ints in object
    arrays), times UTC datetime64[us]; a lot's unit cost is its price plus freight."""

    lot_id: Sequence[str]
    sku: Sequence[str]
    received_at: npt.NDArray[np.datetime64]
    original_quantity: npt.NDArray[Any]
    received_quantity: npt.NDArray[Any]
    remaining_quantity: npt.NDArray[Any]
    unit_price: npt.NDArray[Any]
    freight: npt.NDArray[Any]
    receipt_seq: Sequence[int] | npt.NDArray[np.int64]
    source_job_id: str
    source_run_id: str | None = None
    bin_id: Sequence[str | None] | None = None
    vendor_id: Sequence[str | None] | None = None

    def __len__(self) -> int:
        return len(self.lot_id)

    @classmethod
    def from_rows(cls, rows: Sequence[LotRow], *, source_job_id: str) -> NewLots:
        """Lots received in full, a few at a time (a receipt's lines, a count's gains): original, received
        and remaining quantity are all the quantity received."""
        columns = [list(c) for c in zip(*rows, strict=True)] or [[] for _ in range(9)]
        lot_id, sku, bin_id, vendor_id, received_at, quantity, price, freight, seq = columns
        exact = np.array(quantity, dtype=object)
        return cls(
            lot_id=lot_id, sku=sku, received_at=_utc64(received_at), original_quantity=exact,
            received_quantity=exact, remaining_quantity=exact, unit_price=np.array(price, dtype=object),
            freight=np.array(freight, dtype=object), receipt_seq=seq, source_job_id=source_job_id,
            bin_id=bin_id, vendor_id=vendor_id,
        )  # fmt: skip


def insert_lots(session: Session, tenant_id: str, lots: NewLots) -> None:
    """Receive lots, by COPY (a run receives hundreds of thousands). A reversed lot's row goes first, so its
    id is received anew; a live lot id is refused by the primary key (LOT_CONFLICT), though every writer has
    already checked under the tenant fence that none is."""
    n = len(lots)
    if not n:
        return
    session.execute(
        text("DELETE FROM lots WHERE tenant_id = :t AND status = 'reversed' AND lot_id = ANY(:ids)"),
        {"t": tenant_id, "ids": list(lots.lot_id)},
    )
    nulls = [copytext.NULL] * n
    lines = copytext.join_rows([
        copytext.constant(tenant_id, n), copytext.text_column(lots.lot_id), copytext.text_column(lots.sku),
        copytext.text_column(lots.bin_id) if lots.bin_id is not None else nulls,
        copytext.text_column(lots.vendor_id) if lots.vendor_id is not None else nulls,
        copytext.timestamp_column(lots.received_at),
        copytext.scaled_column(lots.original_quantity, QTY_SCALE),
        copytext.scaled_column(lots.received_quantity, QTY_SCALE),
        copytext.scaled_column(lots.unit_price, COST_SCALE), copytext.scaled_column(lots.freight, COST_SCALE),
        copytext.scaled_column(lots.unit_price + lots.freight, COST_SCALE),
        copytext.scaled_column(lots.remaining_quantity, QTY_SCALE),
        copytext.constant(lots.source_job_id, n), copytext.constant(lots.source_run_id, n),
        copytext.int_column(lots.receipt_seq),
    ])  # fmt: skip
    try:
        copy_lines(session, "lots", LOT_COLUMNS, lines)
    except (UniqueViolation, IntegrityError) as exc:  # COPY as the bulk writer, or through a staging table
        if not isinstance(getattr(exc, "orig", exc), UniqueViolation):
            raise
        raise ValidationFailed(
            "a lot id of this job is already live",
            reason="LOT_CONFLICT",
            details=[{"field": "lot_id", "message": "live"}],
        ) from exc


def encode_deltas(
    lot_ids: Sequence[str], deltas: Sequence[int] | npt.NDArray[Any], reversed_: npt.NDArray[np.bool_] | None = None
) -> str:
    """Delta rows as COPY text (`DELTA_COLUMNS`), for `apply_deltas`; deltas are scaled 10^4."""
    values = deltas if isinstance(deltas, np.ndarray) else np.array(deltas, dtype=object)
    flags = ["t" if r else "f" for r in reversed_.tolist()] if reversed_ is not None else ["f"] * len(lot_ids)
    rows = copytext.join_rows([copytext.text_column(lot_ids), copytext.scaled_column(values, QTY_SCALE), flags])
    return "".join(f"{row}\n" for row in rows)


class NegativeBalance(Exception):
    """Deltas that would take lots below zero; nothing was changed."""

    def __init__(self, lot_ids: list[str]) -> None:
        super().__init__(f"lots would go below zero: {', '.join(lot_ids[:10])}")
        self.lot_ids = lot_ids


def apply_deltas(session: Session, tenant_id: str, chunks: Iterable[str], *, refuse_negative: bool = False) -> None:
    """Add each delta to its lot's remaining quantity and mark the lots it says are reversed, in one UPDATE.
    `chunks` are COPY text of `DELTA_COLUMNS`, whole lines: `encode_deltas` makes them, or PostgreSQL renders
    them itself (a rollback sums a run's events). With `refuse_negative`, if any lot would go below zero
    nothing changes and NegativeBalance names (up to 100 of) them."""
    # The primary key refuses two deltas for one lot, which the UPDATE below would silently apply only once.
    temp_table(session, "tmp_lot_deltas", "lot_id text PRIMARY KEY, delta numeric, reversed boolean")
    copy_chunks(session, "tmp_lot_deltas", DELTA_COLUMNS, chunks)
    params = {"t": tenant_id}
    if refuse_negative:
        negative = session.scalars(
            text("""
            SELECT lots.lot_id FROM lots JOIN tmp_lot_deltas d ON lots.lot_id = d.lot_id
            WHERE lots.tenant_id = :t AND lots.remaining_quantity + d.delta < 0 ORDER BY lots.lot_id LIMIT 100"""),
            params,
        ).all()
        if negative:
            session.execute(text("DROP TABLE tmp_lot_deltas"))
            raise NegativeBalance(list(negative))
    session.execute(
        text("""
        UPDATE lots SET remaining_quantity = lots.remaining_quantity + d.delta,
                        status = CASE WHEN d.reversed THEN 'reversed' ELSE lots.status END
        FROM tmp_lot_deltas d WHERE lots.tenant_id = :t AND lots.lot_id = d.lot_id"""),
        params,
    )
    session.execute(text("DROP TABLE tmp_lot_deltas"))  # a transaction may apply several (a cascade, a run)


def _utc64(values: Iterable[datetime]) -> npt.NDArray[np.datetime64]:
    return np.array([np.datetime64(v.astimezone(UTC).replace(tzinfo=None), "us") for v in values], "datetime64[us]")
