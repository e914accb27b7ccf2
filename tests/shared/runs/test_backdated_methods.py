"""Reposting under LIFO and moving average (issue 15), on the issue's example: lot L1 (10 @ 10.00) received
05-10, sale C1 (5) costed 05-12, then a receipt L0 of 5 @ 20.00 dated 05-09, then sale C2 (5) on 05-13. The
tenant is in `repost` mode and its runs cost by the method under test; the repost re-costs C1 by the same method.

LIFO, in date order L0 (05-09), L1 (05-10), C1 (05-12), C2 (05-13): C1 takes the newest lot received by 05-12
with stock, L1: 5 @ 10.00 = 50.00, as it was costed before L0 arrived; C2 takes L1's last 5: 50.00. The repost
changes nothing (no event), and L0 keeps its 5 units.
LIFO, the same with the backdated lot L2 (5 @ 20.00) dated 05-11 instead, between L1 and C1: C1 now takes L2:
100.00, by COST_ADJUSTMENTs (L2 -5, -100.00) and (L1 +5, +50.00), a change of +50.00; C2 takes the newest lot
with stock by 05-13, L1 (L2 is empty): 50.00.

Moving average (docs/costing.md: the pool's unit cost `a` is V / Q rounded half-even to 10**-4 at each receipt):
- before the repost: C1 was costed with L1 alone in the pool, a = 10.0000: 50.00, from L1;
- in date order: L0 makes the pool 5 for 100.00 (a = 20.0000), L1 makes it 15 for 200.00, a = 13.33333... ->
  13.3333. C1 costs 5 x 13.3333 = 66.6665 and physically takes L0's 5 (units leave oldest lot first); the pool
  is 10 for 133.3335. C2 (not emptying the pool) costs 5 x 13.3333 = 66.6665 from L1; 5 units left for
  66.6670, while L1's own cost says 50.00: the pool carries 16.6670.
- so the repost appends (C1, L0: -5, -66.6665) and (C1, L1: +5, +50.00), both carrying unit cost 13.3333 (C1's
  re-costed average), a COGS change of +16.6665, journalled as 16.67 (half-up to cents); the later run C2 reads
  that average as the one in force and costs 66.6665, exactly the books of costing in date order.
- rolled back before C2, the repost's adjustments are reversed and C1 is back at 50.00; the average in force is
  C1's own again (10.0000), so C2 costs 5 x 10.0000 = 50.00.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.shared.runs.test_backdated import SKU, Books, _amounts
from tests.support import query


class MethodBooks(Books):
    """The example's books with every run costed by `method` (the tenant's default, and each run's mode)."""

    def __init__(self, base: str, drain: Any, method: str) -> None:
        self.method = method
        super().__init__(base, drain, "repost")

    def run(self, sale_id: str, at: str) -> str:
        if not hasattr(self, "run1"):  # the first run: make the method the tenant's default too
            answer = self.owner.put("/settings/valuation", json={"default_method": self.method})
            assert answer.status_code == 200, answer.text
        sale = {"sale_id": sale_id, "sku": SKU, "sale_date": at, "quantity_sold": "5"}
        answer = self.owner.post("/runs", json={"mode": self.method, "sales_data": [sale]})
        assert answer.status_code == 202, answer.text
        self.drain()
        run = self.owner.get(f"/runs/{answer.json()['run_id']}").json()
        assert run["status"] == "completed", run
        assert run["mode"] == self.method
        return str(run["run_id"])

    def repost_of(self, answer: Any) -> dict[str, Any]:
        assert answer.status_code == 202, answer.text
        receipt = self.job(answer.json()["job_id"])
        assert receipt["status"] == "completed", receipt
        repost = self.job(receipt["result"]["repost_job_id"])
        assert (repost["kind"], repost["status"]) == ("repost", "completed"), repost
        return repost

    def adjustments(self) -> list[tuple[str, Decimal, Decimal, Decimal, str]]:
        rows = query(
            "SELECT lot_id, quantity, unit_cost, amount, reference FROM ledger_events "
            "WHERE event_type = 'COST_ADJUSTMENT' ORDER BY lot_id",
            {},
            self.tenant_id,
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def test_lifo_repost_of_the_issue_example_changes_nothing(in_process, drain):
    books = MethodBooks(in_process, drain, "lifo")
    assert books.cogs("C1") == Decimal("50")
    repost = books.repost_of(books.receive("L0", "5", "20.00", "2024-05-09T00:00:00Z"))
    assert repost["result"]["events"] == 0 and repost["result"]["runs"] == []
    books.run("C2", "2024-05-13T00:00:00Z")
    assert (books.cogs("C1"), books.cogs("C2")) == (Decimal("50"), Decimal("50"))
    assert books.lots() == {"L0": Decimal("5"), "L1": Decimal("0")}
    books.verify_ok()


def test_lifo_repost_recosts_a_sale_to_a_newer_backdated_lot(in_process, drain):
    books = MethodBooks(in_process, drain, "lifo")
    repost = books.repost_of(books.receive("L2", "5", "20.00", "2024-05-11T00:00:00Z"))
    assert repost["result"]["runs"] == [books.run1]
    assert Decimal(repost["result"]["cogs_change"]) == Decimal("50")
    assert books.adjustments() == [
        ("L1", Decimal("5"), Decimal("10"), Decimal("50"), "C1"),
        ("L2", Decimal("-5"), Decimal("20"), Decimal("-100"), "C1"),
    ]
    assert books.cogs("C1") == Decimal("100")
    run2 = books.run("C2", "2024-05-13T00:00:00Z")
    assert books.cogs("C2") == Decimal("50")
    assert books.lots() == {"L1": Decimal("5"), "L2": Decimal("0")}
    journal = books.journal(books.run1)
    assert [_amounts(e) for e in journal] == [
        [("5000", "50.00", "0.00"), ("1400", "0.00", "50.00")],
        [("5000", "50.00", "0.00"), ("1400", "0.00", "50.00")],
    ]
    assert len(books.journal(run2)) == 1
    books.verify_ok()


def test_moving_average_repost_of_the_issue_example(in_process, drain):
    books = MethodBooks(in_process, drain, "moving_average")
    assert books.cogs("C1") == Decimal("50")
    repost = books.repost_of(books.receive("L0", "5", "20.00", "2024-05-09T00:00:00Z"))
    assert repost["result"]["runs"] == [books.run1]
    assert Decimal(repost["result"]["cogs_change"]) == Decimal("16.6665")
    assert books.adjustments() == [
        ("L0", Decimal("-5"), Decimal("13.3333"), Decimal("-66.6665"), "C1"),
        ("L1", Decimal("5"), Decimal("13.3333"), Decimal("50"), "C1"),
    ]
    assert books.cogs("C1") == Decimal("66.6665")
    assert books.lots() == {"L0": Decimal("0"), "L1": Decimal("10")}
    books.verify_ok()

    run2 = books.run("C2", "2024-05-13T00:00:00Z")
    assert books.cogs("C2") == Decimal("66.6665")  # at the re-costed average in force, 13.3333
    assert books.lots() == {"L0": Decimal("0"), "L1": Decimal("5")}
    valuation = books.owner.get("/reports/valuation", params={"sku": SKU}).json()
    assert [(r["quantity"], r["value"]) for r in valuation["items"]] == [("5.0000", "66.66700000")]
    journal = books.journal(books.run1)
    assert [_amounts(e) for e in journal] == [
        [("5000", "50.00", "0.00"), ("1400", "0.00", "50.00")],
        [("5000", "16.67", "0.00"), ("1400", "0.00", "16.67")],
    ]
    assert len(books.journal(run2)) == 1
    books.verify_ok()


def test_a_moving_average_repost_rolls_back_to_the_average_the_run_posted(in_process, drain):
    books = MethodBooks(in_process, drain, "moving_average")
    repost = books.repost_of(books.receive("L0", "5", "20.00", "2024-05-09T00:00:00Z"))
    undo = books.owner.post(f"/reposts/{repost['job_id']}/rollback")
    assert undo.status_code == 202, undo.text
    books.drain()
    assert books.job(undo.json()["job_id"])["status"] == "completed"
    assert books.cogs("C1") == Decimal("50")
    assert books.lots() == {"L0": Decimal("5"), "L1": Decimal("5")}
    books.run("C2", "2024-05-13T00:00:00Z")
    assert books.cogs("C2") == Decimal("50")  # C1's own average (10.0000) is in force again
    books.verify_ok()


@pytest.mark.parametrize("method", ["lifo", "moving_average"])
def test_repost_mode_and_every_method_go_together(in_process, drain, method):
    """The REPOST_NEEDS_FIFO refusals are gone: a SKU switched to the method, the default, and repost mode."""
    books = MethodBooks(in_process, drain, method)
    assert books.owner.put(f"/valuation-methods/{SKU}", json={"method": method}).status_code == 200
    assert books.owner.get("/settings").json() == {"backdated_entries": "repost"}
    assert books.owner.get("/settings/valuation").json() == {"default_method": method}
    for mode in ("reject", "repost"):  # and back: repost mode is taken while SKUs are held to the method
        answer = books.owner.patch("/settings", json={"backdated_entries": mode})
        assert answer.status_code == 200 and answer.json() == {"backdated_entries": mode}, answer.text
