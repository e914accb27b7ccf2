"""Helpers for tests that drive the real stack: processes, HTTP clients, factories, waiting."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx

from shared.embedded import ServiceUrls
from shared.stack import Stack, free_port, service_env, wait_http
from tests.conftest import OPERATOR_KEY

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

TERMINAL_JOB = ("completed", "failed")
OWNER_SCOPE = "*"  # `query`'s tenant_id for "every tenant's rows, as the owner sees them"


@lru_cache(maxsize=4)
def _owner_engine(url: str) -> Engine:
    from shared import db

    return db.make_engine(url, application_name="asora:test-owner", pool_size=2)


@contextmanager
def owner_unit() -> Iterator[Session]:
    """One transaction as the database owner (ASORA_DATABASE_URL; a superuser on the test servers): every
    tenant's rows, row-level security aside. For test set-up and inspection only: no application process has
    this (docs/security.md)."""
    from sqlalchemy.orm import Session

    from shared.db import database_url

    with Session(_owner_engine(database_url()), expire_on_commit=False) as session, session.begin():
        yield session


def start_stack(
    service_urls: dict[str, str],
    log_dir: Path,
    *,
    workers: int = 1,
    relay: bool = True,
    extra_env: dict[str, str] | None = None,
) -> tuple[Stack, str]:
    urls = ServiceUrls(service_urls["database_url"], service_urls["redis_url"], False, False)
    env = service_env(urls, {k: v for k, v in os.environ.items() if k.startswith("ASORA_")} | (extra_env or {}))
    stack = Stack(env=env, log_dir=log_dir)
    port = free_port()
    stack.start_api(port)
    for n in range(workers):
        stack.start_worker(name=f"worker{n}", concurrency=2)
    if relay:
        stack.start_relay()
    base = f"http://127.0.0.1:{port}"
    if not wait_http(f"{base}/api/v1/health", timeout=60, ok_statuses=(200, 503)):
        stack.stop_all()
        raise RuntimeError(f"API did not start; logs in {log_dir}")
    return stack, base


IN_PROCESS = "in-process"  # a base (tests/conftest.py `in_process`) for the API served in the test process


def _in_process_client(headers: dict[str, str]) -> httpx.Client:
    from fastapi.testclient import TestClient

    from api.main import app

    # No lifespan: nothing is published (no worker would run it), and the key is bootstrapped by the fixture.
    client = TestClient(app, base_url="http://testserver/api/v1", headers=headers, raise_server_exceptions=False)
    return cast(httpx.Client, client)  # an httpx2 client: the same interface


class Api:
    def __init__(self, base: str, key: str | None, tenant_id: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if tenant_id:
            headers["X-Tenant-ID"] = tenant_id
        if base == IN_PROCESS:
            self.http = _in_process_client(headers)
        else:
            self.http = httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=60)
        self.base = base
        self.key = key or ""

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.put(path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.patch(path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.delete(path, **kw)

    def wait_job(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        job: dict[str, Any] = wait_for(
            lambda: _terminal(_json(self.get(f"/jobs/{job_id}"))), timeout, f"job {job_id} did not finish"
        )
        return job


def _terminal(job: dict[str, Any]) -> dict[str, Any] | None:
    return job if job.get("status") in TERMINAL_JOB else None


def _json(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body


def wait_for(probe: Callable[[], Any], timeout: float = 60, message: str = "condition not met") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(message)


def operator(base: str, tenant_id: str | None = None) -> Api:
    return Api(base, OPERATOR_KEY, tenant_id)


def unique_tenant(prefix: str = "t") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def make_tenant(
    base: str, *, plan: str = "enterprise", role_model: str = "standard", prefix: str = "t"
) -> tuple[str, Api]:
    """A new tenant and an owner client for it."""
    tenant_id = unique_tenant(prefix)
    op = operator(base)
    response = op.post(
        "/tenants", json={"tenant_id": tenant_id, "name": tenant_id, "plan": plan, "role_model": role_model}
    )
    assert response.status_code == 201, response.text
    key = operator(base, tenant_id).post("/keys", json={"role": "owner", "name": "owner"})
    assert key.status_code == 201, key.text
    return tenant_id, Api(base, key.json()["key"])


def key_for(base: str, tenant_id: str, role: str) -> Api:
    key = operator(base, tenant_id).post("/keys", json={"role": role, "name": role})
    assert key.status_code == 201, key.text
    return Api(base, key.json()["key"])


def seed_items(tenant_id: str, skus: list[str]) -> None:
    """Items for runs, written directly (the master-data endpoints have their own tests)."""
    from shared import db
    from shared.base import new_id
    from shared.inventory.models import Category, Item

    with db.unit_of_work(tenant_id) as session:
        category = Category(id=new_id("cat"), tenant_id=tenant_id, name="general")
        session.add(category)
        session.add_all(
            Item(id=new_id("item"), tenant_id=tenant_id, sku=sku, name=sku, category_id=category.id) for sku in skus
        )


def submit_run_direct(
    tenant_id: str,
    sales: list[dict[str, Any]],
    lots: list[dict[str, Any]] | None = None,
    dry_run: bool = False,
    mode: str | None = "fifo",
) -> tuple[str, str]:
    """Record a run job exactly as the API does, but without publishing it (an outbox row the relay or a
    test must deliver)."""
    from shared import db
    from shared.auth import Principal
    from shared.runs import service as runs

    actor = Principal(key_id="test", role="owner", role_model="standard", tenant_id=tenant_id)
    with db.unit_of_work(tenant_id) as session:
        run, job = runs.submit_run(
            session,
            tenant_id=tenant_id,
            actor=actor,
            dry_run=dry_run,
            mode=mode,
            sales=("json", runs.records_blob(sales)),
            lots=("json", runs.records_blob(lots)) if lots else None,
        )
        return run, job.id


def query(sql: str, params: dict[str, Any] | None = None, tenant_id: str = OWNER_SCOPE) -> list[Any]:
    """Rows as the application role sees them scoped to a tenant, or (the default) every tenant's rows as the
    owner sees them."""
    from sqlalchemy import text

    from shared import db

    with owner_unit() if tenant_id == OWNER_SCOPE else db.unit_of_work(tenant_id) as session:
        return list(session.execute(text(sql), params or {}).all())


def sale(sale_id: str, sku: str, date: str, quantity: str) -> dict[str, Any]:
    return {"sale_id": sale_id, "sku": sku, "sale_date": date, "quantity_sold": quantity}


def lot(lot_id: str, sku: str, date: str, quantity: str, price: str, freight: str = "0") -> dict[str, Any]:
    return {
        "lot_id": lot_id,
        "sku": sku,
        "received_date": date,
        "original_quantity": quantity,
        "remaining_quantity": quantity,
        "unit_price": price,
        "freight_cost_per_unit": freight,
    }


# --- inventory factories -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MasterData:
    """The ids of a tenant's seeded master data: one category, hub, bin and vendor, and items by SKU."""

    category_id: str
    hub_id: str
    bin_id: str
    vendor_id: str
    items: dict[str, str]


