"""Helpers for tests that drive the real stack: processes, HTTP clients, factories, waiting."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from shared.embedded import ServiceUrls
from shared.stack import Stack, free_port, service_env, wait_http
from tests.conftest import OPERATOR_KEY

TERMINAL_JOB = ("completed", "failed")


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


class Api:
    def __init__(self, base: str, key: str, tenant_id: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        if tenant_id:
            headers["X-Tenant-ID"] = tenant_id
        self.http = httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=60)
        self.base = base
        self.key = key

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
        return wait_for(lambda: _terminal(self.get(f"/jobs/{job_id}").json()), timeout, f"job {job_id} did not finish")


def _terminal(job: dict[str, Any]) -> dict[str, Any] | None:
    return job if job.get("status") in TERMINAL_JOB else None


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


def submit_run_direct(tenant_id: str, sales: list[dict[str, Any]], lots: list[dict[str, Any]] | None = None,
                      dry_run: bool = False) -> tuple[str, str]:
    """Record a run job exactly as the API does, but without publishing it (an outbox row the relay or a
    test must deliver)."""
    from shared import db
    from shared.auth import Principal
    from shared.runs import service as runs

    actor = Principal(key_id="test", role="owner", role_model="standard", tenant_id=tenant_id)
    with db.unit_of_work(tenant_id) as session:
        run, job = runs.submit_run(
            session, tenant_id=tenant_id, actor=actor, dry_run=dry_run, mode="fifo",
            sales=("json", runs.records_blob(sales)), lots=("json", runs.records_blob(lots)) if lots else None,
        )
        return run.id, job.id


def query(sql: str, params: dict[str, Any] | None = None, tenant_id: str = "*") -> list[Any]:
    """Rows as the application role sees them, scoped to a tenant (or all tenants)."""
    from sqlalchemy import text

    from shared import db

    with db.unit_of_work(tenant_id) as session:
        return list(session.execute(text(sql), params or {}).all())


def sale(sale_id: str, sku: str, date: str, quantity: str) -> dict[str, Any]:
    return {"sale_id": sale_id, "sku": sku, "sale_date": date, "quantity_sold": quantity}


def lot(lot_id: str, sku: str, date: str, quantity: str, price: str, freight: str = "0") -> dict[str, Any]:
    return {"lot_id": lot_id, "sku": sku, "received_date": date, "original_quantity": quantity,
            "remaining_quantity": quantity, "unit_price": price, "freight_cost_per_unit": freight}
