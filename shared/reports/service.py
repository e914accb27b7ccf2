"""The five ledger reports, each one set-based query scoped to one tenant.

Balances come from the derived lots (`lots.remaining_quantity` is the sum of the lot's ledger quantities,
kept in the same transaction as every ledger write and checked by `asora ledger verify`); a point in the
past subtracts only the events after it. So stock on hand and valuation read the lots that hold stock, not
the whole ledger, and the movement report reads the lots plus the events since `from`.

Conventions every report shares:
- Quantities and values carry the ledger's sign: receipts and gains positive, issues and shrink negative,
  reversals the negation of what they reverse. So `opening + received + issued + adjusted + reversed =
  closing`, and `net = shrink + gain`.
- A reversal keeps the business time of the event it reverses, so a rolled-back run nets to zero in every
  window that contains it.
- Returns count against what they undo: a sale return (RETURN_IN) in `issued` (it is negative issue), a
  purchase return (RETURN_OUT) in `received`. Landed cost and cost adjustments move value, not units: they
  appear in values (`closing_value`, valuation), never in quantities.
- An event's bin is its lot's bin (lots do not move); an event whose lot has no bin uses its own `bin_id`.
  `hub_id` filters on that bin's hub.
- Rows are sorted by byte order of their text keys (`COLLATE "C"`), independent of the server's locale:
  stock-on-hand by (sku, lot_id); inventory-movement and valuation by sku; receiving-summary by
  (vendor_id, sku) with rows without a vendor (lots received by COGS runs) last; shrink-summary by
  (sku, bin_id) with rows without a bin last.
- A repost's COST_ADJUSTMENT events (units a costed sale takes from another lot of its SKU) count as `issued`:
  per SKU they net to zero, per hub they move issues between the bins of the lots concerned.
- Rows whose figures are all zero are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.reports.schemas import COLUMNS, ReportParams

Query = tuple[str, dict[str, Any]]


Row = dict[str, Any]


@dataclass(frozen=True)
class ReportResult:
    """Rows as the report's columns: text keys, counts as integers, and decimals as PostgreSQL renders a
    NUMERIC rounded to the report's scale (exact: only the average unit cost is actually rounded). Rows are
    plain dicts, not models: a report may have tens of thousands of rows and they are typed by the query."""

    report: str
    rows: list[Row]
    total_value: str | None = None


def _lot_balances(tenant_id: str, params: ReportParams) -> Query:
    """Per lot: sku, lot_id, bin_id, unit_cost, and the quantity and value held as of `as_of` (non-zero lots
    only). The value then is the value now less the amounts of the events after the cutoff, so a landed cost
    posted after it is not in it; the unit cost then is that value over that quantity. A moving-average SKU's
    later events are taken off at the lot's own cost (its pool's difference is the valuation's carried value,
    cut at the same moment)."""
    binds: dict[str, Any] = {"t": tenant_id}
    sku_lots = sku_events = ""
    if params.sku is not None:
        binds["sku"] = params.sku
        sku_lots, sku_events = "AND l.sku = :sku", "AND e.sku = :sku"
    as_of = params.moment("as_of")
    if as_of is None:
        return (
            f"""SELECT l.sku, l.lot_id, l.bin_id, l.unit_cost, l.remaining_quantity AS quantity,
                       l.remaining_quantity * l.unit_cost AS value
            FROM lots l WHERE l.tenant_id = :t AND l.remaining_quantity <> 0 {sku_lots}""",
            binds,
        )
    binds["cutoff"] = as_of.end_exclusive
    # Lots holding stock now, less what happened after the cutoff; plus lots empty now that held stock then
    # (looked up by primary key: only lots moved after the cutoff and not in the first set).
    return (
        f"""WITH later AS (
                SELECT e.lot_id, sum(e.quantity) AS quantity,
                       sum(CASE WHEN m.sku IS NULL OR l.lot_id IS NULL THEN e.amount
                                ELSE e.quantity * l.unit_cost END) AS amount
                FROM ledger_events e
                LEFT JOIN lots l ON l.tenant_id = :t AND l.lot_id = e.lot_id
                LEFT JOIN sku_valuation_methods m
                       ON m.tenant_id = :t AND m.sku = e.sku AND m.method = 'moving_average'
                WHERE e.tenant_id = :t AND e.occurred_at >= :cutoff {sku_events}
                GROUP BY e.lot_id
            ), live AS (
                SELECT l.sku, l.lot_id, l.bin_id, l.unit_cost, l.remaining_quantity FROM lots l
                WHERE l.tenant_id = :t AND l.remaining_quantity <> 0 {sku_lots}
            )
            SELECT live.sku, live.lot_id, live.bin_id,
                   CASE WHEN later.lot_id IS NULL THEN live.unit_cost
                        WHEN live.remaining_quantity - later.quantity <> 0
                        THEN (live.remaining_quantity * live.unit_cost - later.amount)
                             / (live.remaining_quantity - later.quantity)
                        ELSE live.unit_cost END AS unit_cost,
                   live.remaining_quantity - coalesce(later.quantity, 0) AS quantity,
                   live.remaining_quantity * live.unit_cost - coalesce(later.amount, 0) AS value
            FROM live LEFT JOIN later ON later.lot_id = live.lot_id
            UNION ALL
            SELECT l.sku, l.lot_id, l.bin_id, -later.amount / -later.quantity, -later.quantity, -later.amount
            FROM later CROSS JOIN LATERAL (
                -- LIMIT keeps this a primary-key lookup per lot rather than a scan of every lot
                SELECT sku, lot_id, bin_id, unit_cost FROM lots WHERE tenant_id = :t AND lot_id = later.lot_id LIMIT 1
            ) l
            WHERE later.quantity <> 0 AND NOT EXISTS (SELECT FROM live WHERE live.lot_id = later.lot_id)""",
        binds,
    )


def _hub(params: ReportParams, binds: dict[str, Any], bin_expr: str) -> tuple[str, str]:
    """A join to the bin of `bin_expr` and the condition on its hub, when `hub_id` is given."""
    if params.hub_id is None:
        return "", ""
    binds["hub"] = params.hub_id
    return f"JOIN bins b ON b.tenant_id = :t AND b.id = {bin_expr}", "AND b.hub_id = :hub"


def _stock_on_hand(tenant_id: str, params: ReportParams) -> Query:
    held, binds = _lot_balances(tenant_id, params)
    hub_cond = ""
    if params.hub_id is not None:
        binds["hub"] = params.hub_id
        hub_cond = "AND b.hub_id = :hub"
    return (
        f"""SELECT h.sku, i.name AS item_name, b.hub_id, h.bin_id, h.lot_id,
                   round(h.quantity, 4)::text AS quantity, round(h.unit_cost, 4)::text AS unit_cost,
                   round(h.value, 8)::text AS value
            FROM ({held}) h
            LEFT JOIN bins b ON b.tenant_id = :t AND b.id = h.bin_id
            LEFT JOIN items i ON i.tenant_id = :t AND i.sku = h.sku AND i.deleted_at IS NULL
            WHERE h.quantity <> 0 {hub_cond}
            ORDER BY h.sku COLLATE "C", h.lot_id COLLATE "C\"""",
        binds,
    )


