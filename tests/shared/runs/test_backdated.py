"""Backdated entries never silently change FIFO order (issue 15, item 1), on the issue's example: lot L1 (10 @
10.00) received 05-10, sale C1 (5) costed 05-12 at 50.00, then a receipt of 5 @ 20.00 dated 05-09, then sale C2
(5) on 05-13.

- `reject` (the default): the receipt is refused at once, 422 BACKDATED_RECEIPT naming the SKU and the latest
  costed sale date, and nothing is written; C2 costs 50.00.
- `repost`: the receipt is accepted and a `repost` job re-costs C1 to 100.00 through a COST_ADJUSTMENT of
  +50.00; C2 costs 50.00; the run's journal gains an adjusting entry; verify passes. A repost rolls back.

The API is served in process; jobs run through the real job runner (`drain`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from shared.ledger import verify
from tests.support import make_tenant, query, seed_master_data

SKU = "W-1"


class Books:
    """A tenant with the example's first two facts posted: L1 received on 05-10, C1 costed on 05-12."""

    def __init__(self, base: str, drain: Any, mode: str) -> None:
        self.tenant_id, self.owner = make_tenant(base, prefix="bkd")
        self.drain = lambda: drain(self.tenant_id)
        if mode != "reject":
            answer = self.owner.patch("/settings", json={"backdated_entries": mode})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"backdated_entries": mode}
        self.md = seed_master_data(self.owner, (SKU,))
        assert self.receive("L1", "10", "10.00", "2024-05-10T00:00:00Z").status_code == 202
        self.run1 = self.run("C1", "2024-05-12T00:00:00Z")

    def receive(self, lot_id: str, quantity: str, cost: str, at: str) -> Any:
        line = {"sku": SKU, "bin_id": self.md.bin_id, "lot_id": lot_id, "quantity": quantity, "unit_cost": cost}
        answer = self.owner.post("/receipts", json={"vendor_id": self.md.vendor_id, "received_at": at, "lines": [line]})
        self.drain()
        return answer

    def run(self, sale_id: str, at: str) -> str:
        sale = {"sale_id": sale_id, "sku": SKU, "sale_date": at, "quantity_sold": "5"}
        answer = self.owner.post("/runs", json={"mode": "fifo", "sales_data": [sale]})
        assert answer.status_code == 202, answer.text
        self.drain()
        run = self.owner.get(f"/runs/{answer.json()['run_id']}").json()
        assert run["status"] == "completed", run
        return str(run["run_id"])

    def cogs(self, sale_id: str) -> Decimal:
        """What the sale costs now: minus the amounts of its ISSUE and COST_ADJUSTMENT events (and reversals)."""
        rows = query(
            "SELECT coalesce(-sum(amount), 0) FROM ledger_events WHERE reference = :s "
            "AND event_type IN ('ISSUE', 'COST_ADJUSTMENT', 'REVERSAL')",
            {"s": sale_id},
            self.tenant_id,
        )
        return Decimal(rows[0][0])

    def lots(self) -> dict[str, Decimal]:
        rows = query("SELECT lot_id, remaining_quantity FROM lots WHERE status = 'live'", {}, self.tenant_id)
        return {r[0]: r[1] for r in rows}

    def events(self) -> list[tuple[str, str, Decimal, Decimal, str | None]]:
        rows = query(
            "SELECT event_type, lot_id, quantity, amount, reference FROM ledger_events ORDER BY seq", {}, self.tenant_id
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def journal(self, run_id: str) -> list[dict[str, Any]]:
        answer = self.owner.get(f"/runs/{run_id}/journal-entry", params={"format": "json"})
        assert answer.status_code == 200, answer.text
        entries: list[dict[str, Any]] = answer.json()
        return entries

    def job(self, job_id: str) -> dict[str, Any]:
        """The job as GET /jobs/{id} shows it, with its stored result (which the API does not show)."""
        answer = self.owner.get(f"/jobs/{job_id}")
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        job["result"] = query("SELECT result FROM jobs WHERE id = :j", {"j": job_id}, self.tenant_id)[0][0]
        return job

    def verify_ok(self) -> None:
        with verify.snapshot(self.tenant_id) as session:
            result = verify.verify_ledger(session, self.tenant_id)
        assert result.ok, result.differences


def _amounts(entry: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(line["account_code"], line["debit"], line["credit"]) for line in entry["lines"]]


def test_reject_mode_refuses_the_backdated_receipt_and_writes_nothing(in_process, drain):
    books = Books(in_process, drain, "reject")
    assert books.owner.get("/settings").json() == {"backdated_entries": "reject"}
    assert books.cogs("C1") == Decimal("50")
    before = books.events()

    refused = books.receive("L0", "5", "20.00", "2024-05-09T00:00:00Z")
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["code"], error["reason"]) == ("VALIDATION_FAILED", "BACKDATED_RECEIPT")
    assert SKU in error["message"] and "2024-05-12T00:00:00Z" in error["message"]
    assert [(d["sku"], d["last_costed_sale_date"], d["reason"]) for d in error["details"]] == [
        (SKU, "2024-05-12T00:00:00Z", "BACKDATED_RECEIPT")
    ]
    assert books.events() == before  # nothing written: no event, no lot, no job
    assert "L0" not in books.lots()
    assert query("SELECT count(*) FROM jobs WHERE kind = 'repost'", {}, books.tenant_id)[0][0] == 0

    # The same instant as the latest costed sale is not backdated; a run's lot dated before it is refused too.
    assert books.receive("L2", "1", "30.00", "2024-05-12T00:00:00Z").status_code == 202
    sale = {"sale_id": "C9", "sku": SKU, "sale_date": "2024-05-20", "quantity_sold": "1"}
    lot = {
        "lot_id": "L9", "sku": SKU, "received_date": "2024-05-01", "original_quantity": "1",
        "remaining_quantity": "1", "unit_price": "1", "freight_cost_per_unit": "0",
    }  # fmt: skip
    answer = books.owner.post("/runs", json={"mode": "fifo", "sales_data": [sale], "lots_data": [lot]})
    books.drain()
    run = books.owner.get(f"/runs/{answer.json()['run_id']}").json()
    assert run["status"] == "failed"
    assert run["error"]["reason"] == "BACKDATED_RECEIPT", run["error"]

    books.run("C2", "2024-05-13T00:00:00Z")
    assert books.cogs("C2") == Decimal("50")
    books.verify_ok()


