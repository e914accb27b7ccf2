"""Exports through the real stack: deterministic CSV files rendered by the worker, plan ceilings under
concurrency, permissions, "no data for scope" at intake and in the worker, and permanent history."""

from __future__ import annotations

import csv
import hashlib
import io
import re
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from sqlalchemy import func, select, text

from shared import db
from shared.locks import fence_key
from shared.reports.schemas import COLUMNS, REPORTS
from tests.support import (
    key_for,
    ledger_move,
    ledger_receive,
    make_tenant,
    operator,
    owner_connection,
    query,
    seed_locations,
)

PARAMS = {
    "stock-on-hand": {"as_of": "2024-03-01"},
    "inventory-movement": {"from": "2024-01-01", "to": "2024-12-31"},
    "receiving-summary": {},
    "shrink-summary": {"sku": 'B,"quoted" Ünïcode'},
    "valuation": {},
}


@pytest.fixture(scope="module")
def base(shared_stack):
    return shared_stack


def stocked_tenant(base, plan="enterprise"):
    """A tenant with two lots in one bin, one of them with a SKU that needs CSV quoting, and a shrink."""
    tenant_id, owner = make_tenant(base, plan=plan, prefix="exp")
    with db.unit_of_work(tenant_id) as s:
        bin_id = f"B1-{tenant_id}"
        seed_locations(s, tenant_id, {f"H1-{tenant_id}": [bin_id]})
        ledger_receive(
            s,
            tenant_id,
            lot_id="L1",
            sku="A",
            quantity="10",
            unit_cost="1.2345",
            at="2024-01-01T00:00:00Z",
            bin_id=bin_id,
            vendor_id="V1",
        )
        ledger_receive(
            s,
            tenant_id,
            lot_id="L2",
            sku=PARAMS["shrink-summary"]["sku"],
            quantity="3.5",
            unit_cost="2",
            at="2024-02-01T00:00:00Z",
            bin_id=bin_id,
            vendor_id="V2",
        )
        ledger_move(s, tenant_id, "ADJUSTMENT", lot_id="L2", quantity="-0.5", at="2024-02-15T00:00:00Z", bin_id=bin_id)
    return tenant_id, owner


def export(api, report, params, **kw):
    return api.post("/exports", json={"report": report, "params": params}, **kw)


def completed_export(api, report, params):
    accepted = export(api, report, params)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert set(body) == {"export_id", "job_id", "status"}
    assert body["status"] == "queued"
    job = api.wait_job(body["job_id"])
    assert job["status"] == "completed", job
    out = api.get(f"/exports/{body['export_id']}").json()
    download = api.get(f"/exports/{body['export_id']}/download")
    assert download.status_code == 200, download.text
    return out, download


def refusals(tenant_id, reason):
    return query(
        "SELECT * FROM audit_events WHERE tenant_id = :t AND outcome = 'refused' AND reason = :r",
        {"t": tenant_id, "r": reason},
        tenant_id,
    )


@pytest.fixture(scope="module")
def stocked(base):
    return stocked_tenant(base)


@pytest.mark.parametrize("report", REPORTS)
def test_export_is_a_deterministic_csv_equal_to_the_report(base, stocked, report):
    tenant_id, owner = stocked
    params = PARAMS[report]
    out, download = completed_export(owner, report, params)
    content = download.content

    assert out["status"] == "completed"
    assert out["report"] == report
    assert out["params"] == params
    assert out["sha256"] == hashlib.sha256(content).hexdigest() == download.headers["x-content-sha256"]
    assert re.fullmatch(rf"{tenant_id}_{report}_[0-9a-f]{{12}}_3\.csv", out["filename"]), out["filename"]
    assert out["filename"] in download.headers["content-disposition"]
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert b"\r" not in content
    assert content.endswith(b"\n")
    assert not content.startswith(b"\xef\xbb\xbf")

    rows = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    assert rows[0] == list(COLUMNS[report])
    items = owner.get(f"/reports/{report}", params=params).json()["items"]
    assert rows[1:] == [["" if item[c] is None else str(item[c]) for c in COLUMNS[report]] for item in items]
    assert out["row_count"] == len(items) > 0

    # Same report, same parameters (spelled differently where a spelling can differ), same ledger.
    respelled = {k: (v + "T00:00:00+00:00" if k == "as_of" else v) for k, v in params.items()}
    if "as_of" in respelled:
        respelled["as_of"] = "2024-03-01"  # a date and an instant are different parameters; keep the date
    again, again_download = completed_export(owner, report, respelled)
    assert again_download.content == content
    assert again["filename"] == out["filename"]
    assert again["export_id"] != out["export_id"]


