"""Checking a tenant's ledger and rebuilding what is derived from it (`asora ledger verify`).

The ledger is the truth. Two kinds of findings:
- the hash chain: every event's hash is recomputed from its canonical form and the stored hash of the
  event before it (a removed, inserted or altered event breaks it there), `seq` must be gapless from 1,
  and the `ledger_heads` row must name the last event.
  These are reported, never repaired: the ledger is append-only and nothing here writes it.
- derived tables, recomputed set-based from the ledger: `lots.remaining_quantity` (sum of the lot's ledger
  quantities, through every event type: returns move units, a repost's COST_ADJUSTMENTs move units between
  lots at each lot's cost, landed cost and its COST_ADJUSTMENTs and a revaluation's REVALUATIONs move value
  only), `lots.unit_cost` of a lot
  with landed cost (its creating event's cost plus the LANDED_COST increments), `lots.status` (`reversed`
  when the lot's latest RECEIPT was reversed), `lots.receipt_seq`, lot rows missing or without any event, for
  completed or rolled-back runs the totals and per-sale results against their ISSUE events (what the run
  itself posted), and each repost's change to a run (`repost_runs.amount`) against its COST_ADJUSTMENT events.
  `repair_derived` rewrites exactly these, in the caller's transaction.

A missing lot row is rebuilt from the event that created it; what the ledger does not carry (vendor, the
split of unit cost into price and freight, the original quantity declared in a lots file) is rebuilt as
no vendor, price = unit cost with no freight, and original = received quantity.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from shared import db
from shared.ledger.canonical import CONTENT_COLUMNS, GENESIS_HASH, chain_hash, of_stored
from shared.locks import fence_key
from shared.tenants.models import LedgerHead

MAX_CHAIN_FINDINGS = 1000
LIVE_RUN = "r.status IN ('completed', 'rolled_back') AND NOT r.dry_run"


@dataclass(frozen=True)
class Difference:
    check: str  # what disagrees, e.g. "lots.remaining_quantity" or "ledger.hash"
    key: str  # the row concerned: a lot id, run id, "run_id/sale_id" or a ledger seq
    expected: str | None  # what the ledger says
    actual: str | None  # what is stored
    repairable: bool


@dataclass
class VerifyResult:
    tenant_id: str
    events: int = 0
    head_seq: int = 0
    differences: list[Difference] = field(default_factory=list)
    repaired: list[Difference] = field(default_factory=list)
    chain_findings_omitted: int = 0

    @property
    def chain_ok(self) -> bool:
        return not any(d.check.startswith("ledger") for d in self.differences) and not self.chain_findings_omitted

    @property
    def remaining(self) -> list[Difference]:
        fixed = set(self.repaired)
        return [d for d in self.differences if d not in fixed]

    @property
    def ok(self) -> bool:
        return not self.remaining and not self.chain_findings_omitted

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "ok": self.ok,
            "chain_ok": self.chain_ok,
            "events": self.events,
            "head_seq": self.head_seq,
            "differences": [asdict(d) | {"repaired": d in set(self.repaired)} for d in self.differences],
            "chain_findings_omitted": self.chain_findings_omitted,
        }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return format(value, "f") if isinstance(value, Decimal) else str(value)


# --- the hash chain -----------------------------------------------------------------------------------

_CHAIN_QUERY = f"""
    SELECT {", ".join(CONTENT_COLUMNS)}, encode(hash, 'hex')
    FROM ledger_events WHERE tenant_id = %s ORDER BY seq"""


def verify_chain(session: Session, tenant_id: str, result: VerifyResult) -> None:
    """Stream the tenant's events in seq order (a server-side cursor; memory stays flat) and recompute each
    hash from its canonical form."""
    findings: list[Difference] = []

    def found(check: str, seq: int, expected: str | None, actual: str | None) -> None:
        if len(findings) < MAX_CHAIN_FINDINGS:
            findings.append(Difference(check, str(seq), expected, actual, repairable=False))
        else:
            result.chain_findings_omitted += 1

    raw = session.connection().connection.driver_connection
    assert raw is not None
    expected_seq, prev, count = 1, GENESIS_HASH, 0
    with raw.cursor(name="asora_verify_chain") as cur:
        cur.itersize = 20_000
        cur.execute(_CHAIN_QUERY, (tenant_id,))
        for row in cur:
            seq, stored_hash = row[1], row[-1]
            count += 1
            if seq != expected_seq:
                found("ledger.seq", seq, str(expected_seq), str(seq))
            digest = chain_hash(prev, of_stored(row))
            if digest != stored_hash:
                found("ledger.hash", seq, digest, stored_hash)
            prev, expected_seq = stored_hash, seq + 1
    result.events = count
    head = session.execute(select(LedgerHead.seq, LedgerHead.hash).where(LedgerHead.tenant_id == tenant_id)).first()
    last_seq = expected_seq - 1
    if head is None:
        findings.append(Difference("ledger_heads.missing", tenant_id, f"{last_seq} {prev}", None, repairable=False))
    else:
        result.head_seq = int(head.seq)
        if (int(head.seq), str(head.hash)) != (last_seq, prev):
            findings.append(
                Difference("ledger_heads", tenant_id, f"{last_seq} {prev}", f"{head.seq} {head.hash}", repairable=False)
            )
    result.differences.extend(findings)


# --- derived tables -----------------------------------------------------------------------------------

# Per lot id in the ledger: the balance, the latest RECEIPT and whether it was reversed, and the event that
# created the lot's current incarnation (its latest RECEIPT, else its first event, e.g. a count's gain or a
# sale return). A lot that received landed cost (LANDED_COST events, each carrying its per-unit increment)
# has the unit cost of that event plus the increments; the creating event is looked up (by primary key) only
# for those few lots. Landed cost is only ever posted on a live incarnation, and the one lot kind that can be
# reversed (a run's) cannot be once it has landed cost (shared/runs/service.py), so every increment counts.
_EXPECTED_LOTS = """
    WITH ev AS (
        SELECT lot_id, sum(quantity) AS quantity, max(seq) FILTER (WHERE event_type = 'RECEIPT') AS receipt_seq,
               min(seq) AS first_seq, sum(unit_cost) FILTER (WHERE event_type = 'LANDED_COST') AS landed
        FROM ledger_events WHERE tenant_id = :t GROUP BY lot_id
    ), reversed AS (
        SELECT DISTINCT reverses_seq FROM ledger_events WHERE tenant_id = :t AND event_type = 'REVERSAL'
    )
    SELECT ev.lot_id, ev.quantity, ev.receipt_seq, coalesce(ev.receipt_seq, ev.first_seq) AS origin_seq,
           CASE WHEN reversed.reverses_seq IS NULL THEN 'live' ELSE 'reversed' END AS status, ev.landed,
           CASE WHEN ev.landed IS NOT NULL THEN ev.landed + (
               SELECT o.unit_cost FROM ledger_events o
               WHERE o.tenant_id = :t AND o.seq = coalesce(ev.receipt_seq, ev.first_seq)) END AS unit_cost
    FROM ev LEFT JOIN reversed ON reversed.reverses_seq = ev.receipt_seq"""

_LOT_DIFFERENCES = f"""
    WITH x AS ({_EXPECTED_LOTS})
    SELECT coalesce(l.lot_id, x.lot_id) AS lot_id, l.lot_id IS NULL AS missing, x.lot_id IS NULL AS orphan,
           l.remaining_quantity, x.quantity, l.status, x.status AS expected_status,
           l.receipt_seq, x.receipt_seq AS expected_receipt_seq, x.origin_seq,
           l.unit_cost, x.unit_cost AS expected_unit_cost
    FROM (SELECT lot_id, remaining_quantity, status, receipt_seq, unit_cost FROM lots WHERE tenant_id = :t) l
    FULL JOIN x ON x.lot_id = l.lot_id
    WHERE l.lot_id IS NULL OR x.lot_id IS NULL OR l.remaining_quantity <> x.quantity OR l.status <> x.status
       OR (x.receipt_seq IS NOT NULL AND l.receipt_seq <> x.receipt_seq)
       OR (x.unit_cost IS NOT NULL AND l.unit_cost <> x.unit_cost)
    ORDER BY 1"""

_RUN_DIFFERENCES = f"""
    SELECT r.id, r.total_quantity, r.total_cogs,
           coalesce(-sum(e.quantity), 0) AS quantity, coalesce(-sum(e.amount), 0) AS cogs
    FROM runs r
    LEFT JOIN ledger_events e ON e.tenant_id = :t AND e.run_id = r.id AND e.event_type = 'ISSUE'
    WHERE r.tenant_id = :t AND {LIVE_RUN}
    GROUP BY r.id, r.total_quantity, r.total_cogs
    HAVING r.total_quantity <> coalesce(-sum(e.quantity), 0) OR r.total_cogs <> coalesce(-sum(e.amount), 0)
    ORDER BY r.id"""

_SALE_DIFFERENCES = f"""
    SELECT s.run_id, s.sale_id, s.quantity AS stored_quantity, s.cogs AS stored_cogs,
           coalesce(-sum(e.quantity), 0) AS quantity, coalesce(-sum(e.amount), 0) AS cogs
    FROM run_sales s
    JOIN runs r ON r.tenant_id = :t AND r.id = s.run_id AND {LIVE_RUN}
    LEFT JOIN ledger_events e
           ON e.tenant_id = :t AND e.run_id = s.run_id AND e.event_type = 'ISSUE' AND e.reference = s.sale_id
    WHERE s.tenant_id = :t
    GROUP BY s.run_id, s.sale_id, s.quantity, s.cogs
    HAVING s.quantity <> coalesce(-sum(e.quantity), 0) OR s.cogs <> coalesce(-sum(e.amount), 0)
    ORDER BY s.run_id, s.sale_id"""


# Each repost's change to a run (repost_runs) against its COST_ADJUSTMENT events (shared/runs/repost.py).
_REPOST_DIFFERENCES = """
    SELECT p.job_id, p.run_id, p.amount, coalesce(-sum(e.amount), 0) AS cogs
    FROM repost_runs p
    LEFT JOIN ledger_events e ON e.tenant_id = :t AND e.seq BETWEEN p.first_seq AND p.last_seq
          AND e.event_type = 'COST_ADJUSTMENT' AND e.job_id = p.job_id AND e.run_id = p.run_id
    WHERE p.tenant_id = :t
    GROUP BY p.job_id, p.run_id, p.amount
    HAVING p.amount <> coalesce(-sum(e.amount), 0)
    ORDER BY p.job_id, p.run_id"""


def derived_differences(session: Session, tenant_id: str) -> list[Difference]:
    binds = {"t": tenant_id}
    out: list[Difference] = []
    # These queries compare whole tables (every lot, run and sale against its events). Right after a bulk write
    # the tables have no statistics yet, and the planner's guess of a few rows made it choose nested loops
    # over the ledger: 106 s for a 20 k-sale tenant instead of 1.5 s. Hash joins are right at any size here,
    # so the choice is not left to statistics.
    session.execute(text("SET LOCAL enable_nestloop = off"))
    for row in session.execute(text(_LOT_DIFFERENCES), binds).mappings():
        lot = row["lot_id"]
        if row["missing"]:
            out.append(Difference("lots.missing", lot, _text(row["quantity"]), None, repairable=True))
            continue
        if row["orphan"]:
            out.append(Difference("lots.without_events", lot, "0", _text(row["remaining_quantity"]), repairable=True))
            continue
        if row["remaining_quantity"] != row["quantity"]:
            out.append(
                Difference(
                    "lots.remaining_quantity", lot, _text(row["quantity"]), _text(row["remaining_quantity"]), True
                )
            )
        if row["status"] != row["expected_status"]:
            out.append(Difference("lots.status", lot, row["expected_status"], row["status"], repairable=True))
        if row["expected_unit_cost"] is not None and row["unit_cost"] != row["expected_unit_cost"]:
            out.append(
                Difference("lots.unit_cost", lot, _text(row["expected_unit_cost"]), _text(row["unit_cost"]), True)
            )
        if row["expected_receipt_seq"] is not None and row["receipt_seq"] != row["expected_receipt_seq"]:
            out.append(
                Difference("lots.receipt_seq", lot, _text(row["expected_receipt_seq"]), _text(row["receipt_seq"]), True)
            )
    for row in session.execute(text(_RUN_DIFFERENCES), binds).mappings():
        if row["total_quantity"] != row["quantity"]:
            out.append(
                Difference("runs.total_quantity", row["id"], _text(row["quantity"]), _text(row["total_quantity"]), True)
            )
        if row["total_cogs"] != row["cogs"]:
            out.append(Difference("runs.total_cogs", row["id"], _text(row["cogs"]), _text(row["total_cogs"]), True))
    for row in session.execute(text(_SALE_DIFFERENCES), binds).mappings():
        key = f"{row['run_id']}/{row['sale_id']}"
        if row["stored_quantity"] != row["quantity"]:
            out.append(
                Difference("run_sales.quantity", key, _text(row["quantity"]), _text(row["stored_quantity"]), True)
            )
        if row["stored_cogs"] != row["cogs"]:
            out.append(Difference("run_sales.cogs", key, _text(row["cogs"]), _text(row["stored_cogs"]), True))
    for row in session.execute(text(_REPOST_DIFFERENCES), binds).mappings():
        key = f"{row['job_id']}/{row['run_id']}"
        out.append(Difference("repost_runs.amount", key, _text(row["cogs"]), _text(row["amount"]), True))
    return out


def repair_derived(session: Session, tenant_id: str) -> None:
    """Rewrite the derived rows that disagree with the ledger, set-based, in the caller's transaction (never
    committing). The caller holds the tenant fence, so no job writes the tenant meanwhile."""
    binds = {"t": tenant_id}
    session.execute(
        text(f"""
        WITH x AS ({_EXPECTED_LOTS})
        UPDATE lots SET remaining_quantity = x.quantity, status = x.status,
                        receipt_seq = coalesce(x.receipt_seq, lots.receipt_seq),
                        unit_cost = coalesce(x.unit_cost, lots.unit_cost),
                        freight_cost_per_unit = coalesce(x.unit_cost - lots.unit_price, lots.freight_cost_per_unit)
        FROM x
        WHERE lots.tenant_id = :t AND lots.lot_id = x.lot_id
          AND (lots.remaining_quantity <> x.quantity OR lots.status <> x.status
               OR (x.receipt_seq IS NOT NULL AND lots.receipt_seq <> x.receipt_seq)
               OR (x.unit_cost IS NOT NULL AND lots.unit_cost <> x.unit_cost))"""),
        binds,
    )
    session.execute(
        text("""
        UPDATE lots SET remaining_quantity = 0
        WHERE tenant_id = :t AND remaining_quantity <> 0
          AND NOT EXISTS (SELECT 1 FROM ledger_events e WHERE e.tenant_id = :t AND e.lot_id = lots.lot_id)"""),
        binds,
    )
    session.execute(
        text(f"""
        WITH x AS ({_EXPECTED_LOTS})
        INSERT INTO lots (tenant_id, lot_id, sku, bin_id, vendor_id, received_at, original_quantity,
                          received_quantity, unit_price, freight_cost_per_unit, unit_cost, remaining_quantity,
                          status, source_job_id, source_run_id, receipt_seq)
        SELECT :t, x.lot_id, e.sku, e.bin_id, NULL, e.occurred_at, e.quantity, e.quantity, e.unit_cost,
               coalesce(x.landed, 0), coalesce(x.unit_cost, e.unit_cost), x.quantity, x.status, e.job_id, e.run_id,
               e.seq
        FROM x JOIN ledger_events e ON e.tenant_id = :t AND e.seq = x.origin_seq
        WHERE NOT EXISTS (SELECT 1 FROM lots l WHERE l.tenant_id = :t AND l.lot_id = x.lot_id)"""),
        binds,
    )
    session.execute(
        text(f"""
        UPDATE runs SET total_quantity = t.quantity, total_cogs = t.cogs
        FROM ({_RUN_DIFFERENCES}) t
        WHERE runs.tenant_id = :t AND runs.id = t.id"""),
        binds,
    )
    session.execute(
        text(f"""
        UPDATE run_sales SET quantity = t.quantity, cogs = t.cogs
        FROM ({_SALE_DIFFERENCES}) t
        WHERE run_sales.tenant_id = :t AND run_sales.run_id = t.run_id AND run_sales.sale_id = t.sale_id"""),
        binds,
    )
    session.execute(
        text(f"""
        UPDATE repost_runs SET amount = t.cogs FROM ({_REPOST_DIFFERENCES}) t
        WHERE repost_runs.tenant_id = :t AND repost_runs.job_id = t.job_id AND repost_runs.run_id = t.run_id"""),
        binds,
    )


# --- entry points ---------------------------------------------------------------------------------------


def verify_ledger(session: Session, tenant_id: str, *, repair: bool = False) -> VerifyResult:
    """Check the chain and the derived tables; with `repair`, rebuild the derived tables and check again.
    With `repair` the session must be a read-committed transaction (the caller's `unit_of_work`)."""
    result = VerifyResult(tenant_id=tenant_id)
    if repair:
        # The job runner's fence: no ledger-writing job of this tenant runs while we rebuild.
        session.execute(select(func.pg_advisory_xact_lock(fence_key(tenant_id))))
    verify_chain(session, tenant_id, result)
    derived = derived_differences(session, tenant_id)
    result.differences.extend(derived)
    if repair and derived:
        repair_derived(session, tenant_id)
        still = set(derived_differences(session, tenant_id))
        result.repaired = [d for d in derived if d not in still]
    return result


@contextmanager
def snapshot(tenant_id: str) -> Iterator[Session]:
    """A read-only view of one consistent moment (REPEATABLE READ), so a check of a live tenant never sees a
    job's ledger events without its lot updates, and blocks no job."""
    with db.get_sessionmaker()() as session, session.begin():
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        db.set_tenant(session, tenant_id)
        yield session