def create(api: Api, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def seed_master_data(api: Api, skus: tuple[str, ...] = ("WIDGET-A",)) -> MasterData:
    """Master data in the runbook's onboarding order, through the API."""
    category = create(api, "/categories", {"name": "general"})
    hub = create(api, "/hubs", {"name": "main"})
    bin_ = create(api, "/bins", {"hub_id": hub["id"], "name": "A-01"})
    vendor = create(api, "/vendors", {"name": "Acme Supply"})
    items = {
        sku: create(
            api, "/items", {"sku": sku, "name": sku, "category_id": category["id"], "default_bin_id": bin_["id"]}
        )["id"]
        for sku in skus
    }
    return MasterData(category["id"], hub["id"], bin_["id"], vendor["id"], items)


def receive(
    api: Api, vendor_id: str, lines: list[dict[str, Any]], received_at: str = "2024-07-01T00:00:00Z"
) -> dict[str, Any]:
    """Post a receipt and wait for its job; returns the finished job."""
    accepted = api.post("/receipts", json={"vendor_id": vendor_id, "received_at": received_at, "lines": lines})
    assert accepted.status_code == 202, accepted.text
    return api.wait_job(accepted.json()["job_id"])


# --- ledger factories (reports, exports, verify) ----------------------------------------------------------
# Direct ledger writes through shared.ledger.service.append_events, keeping `lots` consistent with the ledger
# exactly as the writers do; they stand in for receipts and counts in tests that need precise ledger shapes.

FACTORY_JOB = "job_factory"


def create_tenant_direct(prefix: str = "t", plan: str = "enterprise") -> str:
    from shared import db
    from shared.tenants import service as tenants

    tenant_id = unique_tenant(prefix)
    with db.unit_of_work() as session:
        tenants.create_tenant(
            session, tenant_id=tenant_id, name=tenant_id, plan=plan, role_model="standard", actor=None
        )
    return tenant_id


def _at(value: str) -> Any:
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ledger_receive(
    session: Any,
    tenant_id: str,
    *,
    lot_id: str,
    sku: str,
    quantity: str,
    unit_cost: str,
    at: str,
    bin_id: str | None = None,
    vendor_id: str | None = None,
    run_id: str | None = None,
    kind: str = "RECEIPT",
) -> int:
    """A lot and the event that creates it (a RECEIPT, or an ADJUSTMENT for a count's gain); returns its seq."""
    from shared.decimals import parse_scaled
    from shared.ledger.models import Lot
    from shared.ledger.service import NewEvent, append_events

    q, c = parse_scaled(quantity, 4), parse_scaled(unit_cost, 4)
    event = NewEvent(kind, sku, lot_id, q, c, q * c, _at(at), reference=lot_id, bin_id=bin_id)
    seq, _ = append_events(session, tenant_id, [event], job_id=FACTORY_JOB, run_id=run_id)
    session.add(
        Lot(
            tenant_id=tenant_id,
            lot_id=lot_id,
            sku=sku,
            bin_id=bin_id,
            vendor_id=vendor_id,
            received_at=_at(at),
            original_quantity=quantity,
            received_quantity=quantity,
            unit_price=unit_cost,
            freight_cost_per_unit="0",
            unit_cost=unit_cost,
            remaining_quantity=quantity,
            status="live",
            source_job_id=FACTORY_JOB,
            source_run_id=run_id,
            receipt_seq=seq,
        )
    )
    session.flush()
    return seq


def ledger_move(
    session: Any,
    tenant_id: str,
    kind: str,
    *,
    lot_id: str,
    quantity: str,
    at: str,
    run_id: str | None = None,
    reference: str | None = None,
    bin_id: str | None = None,
) -> int:
    """An ISSUE or ADJUSTMENT (signed quantity) against an existing lot at the lot's cost; returns its seq."""
    from decimal import Decimal

    from sqlalchemy import select

    from shared.decimals import parse_scaled
    from shared.ledger.models import Lot
    from shared.ledger.service import NewEvent, append_events

    lot_row = session.scalar(select(Lot).where(Lot.tenant_id == tenant_id, Lot.lot_id == lot_id))
    q, c = parse_scaled(quantity, 4), int(lot_row.unit_cost.scaleb(4))
    event = NewEvent(kind, lot_row.sku, lot_id, q, c, q * c, _at(at), reference=reference, bin_id=bin_id)
    seq, _ = append_events(session, tenant_id, [event], job_id=FACTORY_JOB, run_id=run_id)
    lot_row.remaining_quantity += Decimal(quantity)
    session.flush()
    return seq


def ledger_reverse(session: Any, tenant_id: str, seq: int) -> int:
    """The reversal of event `seq` (same business time, negated), applied to its lot; returns its seq."""
    from sqlalchemy import select

    from shared.ledger.models import LedgerEvent, Lot
    from shared.ledger.service import NewEvent, append_events

    original = session.scalar(select(LedgerEvent).where(LedgerEvent.tenant_id == tenant_id, LedgerEvent.seq == seq))
    event = NewEvent(
        "REVERSAL",
        original.sku,
        original.lot_id,
        -int(original.quantity.scaleb(4)),
        int(original.unit_cost.scaleb(4)),
        -int(original.amount.scaleb(8)),
        original.occurred_at,
        reference=original.reference,
        bin_id=original.bin_id,
        reverses_seq=seq,
    )
    new_seq, _ = append_events(session, tenant_id, [event], job_id=FACTORY_JOB, run_id=original.run_id)
    lot_row = session.scalar(select(Lot).where(Lot.tenant_id == tenant_id, Lot.lot_id == original.lot_id))
    lot_row.remaining_quantity -= original.quantity
    if original.event_type == "RECEIPT":
        lot_row.status = "reversed"
    session.flush()
    return int(new_seq)


def seed_locations(session: Any, tenant_id: str, hubs: dict[str, list[str]]) -> None:
    """Hubs and their bins with the given ids ({hub_id: [bin_id, ...]})."""
    from shared.inventory.models import Bin, Hub

    for hub_id, bins in hubs.items():
        session.add(Hub(id=hub_id, tenant_id=tenant_id, name=hub_id))
        session.add_all(Bin(id=b, tenant_id=tenant_id, hub_id=hub_id, name=b) for b in bins)
    session.flush()


def ledger_run(
    session: Any, tenant_id: str, run_id: str, issues: list[tuple[str, str, str, str]], *, status: str = "completed"
) -> None:
    """A committed COGS run as the run job leaves it: a finished job, the run with its totals, one ISSUE per
    (lot_id, quantity, sale date, sale_id) slice, and per-sale results."""
    from decimal import Decimal

    from sqlalchemy import text

    from shared.base import utcnow
    from shared.jobs import service as jobs
    from shared.jobs.kinds import JobKind, JobStatus
    from shared.jobs.models import Job
    from shared.runs.models import Run, RunSale

    accepted = jobs.accept_job(
        session, tenant_id=tenant_id, kind=JobKind.COGS_RUN, payload={"run_id": run_id}, actor=None
    )
    jobs.number_pending(session)
    job = session.get(Job, accepted.id)
    assert job is not None
    job.status, job.published_at, job.finished_at = JobStatus.COMPLETED, utcnow(), utcnow()
    run = Run(id=run_id, job_id=job.id, tenant_id=tenant_id, status=status, completed_seq=job.seq)
    session.add(run)
    session.flush()
    sales: dict[str, list[Any]] = {}
    total_q, total_c = Decimal(0), Decimal(0)
    for lot_id, quantity, at, sale_id in issues:
        seq = ledger_move(
            session, tenant_id, "ISSUE", lot_id=lot_id, quantity=f"-{quantity}", at=at, run_id=run_id, reference=sale_id
        )
        amount = -session.execute(
            text("SELECT amount FROM ledger_events WHERE tenant_id = :t AND seq = :s"),
            {"t": tenant_id, "s": seq},
        ).scalar_one()
        entry = sales.setdefault(sale_id, [None, Decimal(0), Decimal(0), at])
        entry[1] += Decimal(quantity)
        entry[2] += amount
        total_q += Decimal(quantity)
        total_c += amount
    for sale_id, (_, quantity, cogs, at) in sales.items():
        sku = session.execute(
            text("SELECT sku FROM lots WHERE tenant_id = :t AND lot_id = :l"),
            {"t": tenant_id, "l": issues[0][0]},
        ).scalar_one()
        session.add(
            RunSale(
                run_id=run_id,
                sale_id=sale_id,
                tenant_id=tenant_id,
                sku=sku,
                sale_date=_at(at),
                quantity=quantity,
                cogs=cogs,
            )
        )
    run.total_quantity, run.total_cogs = total_q, total_c
    session.flush()


def owner_connection(service_urls: dict[str, str]) -> Any:
    """A psycopg connection as the database owner (superuser on the test servers): bypasses row-level
    security, and may disable triggers with `SET session_replication_role = replica` to play an attacker."""
    import psycopg

    return psycopg.connect(
        service_urls["database_url"].replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    )