def test_a_new_ledger_event_changes_the_file_name_not_the_parameter_hash(base):
    tenant_id, owner = stocked_tenant(base)
    first, _ = completed_export(owner, "valuation", {})
    with db.unit_of_work(tenant_id) as s:
        ledger_move(s, tenant_id, "ADJUSTMENT", lot_id="L1", quantity="-1", at="2024-03-01T00:00:00Z")
    second, download = completed_export(owner, "valuation", {})
    assert first["filename"].rsplit("_", 1)[0] == second["filename"].rsplit("_", 1)[0]
    assert (first["filename"].endswith("_3.csv"), second["filename"].endswith("_4.csv")) == (True, True)
    assert b"A,9.0000,11.11050000,1.2345" in download.content


def test_equal_timestamps_in_other_zones_are_one_parameter(base, stocked):
    _, owner = stocked
    a, _ = completed_export(owner, "stock-on-hand", {"as_of": "2024-02-01T02:00:00+02:00"})
    b, _ = completed_export(owner, "stock-on-hand", {"as_of": "2024-02-01T00:00:00Z"})
    assert a["params"] == b["params"] == {"as_of": "2024-02-01T00:00:00Z"}
    assert a["filename"] == b["filename"]
    assert a["sha256"] == b["sha256"]


def test_completion_is_audited_by_the_job_runner(base, stocked):
    tenant_id, owner = stocked
    out, _ = completed_export(owner, "receiving-summary", {})
    events = query(
        "SELECT action, outcome, details FROM audit_events WHERE job_id = :j ORDER BY id",
        {"j": out["job_id"]},
        tenant_id,
    )
    assert [(e.action, e.outcome) for e in events] == [("export.requested", "accepted"), ("job.export", "completed")]
    assert events[1].details["filename"] == out["filename"]
    assert events[1].details["sha256"] == out["sha256"]


def test_no_data_for_scope_is_refused_at_intake_and_audited(base, stocked):
    tenant_id, owner = stocked
    response = export(owner, "stock-on-hand", {"sku": "NOT-STOCKED"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["reason"]) == ("VALIDATION_FAILED", "NO_DATA")
    assert refusals(tenant_id, "NO_DATA")
    assert export(owner, "shrink-summary", {"to": "2024-01-01"}).json()["error"]["reason"] == "NO_DATA"


def test_no_data_in_the_worker_fails_the_job_with_no_data(base):
    tenant_id, owner = stocked_tenant(base)
    with db.unit_of_work(tenant_id) as s:
        # Hold the tenant's job fence: the export is accepted (stock is there) but cannot run yet ...
        s.execute(select(func.pg_advisory_xact_lock(fence_key(tenant_id))))
        accepted = export(owner, "stock-on-hand", {"sku": "A"})
        assert accepted.status_code == 202, accepted.text
        # ... and the stock is gone before it does.
        ledger_move(s, tenant_id, "ISSUE", lot_id="L1", quantity="-10", at="2024-02-20T00:00:00Z", reference="S1")
    job = owner.wait_job(accepted.json()["job_id"])
    assert job["status"] == "failed"
    assert (job["error"]["code"], job["error"]["reason"]) == ("VALIDATION_FAILED", "NO_DATA")
    out = owner.get(f"/exports/{accepted.json()['export_id']}").json()
    assert (out["status"], out["filename"], out["sha256"], out["row_count"]) == ("failed", None, None, None)
    download = owner.get(f"/exports/{out['export_id']}/download")
    assert download.status_code == 422
    assert download.json()["error"]["reason"] == "EXPORT_FAILED"
    failed = query(
        "SELECT * FROM audit_events WHERE job_id = :j AND outcome = 'failed'", {"j": out["job_id"]}, tenant_id
    )
    assert [(e.action, e.reason) for e in failed] == [("job.export", "NO_DATA")]


def test_the_plan_ceiling_counts_this_months_exports(base):
    tenant_id, owner = stocked_tenant(base, plan="free")  # 5 exports per calendar month
    for _ in range(5):
        assert export(owner, "valuation", {}).status_code == 202
    response = export(owner, "valuation", {})
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert error["code"] == "PLAN_LIMIT_EXCEEDED"
    assert [{k: d[k] for k in ("limit", "used", "max")} for d in error["details"]] == [
        {"limit": "exports_per_month", "used": 5, "max": 5}
    ]
    assert refusals(tenant_id, "EXPORTS_PER_MONTH")
    assert len(owner.get("/exports").json()["items"]) == 5


def test_concurrent_requests_cannot_both_take_the_last_export(base):
    _, owner = stocked_tenant(base, plan="free")
    for _ in range(4):
        assert export(owner, "valuation", {}).status_code == 202
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(lambda _: export(owner, "valuation", {}).status_code, range(4)))
    assert statuses == [202, 402, 402, 402]
    assert len(owner.get("/exports").json()["items"]) == 5


