"""`asora ops health`, `asora ops weekly-metrics` and `asora ledger verify`, invoked as the CLI."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from shared import db, ops
from shared.base import new_id
from shared.cli.main import app
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind, JobStatus
from shared.jobs.models import Job
from shared.runs.models import Run
from shared.stack import free_port
from tests.support import create_tenant_direct, ledger_move, ledger_receive

runner = CliRunner()


@pytest.fixture(scope="module")
def base(shared_stack):
    return shared_stack


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def checks(result):
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def add_runs(tenant_id, status, count, error=None):
    with db.unit_of_work(tenant_id) as s:
        for _ in range(count):
            accepted = jobs.accept_job(s, tenant_id=tenant_id, kind=JobKind.COGS_RUN, payload={}, actor=None)
            jobs.number_pending(s)
            job = s.get(Job, accepted.id)
            assert job is not None
            job.status = JobStatus.FAILED if status == "failed" else JobStatus.COMPLETED
            job.error = error
            s.add(Run(id=new_id("run"), job_id=job.id, tenant_id=tenant_id, status=status, error=error))


def test_health_reports_every_dependency_up_with_the_stack_running(base):
    result = invoke("ops", "health", "--json", "--api-url", base)
    body = json.loads(result.stdout)
    found = checks(result)
    for name in ("api", "database", "redis", "workers"):
        assert found[name]["status"] == "ok", found[name]
    assert found["api"]["value"]["database"] == "ok"
    assert {"runs_24h", "failed_runs_24h", "failed_runs_1h"} <= set(found)
    # Other tests share this database and may have failed runs of their own: the exit code follows the checks.
    assert result.exit_code == (0 if body["healthy"] else 1)
    assert body["healthy"] == all(c["status"] in ("ok", "warning") for c in found.values())


def test_health_is_unhealthy_and_exits_non_zero_when_the_api_is_down(service_urls):
    result = invoke("ops", "health", "--json", "--api-url", f"http://127.0.0.1:{free_port()}")
    assert result.exit_code == 1
    assert checks(result)["api"]["status"] == "down"
    assert json.loads(result.stdout)["status"] == "unhealthy"


def test_health_renders_a_table_without_json(base):
    result = invoke("ops", "health", "--api-url", base)
    assert "health check" in result.stdout
    assert "overall:" in result.stdout


def test_failed_runs_are_counted_against_the_runbook_thresholds(service_urls):
    with db.unit_of_work(db.SYSTEM_SCOPE) as s:
        before = ops.run_activity(s)
    tenant_id = create_tenant_direct("ops")
    add_runs(tenant_id, "failed", 4)
    add_runs(tenant_id, "completed", 2)
    with db.unit_of_work(db.SYSTEM_SCOPE) as s:
        after = ops.run_activity(s)
    assert after["runs_24h"] - before["runs_24h"] == 6
    assert after["failed_24h"] - before["failed_24h"] == 4
    assert after["failed_1h"] - before["failed_1h"] == 4
    assert after["failed_1h"] >= 4
    by_name = {c.name: c for c in ops.activity_checks(after)}
    assert by_name["failed_runs_1h"].status == "alert"  # more than 3 in an hour
    assert not ops.HealthReport(list(by_name.values())).healthy


def test_runs_refused_for_their_input_are_reported_apart_and_never_make_the_system_unhealthy(service_urls):
    """Bad input (VALIDATION_FAILED) is the system working; INTERNAL and ATTEMPTS_EXHAUSTED are its faults."""
    refused = {"code": "VALIDATION_FAILED", "reason": "INSUFFICIENT_STOCK", "message": "not enough stock"}
    with db.unit_of_work(db.SYSTEM_SCOPE) as s:
        before = ops.run_activity(s)
    tenant_id = create_tenant_direct("ops")
    add_runs(tenant_id, "failed", 5, refused)
    with db.unit_of_work(db.SYSTEM_SCOPE) as s:
        after = ops.run_activity(s)
    assert after["refused_24h"] - before["refused_24h"] == 5
    assert (after["failed_24h"], after["failed_1h"]) == (before["failed_24h"], before["failed_1h"])
    by_name = {c.name: c for c in ops.activity_checks(after)}
    assert by_name["refused_runs_24h"].value == after["refused_24h"]
    assert by_name["refused_runs_24h"].status == "ok"

    add_runs(tenant_id, "failed", 2, {"code": "INTERNAL", "reason": "INTERNAL", "message": "boom"})
    add_runs(tenant_id, "failed", 2, {"code": "INTERNAL", "reason": "ATTEMPTS_EXHAUSTED", "message": "x"})
    with db.unit_of_work(db.SYSTEM_SCOPE) as s:
        last = ops.run_activity(s)
    assert last["failed_1h"] - after["failed_1h"] == 4
    assert last["refused_24h"] == after["refused_24h"]
    by_name = {c.name: c for c in ops.activity_checks(last)}
    assert by_name["failed_runs_1h"].status == "alert"  # 4 internal failures in an hour: more than 3


@pytest.mark.parametrize(
    ("failed_24h", "failed_1h", "status", "healthy"),
    [(0, 0, "ok", True), (5, 3, "ok", True), (6, 0, "warning", True), (6, 4, "unhealthy", False)],
)
def test_thresholds_are_the_runbooks(failed_24h, failed_1h, status, healthy):
    report = ops.HealthReport(ops.activity_checks({"runs_24h": 10, "failed_24h": failed_24h, "failed_1h": failed_1h}))
    assert (report.status, report.healthy) == (status, healthy)


def test_weekly_metrics_count_runs_and_size_every_table(service_urls):
    tenant_id = create_tenant_direct("ops")
    add_runs(tenant_id, "rolled_back", 1)
    add_runs(tenant_id, "failed", 1)
    result = invoke("ops", "weekly-metrics", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["active_tenants_7d"] >= 1
    assert metrics["total_runs_7d"] >= 2
    assert metrics["rollbacks_7d"] >= 1
    assert metrics["failed_runs_7d"] >= 1
    sizes = {t["table"]: t for t in metrics["table_sizes"]}
    assert {"ledger_events", "lots", "exports", "runs"} <= set(sizes)
    assert sizes["ledger_events"]["bytes"] > 0
    bytes_desc = [t["bytes"] for t in metrics["table_sizes"]]
    assert bytes_desc == sorted(bytes_desc, reverse=True)
    table = invoke("ops", "weekly-metrics")
    assert "Table sizes" in table.stdout


def test_ledger_verify_finds_repairs_and_exits_accordingly(service_urls):
    tenant_id = create_tenant_direct("ops")
    with db.unit_of_work(tenant_id) as s:
        ledger_receive(s, tenant_id, lot_id="L1", sku="A", quantity="5", unit_cost="2", at="2024-01-01T00:00:00Z")
        ledger_move(s, tenant_id, "ISSUE", lot_id="L1", quantity="-2", at="2024-01-02T00:00:00Z", reference="S1")

    clean = invoke("ledger", "verify", "--tenant-id", tenant_id, "--json")
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout) | {"differences": []} == {
        "tenant_id": tenant_id,
        "ok": True,
        "chain_ok": True,
        "events": 2,
        "head_seq": 2,
        "differences": [],
        "chain_findings_omitted": 0,
    }

    with db.unit_of_work(tenant_id) as s:
        s.execute(text("UPDATE lots SET remaining_quantity = 4 WHERE lot_id = 'L1'"))
    broken = invoke("ledger", "verify", "--tenant-id", tenant_id, "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["differences"] == [
        {
            "check": "lots.remaining_quantity",
            "key": "L1",
            "expected": "3.0000",
            "actual": "4.0000",
            "repairable": True,
            "repaired": False,
        }
    ]
    table = invoke("ledger", "verify", "--tenant-id", tenant_id)
    assert table.exit_code == 1
    assert "lots.remaining_quantity" in table.stdout

    repaired = invoke("ledger", "verify", "--tenant-id", tenant_id, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "repaired" in repaired.stdout
    assert invoke("ledger", "verify", "--tenant-id", tenant_id).exit_code == 0
    with db.unit_of_work(tenant_id) as s:
        actions = s.scalars(
            text("SELECT action FROM audit_events WHERE tenant_id = :t ORDER BY id"), {"t": tenant_id}
        ).all()
    assert actions.count("ledger.repaired") == 1
    assert "ledger.verified" in actions


def test_ledger_verify_of_an_unknown_tenant_exits_2(service_urls):
    assert invoke("ledger", "verify", "--tenant-id", "no-such-tenant").exit_code == 2
