"""An independent recomputation of every report from raw ledger rows (`SELECT * FROM ledger_events`), in
plain Python, to check the SQL reports against. It shares no code with shared/reports: the date rules and
the sign conventions are re-implemented here from the documented contract.

Master data the ledger does not carry comes from its own tables: item names, each bin's hub, and each
lot's vendor (a receipt's vendor is a property of the lot)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tests.support import query

ZERO = Decimal(0)
NUMERIC = {
    "quantity",
    "unit_cost",
    "value",
    "opening",
    "received",
    "issued",
    "adjusted",
    "reversed",
    "closing",
    "closing_value",
    "shrink_quantity",
    "shrink_value",
    "gain_quantity",
    "gain_value",
    "net_quantity",
    "net_value",
    "average_unit_cost",
}


@dataclass
class Ledger:
    events: list[dict[str, Any]]
    vendors: dict[str, str | None]
    items: dict[str, str]
    hubs: dict[str, str]

    def __post_init__(self) -> None:
        # Each lot's creating event: its latest RECEIPT, else its first event (e.g. a count's gain).
        self.origin: dict[str, dict[str, Any]] = {}
        for e in self.events:
            if e["lot_id"] not in self.origin or e["event_type"] == "RECEIPT":
                self.origin[e["lot_id"]] = e

    def lot_origin(self) -> dict[str, dict[str, Any]]:
        return self.origin

    def bin_of(self, event: dict[str, Any]) -> str | None:
        lot_bin: str | None = self.origin[event["lot_id"]]["bin_id"]
        event_bin: str | None = event["bin_id"]
        return lot_bin if lot_bin is not None else event_bin


def load(tenant_id: str) -> Ledger:
    events = [
        dict(r._mapping)
        for r in query("SELECT * FROM ledger_events WHERE tenant_id = :t ORDER BY seq", {"t": tenant_id}, tenant_id)
    ]
    vendors = {r.lot_id: r.vendor_id for r in query("SELECT lot_id, vendor_id FROM lots", tenant_id=tenant_id)}
    items = {r.sku: r.name for r in query("SELECT sku, name FROM items WHERE deleted_at IS NULL", tenant_id=tenant_id)}
    hubs = {r.id: r.hub_id for r in query("SELECT id, hub_id FROM bins", tenant_id=tenant_id)}
    return Ledger(events, vendors, items, hubs)


def _bound(text: str | None, *, end_of_day: bool, inclusive_instant: bool) -> datetime | None:
    """The exclusive upper (or inclusive lower) instant a parameter names."""
    if text is None:
        return None
    if len(text) == 10:
        start = datetime.combine(date.fromisoformat(text), time(), UTC)
        return start + timedelta(days=1) if end_of_day else start
    instant = datetime.fromisoformat(text)
    instant = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    return instant + timedelta(microseconds=1) if inclusive_instant else instant


def _matches(ledger: Ledger, e: dict[str, Any], params: dict[str, str]) -> bool:
    if "sku" in params and e["sku"] != params["sku"]:
        return False
    return not ("hub_id" in params and ledger.hubs.get(ledger.bin_of(e) or "") != params["hub_id"])


def _window(e: dict[str, Any], params: dict[str, str]) -> bool:
    start = _bound(params.get("from"), end_of_day=False, inclusive_instant=False)
    end = _bound(params.get("to"), end_of_day=False, inclusive_instant=False)
    return (start is None or e["occurred_at"] >= start) and (end is None or e["occurred_at"] < end)


def stock_on_hand(ledger: Ledger, params: dict[str, str]) -> list[dict[str, Any]]:
    cutoff = _bound(params.get("as_of"), end_of_day=True, inclusive_instant=True)
    origin = ledger.lot_origin()
    qty: dict[str, Decimal] = defaultdict(Decimal)
    value: dict[str, Decimal] = defaultdict(Decimal)
    for e in ledger.events:
        if (cutoff is None or e["occurred_at"] < cutoff) and _matches(ledger, e, params):
            qty[e["lot_id"]] += e["quantity"]
            value[e["lot_id"]] += e["amount"]
    rows = []
    for lot_id, q in qty.items():
        if q == 0:
            continue
        o = origin[lot_id]
        assert value[lot_id] == q * o["unit_cost"], f"ledger amounts of {lot_id} disagree with its cost"
        rows.append(
            {
                "sku": o["sku"],
                "item_name": ledger.items.get(o["sku"]),
                "hub_id": ledger.hubs.get(o["bin_id"] or ""),
                "bin_id": o["bin_id"],
                "lot_id": lot_id,
                "quantity": q,
                "unit_cost": o["unit_cost"],
                "value": value[lot_id],
            }
        )
    return sorted(rows, key=lambda r: (r["sku"], r["lot_id"]))


def valuation(ledger: Ledger, params: dict[str, str]) -> tuple[list[dict[str, Any]], Decimal]:
    per_sku: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for row in stock_on_hand(ledger, params):
        per_sku[row["sku"]][0] += row["quantity"]
        per_sku[row["sku"]][1] += row["value"]
    rows: list[dict[str, Any]] = [
        {
            "sku": sku,
            "quantity": q,
            "value": v,
            "average_unit_cost": (v / q).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) if q else ZERO,
        }
        for sku, (q, v) in sorted(per_sku.items())
        if q or v
    ]
    total: Decimal = sum((v for _, v in per_sku.values()), ZERO)
    return rows, total


def inventory_movement(ledger: Ledger, params: dict[str, str]) -> list[dict[str, Any]]:
    start = _bound(params.get("from"), end_of_day=False, inclusive_instant=False)
    end = _bound(params.get("to"), end_of_day=False, inclusive_instant=False)
    columns = ("opening", "received", "issued", "adjusted", "reversed", "closing", "closing_value")
    by_type = {"RECEIPT": "received", "ISSUE": "issued", "ADJUSTMENT": "adjusted", "REVERSAL": "reversed"}
    per_sku: dict[str, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(columns, ZERO))
    for e in ledger.events:
        if not _matches(ledger, e, params):
            continue
        row = per_sku[e["sku"]]
        before_start = start is not None and e["occurred_at"] < start
        before_end = end is None or e["occurred_at"] < end
        if before_start:
            row["opening"] += e["quantity"]
        elif before_end:
            row[by_type[e["event_type"]]] += e["quantity"]
        if before_end:
            row["closing"] += e["quantity"]
            row["closing_value"] += e["amount"]
    return [{"sku": sku, **row} for sku, row in sorted(per_sku.items()) if any(row.values())]


def _with_originals(ledger: Ledger, kind: str, params: dict[str, str]) -> list[tuple[dict[str, Any], Decimal]]:
    """Events of `kind` and reversals of them, in the window, each with the original's quantity."""
    by_seq = {e["seq"]: e for e in ledger.events}
    out = []
    for e in ledger.events:
        if e["event_type"] == kind:
            original = e
        elif e["event_type"] == "REVERSAL" and by_seq[e["reverses_seq"]]["event_type"] == kind:
            original = by_seq[e["reverses_seq"]]
        else:
            continue
        if _window(e, params) and _matches(ledger, e, params):
            out.append((e, original["quantity"]))
    return out