def _carried(tenant_id: str, params: ReportParams, binds: dict[str, Any]) -> str:
    """Per SKU held to moving average: what its pool holds beyond its lots' quantity x unit cost (the sum over
    its events of amount - quantity x the lot's unit cost; zero for FIFO and LIFO events), up to `as_of`.
    Gated by a one-time check, so a tenant without moving-average SKUs reads no events."""
    cutoff = "AND e.occurred_at < :cutoff" if params.moment("as_of") is not None else ""
    sku = "AND e.sku = :sku" if params.sku is not None else ""
    ma = "SELECT sku FROM sku_valuation_methods WHERE tenant_id = :t AND method = 'moving_average'"
    return f"""SELECT e.sku, sum(e.amount - e.quantity * l.unit_cost) AS value
            FROM ledger_events e JOIN lots l ON l.tenant_id = :t AND l.lot_id = e.lot_id
            WHERE e.tenant_id = :t AND EXISTS ({ma}) AND e.sku IN ({ma}) {cutoff} {sku}
            GROUP BY e.sku"""


def _valuation(tenant_id: str, params: ReportParams) -> Query:
    """Lots at their own cost, plus (without a hub filter) each moving-average SKU's carried value, so a
    SKU's value is what its ledger amounts say under every method (docs/costing.md)."""
    held, binds = _lot_balances(tenant_id, params)
    hub_join, hub_cond = _hub(params, binds, "h.bin_id")
    carried = (
        _carried(tenant_id, params, binds)
        if params.hub_id is None
        else "SELECT NULL::text AS sku, 0 AS value WHERE false"
    )
    return (
        f"""WITH agg AS (
                SELECT h.sku, sum(h.quantity) AS quantity, sum(h.value) AS value
                FROM ({held}) h {hub_join}
                WHERE h.quantity <> 0 {hub_cond}
                GROUP BY h.sku
            ), carried AS ({carried}), v AS (
                SELECT coalesce(agg.sku, carried.sku) AS sku, coalesce(agg.quantity, 0) AS quantity,
                       coalesce(agg.value, 0) + coalesce(carried.value, 0) AS value
                FROM agg FULL JOIN carried ON carried.sku = agg.sku
            )
            SELECT sku, round(quantity, 4)::text AS quantity, round(value, 8)::text AS value,
                   round(CASE WHEN quantity <> 0 THEN value / quantity ELSE 0 END, 4)::text AS average_unit_cost,
                   round(sum(value) OVER (), 8)::text AS total_value
            FROM v
            WHERE quantity <> 0 OR value <> 0
            ORDER BY sku COLLATE "C\"""",
        binds,
    )


