"""Fault scenarios through the API: a retry storm on one Idempotency-Key (issue 14 item 1, under a running
worker), concurrent runs, exports and receipts for one tenant, and a mixed chaos run over five tenants while
workers are killed every few seconds, compared with the same jobs run without faults."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest

from tests.api.test_concurrency import HealthWatch, burst
from tests.faults.harness import Faults, ledger_books, size
from tests.faults.invariants import PROBE_SKU, settle
from tests.support import Api, MasterData, make_tenant, query, sale, seed_master_data

pytestmark = pytest.mark.own_stack
CLIENTS = 20


def _http(api: Api) -> httpx.Client:
    return httpx.Client(base_url=str(api.http.base_url), headers=dict(api.http.headers), timeout=60)


def _run(n: int, sku: str = "F-1") -> dict[str, Any]:
    lot = {"lot_id": f"L{n}", "sku": sku, "received_date": "2024-07-01", "original_quantity": "5",
           "remaining_quantity": "5", "unit_price": "2"}  # fmt: skip
    return {"sales_data": [sale(f"S{n}", sku, "2024-07-20", "1")], "lots_data": [lot]}


def _tenant(base: str, *more_skus: str) -> tuple[str, Api, MasterData]:
    tenant_id, owner = make_tenant(base, prefix="flt")
    return tenant_id, owner, seed_master_data(owner, skus=("F-1", PROBE_SKU, *more_skus))


# s09c's runs, each on a SKU of its own: run in any order, none is a backdated entry for another (a run's lot
# dated before another run's costed sale of the same SKU would be refused, BACKDATED_RECEIPT), and the receipts
# (F-1) are never dated before a costed sale of theirs.
BURST_SKUS = tuple(f"F-{100 + n}" for n in range(6))


@pytest.mark.soak
def test_s09a_one_idempotency_key_from_20_clients(faults: Faults, holds) -> None:
    """The same Idempotency-Key and body from 20 clients at once while a worker runs: one job, executed
    once; /health answers throughout."""
    faults.start_worker("w1")
    t, owner, _ = _tenant(faults.base)
    with HealthWatch(faults.base), _http(owner) as http:
        headers = {"Idempotency-Key": "storm"}
        answers = burst([lambda: http.post("/runs", json=_run(1), headers=headers) for _ in range(CLIENTS)])
    assert [a.status_code for a in answers] == [202] * CLIENTS, [a.text for a in answers if a.status_code != 202]
    assert len({a.json()["job_id"] for a in answers}) == 1
    holds([t])


@pytest.mark.soak
def test_s09b_one_idempotency_key_with_20_different_bodies(faults: Faults, holds) -> None:
    """One Idempotency-Key with 20 different bodies at once: one job, 422 IDEMPOTENCY_KEY_REUSED for the
    others; /health answers throughout."""
    faults.start_worker("w1")
    t, owner, _ = _tenant(faults.base)
    with HealthWatch(faults.base), _http(owner) as http:
        headers = {"Idempotency-Key": "reused"}
        answers = burst([partial(http.post, "/runs", json=_run(n), headers=headers) for n in range(CLIENTS)])
    assert sorted(a.status_code for a in answers) == [202] + [422] * (CLIENTS - 1), [a.text for a in answers]
    assert {a.json()["error"]["reason"] for a in answers if a.status_code == 422} == {"IDEMPOTENCY_KEY_REUSED"}
    holds([t])


@pytest.mark.soak
def test_s09c_runs_exports_and_receipts_for_one_tenant_at_once(faults: Faults, holds) -> None:
    """Runs, exports and receipts for one tenant submitted at the same instant, and another tenant's
    receipt meanwhile: every request is answered, /health answers throughout, every job completes once."""
    faults.start_worker("w1")
    t, owner, md = _tenant(faults.base, *BURST_SKUS)
    other, other_owner, other_md = _tenant(faults.base)
    receipt = {"vendor_id": md.vendor_id, "received_at": "2024-07-02T00:00:00Z",
               "lines": [{"sku": "F-1", "quantity": 1, "unit_cost": 2}]}  # fmt: skip
    other_receipt = receipt | {"vendor_id": other_md.vendor_id}
    first = owner.post("/receipts", json=receipt)  # an export needs data in scope
    assert first.status_code == 202, first.text
    owner.wait_job(first.json()["job_id"])
    with HealthWatch(faults.base), _http(owner) as http, _http(other_owner) as other_http:
        calls: list[Callable[[], httpx.Response]] = []
        for n in range(6):
            calls.append(partial(http.post, "/runs", json=_run(100 + n, BURST_SKUS[n])))
            calls.append(partial(http.post, "/exports", json={"report": "stock-on-hand", "params": {}}))
            calls.append(partial(http.post, "/receipts", json=receipt))
        calls.append(partial(other_http.post, "/receipts", json=other_receipt))
        answers = burst(calls)
    assert [a.status_code for a in answers] == [202] * len(calls), [a.text for a in answers if a.status_code != 202]
    holds([t, other])
    outcomes = query("SELECT kind, status, error FROM jobs WHERE tenant_id = :t AND status <> 'completed'", {"t": t}, t)
    assert outcomes == [], outcomes  # every one of the burst's jobs did its work, none was refused


# --- 12: chaos over five tenants ---------------------------------------------------------------------------


def _workload(owner: Api, md: MasterData, jobs: int) -> None:
    """A fixed sequence of receipts, runs and counts (each count counts less than is on hand: a shrink),
    submitted one after another; the same for every tenant."""
    for i in range(jobs):
        day = f"2024-03-{1 + i:02d}"
        match i % 3:
            case 0:
                line = {"sku": "F-1", "quantity": 20, "unit_cost": 2 + i % 4, "lot_id": f"R{i}"}
                body: dict[str, Any] = {"vendor_id": md.vendor_id, "received_at": f"{day}T08:00:00Z", "lines": [line]}
                path = "/receipts"
            case 1:
                body = {"sales_data": [sale(f"S{i}", "F-1", day, "4")]}
                path = "/runs"
            case _:
                body = {"bin_id": md.bin_id, "counted_at": f"{day}T18:00:00Z",
                        "lines": [{"sku": "F-1", "counted_quantity": 1}]}  # fmt: skip
                path = "/counts"
        response = owner.post(path, json=body)
        assert response.status_code == 202, response.text


class Chaos:
    """Kills one of the workers (SIGKILL, the whole process group) every few seconds and starts it again."""

    def __init__(self, faults: Faults, names: list[str], every: float) -> None:
        self.faults, self.names, self.every = faults, names, every
        self.kills = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        rng = random.Random(14)
        while not self.stop.wait(self.every * rng.uniform(0.5, 1.5)):
            name = rng.choice(self.names)
            self.faults.stop(name, signal.SIGKILL)
            self.kills += 1
            self.faults.start_worker(name, {"ASORA_DEBUG_JOB_DELAY_SECONDS": "0.3"})

    def __enter__(self) -> Chaos:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


@pytest.mark.soak
def test_s12_mixed_chaos_over_five_tenants(faults: Faults, holds) -> None:
    """Five tenants submit receipts, runs and counts while workers are killed every few seconds: afterwards
    every invariant holds, and each tenant's books (every ledger event, every job's outcome, in seq order)
    equal those of a tenant given the same jobs without faults."""
    jobs = size(9, 30)
    for name in ("c1", "c2"):
        faults.start_worker(name, {"ASORA_DEBUG_JOB_DELAY_SECONDS": "0.3"})
    tenants = [_tenant(faults.base) for _ in range(5)]
    with Chaos(faults, ["c1", "c2"], every=3.0) as chaos:
        threads = [threading.Thread(target=_workload, args=(owner, md, jobs)) for _, owner, md in tenants]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        settle([t for t, _, _ in tenants], timeout=size(20, 60))  # keep killing a while as the jobs run
        time.sleep(0.1)
    assert chaos.kills >= 1
    chaotic = [t for t, _, _ in tenants]
    settle(chaotic, 240)

    faults.stop_workers()
    faults.start_worker("calm")
    control = [_tenant(faults.base) for _ in range(5)]
    for _, owner, md in control:
        _workload(owner, md, jobs)
    calm = [t for t, _, _ in control]
    assert settle(calm, 240)
    outcomes = query("SELECT status, count(*) FROM jobs WHERE tenant_id = ANY(:t) GROUP BY 1", {"t": calm})
    assert dict(outcomes) == {"completed": 5 * jobs}, "the workload itself is valid: every job completes"
    for left, right in zip(chaotic, calm, strict=True):
        assert ledger_books(left) == ledger_books(right), f"tenant {left}'s books differ from the fault-free run"
    holds(chaotic + calm)