def receiving_summary(ledger: Ledger, params: dict[str, str]) -> list[dict[str, Any]]:
    groups: dict[tuple[str | None, str], dict[str, Any]] = defaultdict(
        lambda: {"receipts": 0, "quantity": ZERO, "value": ZERO}
    )
    for e, _ in _with_originals(ledger, "RECEIPT", params):
        g = groups[(ledger.vendors.get(e["lot_id"]), e["sku"])]
        g["receipts"] += 1 if e["event_type"] == "RECEIPT" else -1
        g["quantity"] += e["quantity"]
        g["value"] += e["amount"]
    rows = [{"vendor_id": v, "sku": s, **g} for (v, s), g in groups.items() if any(g.values())]
    return sorted(rows, key=lambda r: (r["vendor_id"] is None, r["vendor_id"] or "", r["sku"]))


def shrink_summary(ledger: Ledger, params: dict[str, str]) -> list[dict[str, Any]]:
    columns = ("shrink_quantity", "shrink_value", "gain_quantity", "gain_value", "net_quantity", "net_value")
    groups: dict[tuple[str, str | None], dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(columns, ZERO))
    for e, original_quantity in _with_originals(ledger, "ADJUSTMENT", params):
        g = groups[(e["sku"], ledger.bin_of(e))]
        if original_quantity < 0:
            g["shrink_quantity"] += e["quantity"]
            g["shrink_value"] += e["amount"]
        elif original_quantity > 0:
            g["gain_quantity"] += e["quantity"]
            g["gain_value"] += e["amount"]
        g["net_quantity"] += e["quantity"]
        g["net_value"] += e["amount"]
    rows = [{"sku": s, "bin_id": b, **g} for (s, b), g in groups.items() if any(g.values())]
    return sorted(rows, key=lambda r: (r["sku"], r["bin_id"] is None, r["bin_id"] or ""))


ORACLES = {
    "stock-on-hand": stock_on_hand,
    "inventory-movement": inventory_movement,
    "receiving-summary": receiving_summary,
    "shrink-summary": shrink_summary,
}


def expected(ledger: Ledger, report: str, params: dict[str, str]) -> list[dict[str, Any]]:
    if report == "valuation":
        return valuation(ledger, params)[0]
    return ORACLES[report](ledger, params)


def as_values(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Report rows (decimal strings) as comparable values, checking the fixed decimal places on the way."""
    out = []
    for row in rows:
        converted = {}
        for key, value in row.items():
            if key in NUMERIC:
                places = 8 if key.endswith("value") and key != "average_unit_cost" else 4
                assert isinstance(value, str), (key, value)
                assert len(value.partition(".")[2]) == places, f"{key}={value} should have {places} decimals"
                converted[key] = Decimal(value)
            else:
                converted[key] = value
        out.append(converted)
    return out