def _window(params: ReportParams, binds: dict[str, Any]) -> tuple[str, str]:
    """Conditions for `[from, to)` on `e.occurred_at`: (lower bound, upper bound), each possibly empty."""
    lower = upper = ""
    start, end = params.moment("from"), params.moment("to")
    if start is not None:
        binds["from"] = start.start
        lower = "AND e.occurred_at >= :from"
    if end is not None:
        binds["to"] = end.start
        upper = "AND e.occurred_at < :to"
    return lower, upper


def _movement(tenant_id: str, params: ReportParams) -> Query:
    """Closing = current balance less the events at or after `to`; opening = current balance less the
    events at or after `from`; the movements are the events in between, by type."""
    binds: dict[str, Any] = {"t": tenant_id}
    lower, upper = _window(params, binds)
    sku_l = sku_e = ""
    if params.sku is not None:
        binds["sku"] = params.sku
        sku_l, sku_e = "AND l.sku = :sku", "AND e.sku = :sku"
    lot_hub_join, hub_cond = _hub(params, binds, "l.bin_id")
    event_hub_join = f"JOIN lots l ON l.tenant_id = :t AND l.lot_id = e.lot_id {lot_hub_join}" if lot_hub_join else ""
    # a moving-average SKU's closing value includes its pool's carried value (now; later events' amounts are
    # taken off with the rest); a hub's closing value counts lots at their own cost
    no_carry = "SELECT NULL::text AS sku, 0 AS value WHERE false"
    carried = _carried(tenant_id, params.model_copy(update={"as_of": None}), binds) if not lot_hub_join else no_carry
    in_window = "e.occurred_at < :to" if upper else "true"
    after_to = "e.occurred_at >= :to" if upper else "false"

    def moved(*event_types: str) -> str:
        kinds = ", ".join(f"'{t}'" for t in event_types)
        return f"coalesce(sum(e.quantity) FILTER (WHERE e.event_type IN ({kinds}) AND {in_window}), 0)"

    return (
        f"""WITH cur AS (
                SELECT l.sku, sum(l.remaining_quantity) AS quantity, sum(l.remaining_quantity * l.unit_cost) AS value
                FROM lots l {lot_hub_join}
                WHERE l.tenant_id = :t AND l.remaining_quantity <> 0 {sku_l} {hub_cond}
                GROUP BY l.sku
            ), ev AS (
                SELECT e.sku,
                       sum(e.quantity) AS since_from,
                       coalesce(sum(e.quantity) FILTER (WHERE {after_to}), 0) AS since_to,
                       coalesce(sum(e.amount) FILTER (WHERE {after_to}), 0) AS since_to_value,
                       {moved("RECEIPT", "RETURN_OUT")} AS received,
                       {moved("ISSUE", "COST_ADJUSTMENT", "RETURN_IN")} AS issued,
                       {moved("ADJUSTMENT")} AS adjusted, {moved("REVERSAL")} AS reversed
                FROM ledger_events e {event_hub_join}
                WHERE e.tenant_id = :t {lower} {sku_e} {hub_cond}
                GROUP BY e.sku
            ), movement AS (
                SELECT coalesce(cur.sku, ev.sku) AS sku,
                       round(coalesce(cur.quantity, 0) - coalesce(ev.since_from, 0), 4) AS opening,
                       round(coalesce(ev.received, 0), 4) AS received,
                       round(coalesce(ev.issued, 0), 4) AS issued,
                       round(coalesce(ev.adjusted, 0), 4) AS adjusted,
                       round(coalesce(ev.reversed, 0), 4) AS reversed,
                       round(coalesce(cur.quantity, 0) - coalesce(ev.since_to, 0), 4) AS closing,
                       round(coalesce(cur.value, 0) + coalesce(carried.value, 0) - coalesce(ev.since_to_value, 0), 8)
                           AS closing_value
                FROM cur FULL JOIN ev ON ev.sku = cur.sku
                LEFT JOIN ({carried}) carried ON carried.sku = coalesce(cur.sku, ev.sku)
            )
            SELECT sku, opening::text, received::text, issued::text, adjusted::text, reversed::text, closing::text,
                   closing_value::text
            FROM movement
            WHERE opening <> 0 OR received <> 0 OR issued <> 0 OR adjusted <> 0 OR reversed <> 0
               OR closing <> 0 OR closing_value <> 0
            ORDER BY sku COLLATE "C\"""",
        binds,
    )