@pytest.mark.parametrize("role", ["viewer", "clerk"])
def test_roles_without_the_permission_are_refused_and_audited(base, stocked, role):
    tenant_id, _ = stocked
    api = key_for(base, tenant_id, role)
    response = export(api, "valuation", {})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert refusals(tenant_id, "ROLE_FORBIDDEN")
    assert api.get("/exports").status_code == 200  # reading history is a read


def test_an_operator_may_read_exports_but_not_create_them(base, stocked):
    tenant_id, _ = stocked
    op = operator(base, tenant_id)
    assert export(op, "valuation", {}).status_code == 403
    assert op.get("/exports").status_code == 200
    assert operator(base).get("/exports").status_code == 403  # no X-Tenant-ID


def test_exports_of_another_tenant_are_not_found(base, stocked):
    _, owner = stocked
    out, _ = completed_export(owner, "valuation", {})
    _, stranger = make_tenant(base, prefix="exp")
    assert stranger.get(f"/exports/{out['export_id']}").status_code == 404
    assert stranger.get(f"/exports/{out['export_id']}/download").status_code == 404
    assert all(e["export_id"] != out["export_id"] for e in stranger.get("/exports").json()["items"])
    assert owner.get("/exports/exp_nonexistent").status_code == 404


def test_the_history_lists_newest_first_with_a_cursor(base):
    _, owner = stocked_tenant(base)
    ids = [export(owner, "valuation", {}).json()["export_id"] for _ in range(3)]
    page = owner.get("/exports", params={"limit": 2}).json()
    assert [e["export_id"] for e in page["items"]] == ids[::-1][:2]
    rest = owner.get("/exports", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [e["export_id"] for e in rest["items"]] == ids[:1]
    assert set(page["items"][0]) == {
        "export_id",
        "job_id",
        "report",
        "params",
        "status",
        "filename",
        "sha256",
        "row_count",
        "created_at",
    }


def test_the_same_idempotency_key_gives_one_export(base, stocked):
    _, owner = stocked
    headers = {"Idempotency-Key": "monthly-valuation"}
    first = export(owner, "valuation", {}, headers=headers)
    second = export(owner, "valuation", {}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    other = export(owner, "valuation", {"sku": "A"}, headers=headers)
    assert other.json()["error"]["reason"] == "IDEMPOTENCY_KEY_REUSED"


def test_a_download_before_completion_is_a_conflict(base):
    tenant_id, owner = stocked_tenant(base)
    with db.unit_of_work(tenant_id) as s:
        s.execute(select(func.pg_advisory_xact_lock(fence_key(tenant_id))))
        accepted = export(owner, "valuation", {}).json()
        early = owner.get(f"/exports/{accepted['export_id']}/download")
    assert early.status_code == 409
    assert early.json()["error"]["reason"] == "EXPORT_NOT_READY"
    assert owner.wait_job(accepted["job_id"])["status"] == "completed"


@pytest.mark.parametrize(
    "body",
    [
        {"report": "everything", "params": {}},
        {"report": "valuation", "params": {"as_of": "not a date"}},
        {"report": "valuation", "params": {"from": "2024-01-01"}},
        {"report": "inventory-movement", "params": {"from": "2024-02-01", "to": "2024-01-01"}},
        {"report": "valuation", "params": {"sku": 5}},
        {"report": "valuation", "params": []},
        {"report": "valuation", "params": {}, "format": "xlsx"},
        {"params": {}},
    ],
)
def test_bad_export_requests_are_422_never_5xx(base, stocked, body):
    _, owner = stocked
    response = owner.post("/exports", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_FAILED"


def test_a_body_tenant_that_differs_from_the_key_is_403(base, stocked):
    _, owner = stocked
    response = owner.post("/exports", json={"tenant_id": "someone-else", "report": "valuation", "params": {}})
    assert response.status_code == 403


def test_export_history_is_permanent(base, service_urls, stocked):
    tenant_id, owner = stocked
    out, _ = completed_export(owner, "valuation", {})
    export_id = out["export_id"]
    for sql in (
        "DELETE FROM exports WHERE id = :id",
        "UPDATE exports SET sha256 = 'x' WHERE id = :id",
        "UPDATE exports SET status = 'queued' WHERE id = :id",
        "TRUNCATE exports",
    ):
        with (
            pytest.raises(Exception, match=r"permission denied|immutable|append-only"),
            db.unit_of_work(tenant_id) as s,
        ):
            s.execute(text(sql), {"id": export_id})
    # Not even the owner, whose privileges are not revoked: the triggers refuse.
    with owner_connection(service_urls) as conn:
        for sql in ("DELETE FROM exports WHERE id = %s", "UPDATE exports SET report = 'x' WHERE id = %s"):
            with pytest.raises(psycopg.Error, match=r"immutable|append-only"):
                conn.execute(sql, (export_id,))
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute("TRUNCATE exports")
    assert owner.get(f"/exports/{export_id}").json() == out