def test_repost_mode_recosts_c1_by_a_cost_adjustment_and_journals_it(in_process, drain):
    books = Books(in_process, drain, "repost")
    accepted = books.receive("L0", "5", "20.00", "2024-05-09T00:00:00Z")
    assert accepted.status_code == 202, accepted.text
    receipt = books.job(accepted.json()["job_id"])
    assert receipt["status"] == "completed", receipt
    repost_id = receipt["result"]["repost_job_id"]
    repost = books.job(repost_id)
    assert (repost["kind"], repost["status"]) == ("repost", "completed"), repost
    assert repost["result"]["runs"] == [books.run1]
    assert Decimal(repost["result"]["cogs_change"]) == Decimal("50")

    assert books.cogs("C1") == Decimal("100")  # by received date, FIFO takes L0's 5 @ 20.00
    adjustments = [e for e in books.events() if e[0] == "COST_ADJUSTMENT"]
    assert sorted((lot, q, a, ref) for _, lot, q, a, ref in adjustments) == [
        ("L0", Decimal("-5"), Decimal("-100"), "C1"),
        ("L1", Decimal("5"), Decimal("50"), "C1"),
    ]
    assert -sum(a for _, _, _, a, _ in adjustments) == Decimal("50")  # COGS +50.00
    assert books.lots() == {"L0": Decimal("0"), "L1": Decimal("10")}
    books.verify_ok()

    run2 = books.run("C2", "2024-05-13T00:00:00Z")
    assert books.cogs("C2") == Decimal("50")
    assert books.lots() == {"L0": Decimal("0"), "L1": Decimal("5")}

    journal = books.journal(books.run1)
    assert (journal[0]["date"], _amounts(journal[0])) == (
        "2024-05-12",
        [("5000", "50.00", "0.00"), ("1400", "0.00", "50.00")],
    )
    adjusting = journal[1]
    assert _amounts(adjusting) == [("5000", "50.00", "0.00"), ("1400", "0.00", "50.00")]
    assert repost_id in adjusting["lines"][0]["memo"]
    assert adjusting["date"] == repost["finished_at"][:10]  # dated the day the repost was posted
    assert len(journal) == 2
    assert len(books.journal(run2)) == 1  # C2 was costed on the reposted books: nothing to adjust

    # A later run costed the SKU on the reposted books: the repost cannot be rolled back under it.
    blocked = books.owner.post(f"/reposts/{repost_id}/rollback")
    assert blocked.status_code == 409, blocked.text
    assert blocked.json()["error"]["reason"] == "ROLLBACK_BLOCKED"
    books.verify_ok()