def _events_with_originals(tenant_id: str, params: ReportParams, kind: str, binds: dict[str, Any]) -> str:
    """Events of `kind` and the reversals of such events in the window, each with the original it reverses
    (`o_*`: the event itself for an original), its vendor and its bin (the lot's, else the event's)."""
    lower, upper = _window(params, binds)
    sku_e = ""
    if params.sku is not None:
        binds["sku"] = params.sku
        sku_e = "AND e.sku = :sku"
    binds["t"] = tenant_id
    hub_join, hub_cond = _hub(params, binds, "coalesce(l.bin_id, e.bin_id)")
    return f"""
        SELECT e.sku, e.event_type, e.quantity, e.amount, l.vendor_id, coalesce(l.bin_id, e.bin_id) AS bin_id,
               coalesce(r.quantity, e.quantity) AS o_quantity
        FROM ledger_events e
        -- LIMIT keeps both lookups on their primary keys, whatever the planner estimates
        LEFT JOIN LATERAL (
            SELECT r.event_type, r.quantity FROM ledger_events r
            WHERE r.tenant_id = :t AND r.seq = e.reverses_seq LIMIT 1
        ) r ON true
        LEFT JOIN LATERAL (
            SELECT l.vendor_id, l.bin_id FROM lots l WHERE l.tenant_id = :t AND l.lot_id = e.lot_id LIMIT 1
        ) l ON true
        {hub_join}
        WHERE e.tenant_id = :t AND e.event_type IN ('{kind}', 'REVERSAL') {lower} {upper} {sku_e} {hub_cond}
          AND (e.event_type = '{kind}' OR r.event_type = '{kind}')"""


