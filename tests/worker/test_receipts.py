"""Receiving and cycle counts through the real pipeline (API, relay, worker): ledger events, lots and
exact values; all-or-nothing failures decided in the worker; and `asora tenants verify`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from shared.locks import fence_key
from tests.support import create, make_tenant, query, receive, seed_master_data

ASORA = str(Path(sys.executable).parent / "asora")


@pytest.fixture(scope="module")
def base(shared_stack):
    return shared_stack


@contextmanager
def fence_held(service_urls, tenant_id: str) -> Iterator[None]:
    """Hold the tenant's PostgreSQL fence, so its worker cannot start a job until we let go. Jobs accepted
    meanwhile wait in order; whatever we change meanwhile happened after their intake."""
    url = service_urls["database_url"].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (fence_key(tenant_id),))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (fence_key(tenant_id),))


def _ledger(api, **params):
    return api.get("/ledger", params={"limit": 1000, **params}).json()["items"]


def _lots(tenant_id: str, sku: str | None = None) -> dict[str, tuple[str, str, str, str]]:
    rows = query(
        "SELECT lot_id, remaining_quantity, unit_cost, bin_id, vendor_id FROM lots WHERE sku = coalesce(:s, sku)"
        " ORDER BY lot_id",
        {"s": sku},
        tenant_id,
    )
    return {r[0]: (format(r[1], "f"), format(r[2], "f"), r[3], r[4]) for r in rows}


def test_receipt_writes_receipt_events_and_lots(base):
    tenant_id, owner = make_tenant(base, prefix="rcv")
    md = seed_master_data(owner, skus=("RCV-A", "RCV-B"))
    other_bin = create(owner, "/bins", {"hub_id": md.hub_id, "name": "overflow"})
    job = receive(
        owner,
        md.vendor_id,
        [
            {"sku": "RCV-A", "quantity": "10", "unit_cost": "2.5", "freight_cost_per_unit": "0.25", "lot_id": "PO-1"},
            {"sku": "RCV-B", "bin_id": other_bin["id"], "quantity": 3.5, "unit_cost": 4},
        ],
        received_at="2024-07-01T09:30:00+02:00",
    )
    assert job["status"] == "completed", job
    events = _ledger(owner, job_id=job["job_id"])
    generated = f"RCV-{job['job_id']}-2"
    assert [
        (e["event_type"], e["sku"], e["lot_id"], e["bin_id"], e["quantity"], e["unit_cost"], e["amount"])
        for e in events
    ] == [
        ("RECEIPT", "RCV-A", "PO-1", md.bin_id, "10.0000", "2.7500", "27.50000000"),
        ("RECEIPT", "RCV-B", generated, other_bin["id"], "3.5000", "4.0000", "14.00000000"),
    ]
    assert {e["occurred_at"] for e in events} == {"2024-07-01T07:30:00Z"}
    assert {e["reference"] for e in events} == {md.vendor_id}
    assert [e["seq"] for e in events] == [1, 2]
    assert _lots(tenant_id) == {
        "PO-1": ("10.0000", "2.7500", md.bin_id, md.vendor_id),
        generated: ("3.5000", "4.0000", other_bin["id"], md.vendor_id),
    }
    # The lot is received once: the same lot id again is refused at intake.
    again = owner.post(
        "/receipts",
        json={
            "vendor_id": md.vendor_id,
            "received_at": "2024-07-02T00:00:00Z",
            "lines": [{"sku": "RCV-A", "quantity": 1, "unit_cost": 1, "lot_id": "PO-1"}],
        },
    )
    assert again.status_code == 422
    assert again.json()["error"]["reason"] == "LOT_CONFLICT"

    assert [e["sku"] for e in _ledger(owner, sku="RCV-B")] == ["RCV-B"]
    assert _ledger(owner, **{"from": "2024-07-02T00:00:00Z"}) == []
    first = owner.get("/ledger", params={"limit": 1}).json()
    assert first["next_cursor"] == "1"
    assert [e["seq"] for e in owner.get("/ledger", params={"cursor": 1}).json()["items"]] == [2]
    audit = owner.get("/audit", params={"action": "job.receipt"}).json()["items"]
    assert [(a["outcome"], a["job_id"]) for a in audit] == [("completed", job["job_id"])]
    assert owner.get("/audit", params={"action": "receipt.accepted"}).json()["items"][0]["job_id"] == job["job_id"]


def test_a_receipt_failing_in_the_worker_writes_nothing(base, service_urls):
    tenant_id, owner = make_tenant(base, prefix="aon")
    md = seed_master_data(owner, skus=("AON-1", "AON-2"))
    first = {
        "vendor_id": md.vendor_id,
        "received_at": "2024-07-01T00:00:00Z",
        "lines": [{"sku": "AON-1", "quantity": 5, "unit_cost": 1, "lot_id": "L-SHARED"}],
    }
    second = {
        "vendor_id": md.vendor_id,
        "received_at": "2024-07-02T00:00:00Z",
        "lines": [
            {"sku": "AON-2", "quantity": 7, "unit_cost": 2},
            {"sku": "AON-1", "quantity": 1, "unit_cost": 1, "lot_id": "L-SHARED"},
        ],
    }
    # Both pass intake while neither has run; in order, the second one's lot is taken by the first.
    with fence_held(service_urls, tenant_id):
        accepted = [owner.post("/receipts", json=body) for body in (first, second)]
        assert [a.status_code for a in accepted] == [202, 202], [a.text for a in accepted]
    ok, failed = (owner.wait_job(a.json()["job_id"]) for a in accepted)
    assert ok["status"] == "completed"
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "VALIDATION_FAILED"
    assert failed["error"]["reason"] == "LOT_CONFLICT"
    assert failed["error"]["details"][0]["row"] == 2
    assert _ledger(owner, job_id=failed["job_id"]) == []
    assert set(_lots(tenant_id)) == {"L-SHARED"}
    assert [e["seq"] for e in _ledger(owner)] == [1]


def test_vendor_disabled_after_intake_fails_in_the_worker(base, service_urls):
    tenant_id, owner = make_tenant(base, prefix="vdis")
    md = seed_master_data(owner, skus=("VD-1",))
    body = {
        "vendor_id": md.vendor_id,
        "received_at": "2024-07-01T00:00:00Z",
        "lines": [{"sku": "VD-1", "quantity": 5, "unit_cost": 1}],
    }
    with fence_held(service_urls, tenant_id):
        accepted = owner.post("/receipts", json=body)
        assert accepted.status_code == 202, accepted.text
        assert owner.post(f"/vendors/{md.vendor_id}/disable").status_code == 200
    job = owner.wait_job(accepted.json()["job_id"])
    assert job["status"] == "failed"
    assert (job["error"]["code"], job["error"]["reason"]) == ("VALIDATION_FAILED", "VENDOR_DISABLED")
    assert _ledger(owner) == []
    assert _lots(tenant_id) == {}
    audit = owner.get("/audit", params={"action": "job.receipt"}).json()["items"]
    assert [(a["outcome"], a["reason"]) for a in audit] == [("failed", "VENDOR_DISABLED")]


def test_count_records_shrink_fifo_and_gains_with_exact_values(base):
    tenant_id, owner = make_tenant(base, prefix="cnt")
    md = seed_master_data(owner, skus=("CNT-A", "CNT-B", "CNT-C", "CNT-D"))
    job = receive(
        owner,
        md.vendor_id,
        [
            {"sku": "CNT-A", "quantity": 10, "unit_cost": "2.00", "lot_id": "A-NEW"},
            {"sku": "CNT-B", "quantity": 5, "unit_cost": "4", "freight_cost_per_unit": "0.5"},
            {"sku": "CNT-D", "quantity": 4, "unit_cost": "1"},
        ],
        received_at="2024-07-02T00:00:00Z",
    )
    assert job["status"] == "completed", job
    older = receive(owner, md.vendor_id, [{"sku": "CNT-A", "quantity": 10, "unit_cost": "3.0000", "lot_id": "A-OLD"}])
    assert older["status"] == "completed", older

    accepted = owner.post(
        "/counts",
        json={
            "bin_id": md.bin_id,
            "counted_at": "2024-08-01T00:00:00Z",
            "lines": [
                {"sku": "CNT-A", "counted_quantity": "4.5"},
                {"sku": "CNT-B", "counted_quantity": 7},
                {"sku": "CNT-C", "counted_quantity": 3, "unit_cost": "1.25"},
                {"sku": "CNT-D", "counted_quantity": "4.0000"},
            ],
        },
    )
    assert accepted.status_code == 202, accepted.text
    count_id = accepted.json()["count_id"]
    done = owner.wait_job(accepted.json()["job_id"])
    assert done["status"] == "completed", done

    count = owner.get(f"/counts/{count_id}").json()
    assert count["status"] == "completed"
    assert count["error"] is None
    assert [
        (
            line["sku"],
            line["expected_quantity"],
            line["counted_quantity"],
            line["difference"],
            line["unit_cost"],
            line["amount"],
        )
        for line in count["lines"]
    ] == [
        # Shrink of 15.5 consumes the oldest lot first: A-OLD (received 07-01) 10 @ 3, then A-NEW 5.5 @ 2.
        ("CNT-A", "20.0000", "4.5000", "-15.5000", None, "-41.00000000"),
        # A gain is valued at the latest receipt's unit cost (4 + 0.5 freight).
        ("CNT-B", "5.0000", "7.0000", "2.0000", "4.5000", "9.00000000"),
        ("CNT-C", "0.0000", "3.0000", "3.0000", "1.2500", "3.75000000"),
        ("CNT-D", "4.0000", "4.0000", "0.0000", None, "0.00000000"),
    ]

    events = _ledger(owner, job_id=done["job_id"])
    assert [(e["event_type"], e["sku"], e["lot_id"], e["quantity"], e["unit_cost"], e["amount"]) for e in events] == [
        ("ADJUSTMENT", "CNT-A", "A-OLD", "-10.0000", "3.0000", "-30.00000000"),
        ("ADJUSTMENT", "CNT-A", "A-NEW", "-5.5000", "2.0000", "-11.00000000"),
        ("ADJUSTMENT", "CNT-B", f"ADJ-{count_id}-2", "2.0000", "4.5000", "9.00000000"),
        ("ADJUSTMENT", "CNT-C", f"ADJ-{count_id}-3", "3.0000", "1.2500", "3.75000000"),
    ]
    assert {(e["bin_id"], e["reference"], e["occurred_at"]) for e in events} == {
        (md.bin_id, count_id, "2024-08-01T00:00:00Z")
    }
    lots = _lots(tenant_id)
    assert lots["A-OLD"][0] == "0.0000"
    assert lots["A-NEW"][0] == "4.5000"
    assert lots[f"ADJ-{count_id}-2"][:2] == ("2.0000", "4.5000")
    assert lots[f"ADJ-{count_id}-3"][:2] == ("3.0000", "1.2500")
    listed = owner.get("/counts").json()["items"]
    assert [(c["id"], c["status"]) for c in listed] == [(count_id, "completed")]


def test_a_gain_without_cost_basis_is_refused(base, service_urls):
    tenant_id, owner = make_tenant(base, prefix="ncb")
    md = seed_master_data(owner, skus=("NCB-1", "NCB-2"))
    body = {
        "bin_id": md.bin_id,
        "counted_at": "2024-08-01T00:00:00Z",
        "lines": [{"sku": "NCB-1", "counted_quantity": 1}, {"sku": "NCB-2", "counted_quantity": 0}],
    }
    # Nothing pending: the outcome is certain at intake.
    refused = owner.post("/counts", json=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["reason"], error["details"][0]["row"]) == ("NO_COST_BASIS", 1)
    # With an earlier job pending, the worker decides, and fails the count writing nothing.
    with fence_held(service_urls, tenant_id):
        earlier = owner.post(
            "/counts", json={**body, "lines": [{"sku": "NCB-2", "counted_quantity": 1, "unit_cost": "2"}]}
        )
        later = owner.post("/counts", json=body)
        assert (earlier.status_code, later.status_code) == (202, 202), later.text
    assert owner.wait_job(earlier.json()["job_id"])["status"] == "completed"
    failed = owner.wait_job(later.json()["job_id"])
    assert (failed["status"], failed["error"]["reason"]) == ("failed", "NO_COST_BASIS")
    count = owner.get(f"/counts/{later.json()['count_id']}").json()
    assert count["status"] == "failed"
    assert count["error"]["reason"] == "NO_COST_BASIS"
    assert [line["expected_quantity"] for line in count["lines"]] == [None, None]
    assert _ledger(owner, job_id=failed["job_id"]) == []


def _verify(service_urls, tenant_id: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ASORA_DATABASE_URL": service_urls["database_url"],
        "ASORA_REDIS_URL": service_urls["redis_url"],
        "COLUMNS": "200",
    }
    return subprocess.run(
        [ASORA, "tenants", "verify", tenant_id], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_tenants_verify_reports_each_check(base, service_urls):
    tenant_id, owner = make_tenant(base, prefix="ver")
    empty = _verify(service_urls, tenant_id)
    assert empty.returncode == 1, empty.stdout + empty.stderr
    assert "items exist" in empty.stderr
    assert "FAIL" in empty.stderr

    md = seed_master_data(owner, skus=("VER-1",))
    assert (
        receive(owner, md.vendor_id, [{"sku": "VER-1", "quantity": 8, "unit_cost": 1, "lot_id": "V-1"}])["status"]
        == "completed"
    )
    good = _verify(service_urls, tenant_id)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "FAIL" not in good.stderr
    assert "all checks passed" in good.stderr

    # Derived balances that drift from the ledger are caught.
    url = service_urls["database_url"].replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE lots SET remaining_quantity = 7 WHERE tenant_id = %s AND lot_id = 'V-1'", (tenant_id,))
    drifted = _verify(service_urls, tenant_id)
    assert drifted.returncode == 1
    assert "VER-1: lots 7" in drifted.stderr

    assert _verify(service_urls, "no-such-tenant").returncode == 1