def test_a_repost_rolls_back_and_a_run_rollback_reverses_its_adjustments(in_process, drain):
    books = Books(in_process, drain, "repost")
    receipt = books.job(books.receive("L0", "5", "20.00", "2024-05-09T00:00:00Z").json()["job_id"])
    repost_id = receipt["result"]["repost_job_id"]
    assert books.cogs("C1") == Decimal("100")

    accepted = books.owner.post(f"/reposts/{repost_id}/rollback")
    assert accepted.status_code == 202, accepted.text
    books.drain()
    undo = books.job(accepted.json()["job_id"])
    assert (undo["kind"], undo["status"]) == ("repost", "completed"), undo
    assert undo["result"]["reversed_job_id"] == repost_id and undo["result"]["events"] == 2
    assert books.cogs("C1") == Decimal("50")  # back to what the run posted
    assert books.lots() == {"L0": Decimal("5"), "L1": Decimal("5")}
    journal = books.journal(books.run1)
    assert [_amounts(e) for e in journal[1:]] == [
        [("5000", "50.00", "0.00"), ("1400", "0.00", "50.00")],
        [("1400", "50.00", "0.00"), ("5000", "0.00", "50.00")],
    ]
    assert journal[2]["lines"][0]["memo"].startswith("Reversal of COGS adjustment")
    again = books.owner.post(f"/reposts/{repost_id}/rollback")
    assert again.status_code == 409 and again.json()["error"]["reason"] == "ALREADY_ROLLED_BACK"
    books.verify_ok()

    # A second backdated receipt reposts again; rolling the run back then reverses its live adjustments too.
    books.receive("L00", "5", "30.00", "2024-05-08T00:00:00Z")
    assert books.cogs("C1") == Decimal("150")
    rollback = books.owner.post(f"/runs/{books.run1}/rollback")
    assert rollback.status_code == 202, rollback.text
    books.drain()
    assert books.job(rollback.json()["job_id"])["status"] == "completed"
    assert books.cogs("C1") == Decimal("0")
    assert books.lots() == {"L00": Decimal("5"), "L0": Decimal("5"), "L1": Decimal("10")}
    reversing = books.journal(books.run1)
    assert [_amounts(e) for e in reversing] == [
        [("1400", "50.00", "0.00"), ("5000", "0.00", "50.00")],
        [("1400", "100.00", "0.00"), ("5000", "0.00", "100.00")],
    ]
    books.verify_ok()


def test_repost_mode_accepts_a_backdated_sale_and_recosts_the_later_ones(in_process, drain):
    books = Books(in_process, drain, "repost")
    books.receive("L2", "10", "30.00", "2024-05-13T00:00:00Z")
    books.run("C3", "2024-05-14T00:00:00Z")  # L1's last 5 @ 10
    assert books.cogs("C3") == Decimal("50")
    # C0 on 05-11, before C1: BACKDATED_SALE in reject mode; here the run is accepted and reposted. On the
    # day of C0 only L1 was received, and L1 is all consumed now, so the run's own allocation is provisional.
    books.run("C0", "2024-05-11T00:00:00Z")
    # In date order: C0 and C1 take L1 (50.00 each), C3 takes L2 (150.00).
    assert [books.cogs(s) for s in ("C0", "C1", "C3")] == [Decimal("50"), Decimal("50"), Decimal("150")]
    assert books.lots() == {"L1": Decimal("0"), "L2": Decimal("5")}
    repost = query("SELECT result FROM jobs WHERE kind = 'repost'", {}, books.tenant_id)
    assert len(repost) == 1 and sorted(repost[0][0]["runs"]) == sorted(
        r[0] for r in query("SELECT id FROM runs WHERE id <> :r", {"r": books.run1}, books.tenant_id)
    )
    books.verify_ok()