def _receiving(tenant_id: str, params: ReportParams) -> Query:
    """Receipts net of their reversals: a receipt rolled back counts neither as a receipt nor in quantity."""
    binds: dict[str, Any] = {}
    events = _events_with_originals(tenant_id, params, "RECEIPT", binds)
    return (
        f"""SELECT vendor_id, sku,
                   count(*) FILTER (WHERE event_type = 'RECEIPT') - count(*) FILTER (WHERE event_type = 'REVERSAL')
                       AS receipts,
                   round(sum(quantity), 4)::text AS quantity, round(sum(amount), 8)::text AS value
            FROM ({events}) x
            GROUP BY vendor_id, sku
            HAVING count(*) FILTER (WHERE event_type = 'RECEIPT') <> count(*) FILTER (WHERE event_type = 'REVERSAL')
                OR sum(quantity) <> 0 OR sum(amount) <> 0
            ORDER BY vendor_id COLLATE "C" NULLS LAST, sku COLLATE "C\"""",
        binds,
    )


def _shrink(tenant_id: str, params: ReportParams) -> Query:
    """Adjustments by sign (a reversal is classed with the adjustment it reverses)."""
    binds: dict[str, Any] = {}
    events = _events_with_originals(tenant_id, params, "ADJUSTMENT", binds)

    def part(column: str, sign: str) -> str:
        scale = 4 if column == "quantity" else 8
        return f"round(coalesce(sum({column}) FILTER (WHERE o_quantity {sign} 0), 0), {scale})"

    return (
        f"""SELECT sku, bin_id, shrink_quantity::text, shrink_value::text, gain_quantity::text, gain_value::text,
                   net_quantity::text, net_value::text
            FROM (
                SELECT sku, bin_id,
                       {part("quantity", "<")} AS shrink_quantity, {part("amount", "<")} AS shrink_value,
                       {part("quantity", ">")} AS gain_quantity, {part("amount", ">")} AS gain_value,
                       round(sum(quantity), 4) AS net_quantity, round(sum(amount), 8) AS net_value
                FROM ({events}) x
                GROUP BY sku, bin_id
            ) s
            WHERE shrink_quantity <> 0 OR shrink_value <> 0 OR gain_quantity <> 0 OR gain_value <> 0
               OR net_quantity <> 0 OR net_value <> 0
            ORDER BY sku COLLATE "C", bin_id COLLATE "C" NULLS LAST""",
        binds,
    )


QUERIES = {
    "stock-on-hand": _stock_on_hand,
    "inventory-movement": _movement,
    "receiving-summary": _receiving,
    "shrink-summary": _shrink,
    "valuation": _valuation,
}


def run_report(session: Session, tenant_id: str, report: str, params: ReportParams) -> ReportResult:
    sql, binds = QUERIES[report](tenant_id, params)
    columns = COLUMNS[report]
    result = session.execute(text(sql), binds)
    if report != "valuation":
        return ReportResult(report=report, rows=[dict(zip(columns, row, strict=True)) for row in result])
    rows, total = [], "0.00000000"
    for row in result:
        *values, total = row
        rows.append(dict(zip(columns, values, strict=True)))
    return ReportResult(report=report, rows=rows, total_value=total)


def has_rows(session: Session, tenant_id: str, report: str, params: ReportParams) -> bool:
    """Whether the report would have at least one row ("no data for scope" otherwise)."""
    sql, binds = QUERIES[report](tenant_id, params)
    return bool(session.scalar(text(f"SELECT EXISTS ({sql})"), binds))


def stock_on_hand(session: Session, tenant_id: str, params: ReportParams) -> list[Row]:
    return run_report(session, tenant_id, "stock-on-hand", params).rows


def inventory_movement(session: Session, tenant_id: str, params: ReportParams) -> list[Row]:
    return run_report(session, tenant_id, "inventory-movement", params).rows


def receiving_summary(session: Session, tenant_id: str, params: ReportParams) -> list[Row]:
    return run_report(session, tenant_id, "receiving-summary", params).rows


def shrink_summary(session: Session, tenant_id: str, params: ReportParams) -> list[Row]:
    return run_report(session, tenant_id, "shrink-summary", params).rows


def valuation(session: Session, tenant_id: str, params: ReportParams) -> tuple[list[Row], str]:
    result = run_report(session, tenant_id, "valuation", params)
    assert result.total_value is not None
    return result.rows, result.total_value
