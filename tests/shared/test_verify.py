"""`verify_ledger`: the hash chain and every derived table recomputed from the ledger; repair rebuilds the
derived tables and never the ledger."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

import pytest
from sqlalchemy import text

from shared import db
from shared.ledger import queries, verify
from shared.ledger.canonical import GENESIS_HASH
from shared.reports import service as reports
from shared.reports.schemas import parse_params
from tests.support import (
    create_tenant_direct,
    ledger_move,
    ledger_receive,
    ledger_reverse,
    ledger_run,
    owner_connection,
    query,
    unique_tenant,
)


def run_id(tenant_id: str) -> str:
    return f"run_{tenant_id}"


def build(tenant_id: str) -> None:
    with db.unit_of_work(tenant_id) as s:
        t = tenant_id
        ledger_receive(s, t, lot_id="L1", sku="A", quantity="10", unit_cost="2", at="2024-01-01T00:00:00Z")
        ledger_receive(s, t, lot_id="L2", sku="A", quantity="5", unit_cost="3.3333", at="2024-01-02T00:00:00Z")
        ledger_receive(s, t, lot_id="L3", sku="B", quantity="7", unit_cost="1", at="2024-01-03T00:00:00Z")
        receipt = ledger_receive(s, t, lot_id="L5", sku="B", quantity="1", unit_cost="4", at="2024-01-04T00:00:00Z")
        ledger_reverse(s, t, receipt)
        ledger_run(
            s,
            t,
            run_id(tenant_id),
            [
                ("L1", "10", "2024-02-01T00:00:00Z", "S1"),
                ("L2", "1.5", "2024-02-01T00:00:00Z", "S1"),
                ("L2", "1", "2024-02-02T00:00:00Z", "S2"),
            ],
        )
        ledger_move(s, t, "ADJUSTMENT", lot_id="L3", quantity="-0.5", at="2024-02-03T00:00:00Z")


@pytest.fixture
def tenant(service_urls):
    tenant_id = create_tenant_direct("ver")
    build(tenant_id)
    return tenant_id


def check(tenant_id, *, repair=False):
    if repair:
        with db.unit_of_work(tenant_id) as session:
            return verify.verify_ledger(session, tenant_id, repair=True)
    with verify.snapshot(tenant_id) as session:
        return verify.verify_ledger(session, tenant_id)


def findings(result):
    return {(d.check, d.key) for d in result.differences}


def test_a_consistent_ledger_verifies_clean(tenant):
    result = check(tenant)
    assert result.ok, result.differences
    assert result.chain_ok
    assert result.events == result.head_seq == 9
    assert result.as_dict()["differences"] == []


def test_corrupted_derived_rows_and_a_tampered_ledger_row_are_all_found_and_only_derived_rows_repaired(
    tenant, service_urls
):
    with db.unit_of_work(tenant) as s:
        for sql in (
            "UPDATE lots SET remaining_quantity = 999 WHERE lot_id = 'L1'",
            "UPDATE lots SET status = 'live' WHERE lot_id = 'L5'",
            "DELETE FROM lots WHERE lot_id = 'L2'",
            f"UPDATE runs SET total_cogs = 1 WHERE id = '{run_id(tenant)}'",
            "UPDATE run_sales SET quantity = 2 WHERE sale_id = 'S2'",
        ):
            s.execute(text(sql))
    tampered_seq = query(
        "SELECT seq FROM ledger_events WHERE lot_id = 'L3' AND event_type = 'RECEIPT'", tenant_id=tenant
    )
    seq = tampered_seq[0].seq
    with owner_connection(service_urls) as conn:
        conn.execute("SET session_replication_role = replica")  # the append-only trigger no longer fires
        conn.execute("UPDATE ledger_events SET quantity = 70 WHERE tenant_id = %s AND seq = %s", (tenant, seq))

    result = check(tenant)
    assert not result.ok
    assert not result.chain_ok
    assert findings(result) == {
        ("ledger.hash", str(seq)),
        ("lots.remaining_quantity", "L1"),
        ("lots.remaining_quantity", "L3"),  # the lot now disagrees with the tampered ledger
        ("lots.status", "L5"),
        ("lots.missing", "L2"),
        ("runs.total_cogs", run_id(tenant)),
        ("run_sales.quantity", f"{run_id(tenant)}/S2"),
    }
    by_check = {d.check: d for d in result.differences}
    assert by_check["lots.status"].expected == "reversed"
    assert not by_check["ledger.hash"].repairable

    repaired = check(tenant, repair=True)
    assert {(d.check, d.key) for d in repaired.repaired} == findings(result) - {("ledger.hash", str(seq))}
    assert [(d.check, d.key) for d in repaired.remaining] == [("ledger.hash", str(seq))]

    after = check(tenant)
    assert findings(after) == {("ledger.hash", str(seq))}  # the ledger itself was not touched
    assert query("SELECT quantity FROM ledger_events WHERE seq = :s", {"s": seq}, tenant)[0].quantity == 70
    lots = {r.lot_id: r for r in query("SELECT * FROM lots", tenant_id=tenant)}
    assert lots["L1"].remaining_quantity == 0
    assert lots["L2"].remaining_quantity == Decimal("2.5")  # rebuilt from its RECEIPT
    assert lots["L2"].unit_cost == Decimal("3.3333")
    assert lots["L5"].status == "reversed"
    run = query("SELECT total_quantity, total_cogs FROM runs WHERE id = :r", {"r": run_id(tenant)}, tenant)[0]
    assert (run.total_quantity, run.total_cogs) == (Decimal("12.5"), Decimal("28.33325"))


def test_gaps_broken_links_and_a_wrong_head_are_reported(tenant, service_urls):
    with owner_connection(service_urls) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM ledger_events WHERE tenant_id = %s AND seq = 3", (tenant,))
        conn.execute("UPDATE ledger_events SET hash = sha256('forged') WHERE tenant_id = %s AND seq = 6", (tenant,))
        conn.execute("UPDATE ledger_heads SET seq = 42 WHERE tenant_id = %s", (tenant,))
    result = check(tenant)
    found = findings(result)
    # seq 4 no longer chains from seq 2; the forged hash of seq 6 is wrong, and seq 7 chains from it
    assert {("ledger.seq", "4"), ("ledger.hash", "4"), ("ledger.hash", "6"), ("ledger.hash", "7")} <= found
    assert ("ledger.hash", "5") not in found
    assert ("ledger_heads", tenant) in found
    assert result.events == 8
    assert not result.as_dict()["chain_ok"]


def test_each_event_shows_the_hash_it_was_chained_from(tenant):
    """`prev_hash` is not stored: it is read as the hash of the event before, whatever the filter or page."""
    with db.unit_of_work(tenant) as session:
        first, cursor = queries.list_events(session, tenant, limit=3)
        rest, _ = queries.list_events(session, tenant, cursor=cursor, limit=1000)
        only_b, _ = queries.list_events(session, tenant, sku="B", limit=1000)
    events = first + rest
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].prev_hash == GENESIS_HASH
    assert all(e.prev_hash == before.hash for before, e in pairwise(events))
    assert len({e.hash for e in events}) == len(events) and all(len(e.hash) == 64 for e in events)
    by_seq = {e.seq: e for e in events}
    assert only_b and all(e.prev_hash == by_seq[e.seq - 1].hash for e in only_b)


def test_a_tenant_sees_only_its_own_ledger(tenant):
    other = create_tenant_direct("ver")
    result = check(other)
    assert result.ok
    assert result.events == 0


def test_the_benchmark_generator_writes_a_ledger_that_verifies_and_reconciles(service_urls):
    from tests import ledger_oracle as oracle
    from tests.benchmarks.gen_ledger import Shape, generate

    tenant_id = unique_tenant("gen")
    shape = Shape(skus=20, events_per_sku=30, lots_per_sku=5)
    stats = generate(service_urls["database_url"], tenant_id, shape, rebuild_indexes=False)
    assert (stats["ledger_rows"], stats["lots"]) == (600, 100)
    result = check(tenant_id)
    assert result.ok, result.differences[:5]
    assert result.events == result.head_seq == 600
    ledger = oracle.load(tenant_id)
    for report in ("stock-on-hand", "valuation", "inventory-movement", "receiving-summary", "shrink-summary"):
        params = {"from": "2023-01-15"} if report in ("inventory-movement", "shrink-summary") else {}
        with db.unit_of_work(tenant_id) as session:
            rows = reports.run_report(session, tenant_id, report, parse_params(report, params)).rows
        assert oracle.as_values(rows) == oracle.expected(ledger, report, params)
    assert len(oracle.stock_on_hand(ledger, {})) == 40  # the two newest lots of each SKU are untouched