def test_the_setting_is_an_enum_changed_by_owners_and_audited(in_process):
    from api.main import app
    from tests.support import key_for

    schema = app.openapi()["components"]["schemas"]["TenantSettings"]["properties"]["backdated_entries"]
    assert schema["enum"] == ["reject", "repost"]
    tenant_id, owner = make_tenant(in_process, prefix="bks")
    bad = owner.patch("/settings", json={"backdated_entries": "later"})
    assert bad.status_code == 422, bad.text
    manager = key_for(in_process, tenant_id, "manager")
    assert manager.get("/settings").json() == {"backdated_entries": "reject"}
    assert manager.patch("/settings", json={"backdated_entries": "repost"}).status_code == 403
    assert owner.patch("/settings", json={"backdated_entries": "repost"}).json() == {"backdated_entries": "repost"}
    audited = query("SELECT details FROM audit_events WHERE action = 'tenant.settings_changed'", {}, tenant_id)
    assert [a[0]["changed"] for a in audited] == [{"backdated_entries": {"value": "repost", "previous": "reject"}}]


def _count(books: Books, quantity: str, at: str) -> Any:
    line = {"sku": SKU, "counted_quantity": quantity, "unit_cost": "40.00"}
    answer = books.owner.post("/counts", json={"bin_id": books.md.bin_id, "counted_at": at, "lines": [line]})
    books.drain()
    return answer


def test_a_count_gain_dated_before_a_costed_sale_is_refused_or_reposted(in_process, drain):
    refused = Books(in_process, drain, "reject")
    answer = _count(refused, "8", "2024-05-11T00:00:00Z")  # 5 on hand: a gain of 3, dated before C1
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["reason"] == "BACKDATED_RECEIPT"
    assert _count(refused, "4", "2024-05-11T00:00:00Z").status_code == 202  # shrink is not checked

    reposted = Books(in_process, drain, "repost")
    answer = _count(reposted, "8", "2024-05-09T00:00:00Z")
    assert answer.status_code == 202, answer.text
    job = reposted.job(answer.json()["job_id"])
    assert job["status"] == "completed", job
    assert reposted.job(job["result"]["repost_job_id"])["status"] == "completed"
    # The gain lot (3 @ 40.00, dated 05-09) comes first: C1 takes it and 2 of L1.
    assert reposted.cogs("C1") == Decimal("140")
    reposted.verify_ok()


def test_verify_checks_a_reposts_recorded_change_against_its_events_and_repairs_it(in_process, drain):
    from sqlalchemy import text

    from shared import db

    books = Books(in_process, drain, "repost")
    books.receive("L0", "5", "20.00", "2024-05-09T00:00:00Z")
    with db.unit_of_work(books.tenant_id) as session:
        session.execute(text("UPDATE repost_runs SET amount = amount + 1"))
    with verify.snapshot(books.tenant_id) as session:
        found = verify.verify_ledger(session, books.tenant_id)
    assert [(d.check, d.expected, d.actual) for d in found.differences] == [
        ("repost_runs.amount", "50.00000000", "51.00000000")
    ]
    with db.unit_of_work(books.tenant_id) as session:
        repaired = verify.verify_ledger(session, books.tenant_id, repair=True)
    assert repaired.ok and [d.check for d in repaired.repaired] == ["repost_runs.amount"]
    books.verify_ok()


def test_a_cascading_rollback_reverses_the_adjustments_of_every_run_it_reverses(in_process, drain):
    books = Books(in_process, drain, "repost")
    books.run("C2", "2024-05-13T00:00:00Z")  # C1 and C2 both take L1 @ 10 (50.00 each)
    books.receive("L0", "5", "20.00", "2024-05-09T00:00:00Z")  # C1 now takes L0: 100.00; C2 keeps L1: 50.00
    assert (books.cogs("C1"), books.cogs("C2")) == (Decimal("100"), Decimal("50"))
    assert books.lots() == {"L0": Decimal("0"), "L1": Decimal("5")}
    rollback = books.owner.post(f"/runs/{books.run1}/rollback", params={"cascade": "true"})
    assert rollback.status_code == 202, rollback.text
    books.drain()
    assert books.job(rollback.json()["job_id"])["status"] == "completed"
    assert (books.cogs("C1"), books.cogs("C2")) == (Decimal("0"), Decimal("0"))
    assert books.lots() == {"L0": Decimal("5"), "L1": Decimal("10")}
    assert query("SELECT count(*) FROM repost_runs WHERE reversed_by IS NULL", {}, books.tenant_id)[0][0] == 0
    books.verify_ok()
