"""The access paths reports need on the ledger's tables. Declared here, beside the queries that use them,
so the metadata (and migration 0004) carry them without the ledger module knowing about reports.

- `ix_lots_on_hand`: stock on hand, valuation and the movement report's current balances read only the
  lots that still hold stock, which is a small part of a long-lived tenant's lots.
- `ix_ledger_events_occurred`: windows and `as_of` read only the events after a point in business time.

The lots index carries (INCLUDE) the columns the reports read, so it is answered by an index-only scan. The
ledger's index is the key alone: every ledger write pays for it per row (a 1 M-sale run writes 1.36 M events),
and the events a window reads were appended together, mostly in business-time order, so the heap pages they
are fetched from are few (migration 0006).
"""

from __future__ import annotations

from sqlalchemy import Index, text

from shared.ledger.models import LedgerEvent, Lot

LOTS_ON_HAND = Index(
    "ix_lots_on_hand",
    Lot.tenant_id,
    Lot.sku,
    postgresql_where=text("remaining_quantity <> 0"),
    postgresql_include=["lot_id", "bin_id", "unit_cost", "remaining_quantity"],
)
LEDGER_BY_OCCURRED = Index(
    "ix_ledger_events_occurred",
    LedgerEvent.tenant_id,
    LedgerEvent.occurred_at,
)
