"""Returns and landed costs dated before an already-costed sale (issue 15; docs/costing.md, "Backdated entries").

- A sale return makes a lot dated at the return: it is a backdated entry like a receipt. In `reject` mode it is
  refused with 422 BACKDATED_RECEIPT naming the SKU and its latest costed sale date, nothing written; in
  `repost` mode it is accepted and a repost re-costs the later sales with the return's lot in its place.
- A purchase return takes only units its lot still holds now (INSUFFICIENT_STOCK beyond that, whatever its
  date): units no costed sale consumed, so no costed sale changes. It is accepted in both modes, no repost.
- A landed cost is spread over the lot's units on hand and the units live sales issued from it, whatever its
  date, and moves no units: it is accepted in both modes, no repost.

The books: L1 (10 @ 10.00) received 05-10, C1 (5) costed 05-12 (Books in test_backdated.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.shared.runs.test_backdated import SKU, Books
from tests.support import query


def _post(books: Books, path: str, body: dict[str, Any]) -> Any:
    answer = books.owner.post(path, json=body)
    books.drain()
    return answer


def _sale_return(books: Books, sale_id: str, quantity: str, at: str) -> Any:
    return _post(books, "/returns", {"kind": "sale", "sale_id": sale_id, "quantity": quantity, "returned_at": at})


def _purchase_return(books: Books, lot_id: str, quantity: str, at: str) -> Any:
    return _post(books, "/returns", {"kind": "purchase", "lot_id": lot_id, "quantity": quantity, "returned_at": at})


def _completed(books: Books, answer: Any) -> dict[str, Any]:
    assert answer.status_code == 202, answer.text
    job = books.job(answer.json()["job_id"])
    assert job["status"] == "completed", job
    return job


def _reposts(books: Books) -> int:
    return int(query("SELECT count(*) FROM jobs WHERE kind = 'repost'", {}, books.tenant_id)[0][0])


def _later_books(books: Books) -> None:
    """C2 empties L1 (05-12 06:00), L2 (10 @ 20.00) is received 05-13, C3 (5) on 05-15 takes L2: 100.00."""
    books.run("C2", "2024-05-12T06:00:00Z")
    assert books.receive("L2", "10", "20.00", "2024-05-13T00:00:00Z").status_code == 202
    books.run("C3", "2024-05-15T00:00:00Z")
    assert books.cogs("C3") == Decimal("100")


def test_a_sale_return_dated_before_a_costed_sale_is_refused_in_reject_mode(in_process, drain):
    books = Books(in_process, drain, "reject")
    _later_books(books)
    before = books.events()
    answer = _sale_return(books, "C1", "5", "2024-05-12T12:00:00Z")
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["reason"]) == ("VALIDATION_FAILED", "BACKDATED_RECEIPT")
    assert SKU in error["message"] and "2024-05-15T00:00:00Z" in error["message"]
    assert [(d["field"], d["sku"], d["last_costed_sale_date"]) for d in error["details"]] == [
        ("returned_at", SKU, "2024-05-15T00:00:00Z")
    ]
    assert books.events() == before
    assert query("SELECT count(*) FROM returns", {}, books.tenant_id)[0][0] == 0
    # At the instant of the latest costed sale it is not backdated (as for receipts and sales).
    job = _completed(books, _sale_return(books, "C1", "5", "2024-05-15T00:00:00Z"))
    assert "repost_job_id" not in job["result"]
    assert books.cogs("C3") == Decimal("100")
    books.verify_ok()


def test_the_worker_refuses_a_backdated_sale_return_it_meets_behind_a_pending_job(in_process, drain):
    """With an earlier job pending, intake cannot know the books: the worker refuses it under the fence."""
    books = Books(in_process, drain, "reject")
    _later_books(books)
    run = books.owner.post(
        "/runs", json={"sales_data": [{"sale_id": "C4", "sku": SKU, "sale_date": "2024-05-16", "quantity_sold": "1"}]}
    )
    assert run.status_code == 202, run.text
    answer = books.owner.post(
        "/returns", json={"kind": "sale", "sale_id": "C1", "quantity": "1", "returned_at": "2024-05-15T12:00:00Z"}
    )
    assert answer.status_code == 202, answer.text  # C4 (05-16) is not costed yet
    books.drain()
    job = books.job(answer.json()["job_id"])
    assert job["status"] == "failed" and job["error"]["reason"] == "BACKDATED_RECEIPT", job
    assert job["error"]["details"][0]["last_costed_sale_date"] == "2024-05-16T00:00:00Z"
    assert query("SELECT count(*) FROM return_lines", {}, books.tenant_id)[0][0] == 0
    books.verify_ok()


def test_a_sale_return_dated_before_a_costed_sale_is_reposted_in_repost_mode(in_process, drain):
    books = Books(in_process, drain, "repost")
    _later_books(books)
    job = _completed(books, _sale_return(books, "C1", "5", "2024-05-12T12:00:00Z"))
    repost = books.job(job["result"]["repost_job_id"])
    assert (repost["kind"], repost["status"]) == ("repost", "completed"), repost
    # The return's lot (5 @ 10.00, dated 05-12 12:00) is older than L2: in date order C3 takes it.
    (returned,) = job["result"]["lots"]
    assert Decimal(repost["result"]["cogs_change"]) == Decimal("-50")
    assert books.cogs("C3") == Decimal("50")
    assert books.lots() == {"L1": Decimal("0"), "L2": Decimal("10"), returned: Decimal("0")}
    assert (books.cogs("C1"), books.cogs("C2")) == (Decimal("50"), Decimal("50"))  # C1's return is not a cost
    books.verify_ok()


def test_a_purchase_return_takes_only_what_its_lot_holds_and_is_never_backdated(in_process, drain):
    for mode in ("reject", "repost"):
        books = Books(in_process, drain, mode)
        # On 05-11 L1 held 10; C1 (05-12) consumed 5 of them since, so 5 are left to send back.
        job = _completed(books, _purchase_return(books, "L1", "5", "2024-05-11T00:00:00Z"))
        assert "repost_job_id" not in job["result"]
        assert books.cogs("C1") == Decimal("50") and books.lots() == {"L1": Decimal("0")}
        before = books.events()
        refused = _purchase_return(books, "L1", "1", "2024-05-11T00:00:00Z")
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["reason"] == "INSUFFICIENT_STOCK"
        assert books.events() == before and _reposts(books) == 0
        books.verify_ok()


def test_a_landed_cost_dated_before_a_costed_sale_is_spread_as_any_other(in_process, drain):
    for mode in ("reject", "repost"):
        books = Books(in_process, drain, mode)
        body = {"lot_id": "L1", "amount": "10.00", "allocated_at": "2024-05-11T00:00:00Z", "memo": "freight"}
        job = _completed(books, _post(books, "/landed-costs", body))
        assert "repost_job_id" not in job["result"]
        # 10 units carry it: 5 on hand (L1 now 11.00 a unit) and C1's 5, which gets 5.00 of COGS.
        assert books.cogs("C1") == Decimal("55")
        cost = query("SELECT unit_cost FROM lots WHERE lot_id = 'L1'", {}, books.tenant_id)[0][0]
        assert cost == Decimal("11")
        assert _reposts(books) == 0
        books.verify_ok()
