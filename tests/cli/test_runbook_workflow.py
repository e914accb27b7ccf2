"""The FIFO runbook's workflow through the `asora` CLI: list, run, rollback, verify, re-run corrected."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import make_tenant, seed_items

LOTS = """lot_id,sku,received_date,original_quantity,remaining_quantity,unit_price,freight_cost_per_unit
LOT001,WIDGET-A,2024-07-01T00:00:00Z,500,500,10.00,1.00
"""
SALES_WRONG = "sale_id,sku,sale_date,quantity_sold\nSALE001,WIDGET-A,2024-07-20T10:00:00Z,400\n"
SALES_FIXED = "sale_id,sku,sale_date,quantity_sold\nSALE001,WIDGET-A,2024-07-20T10:00:00Z,100\n"


@pytest.fixture(scope="module")
def base(shared_stack):
    return shared_stack


def asora(env, *args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert result.returncode == 0, f"asora {' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result


def test_runbook_workflow(base, tmp_path, monkeypatch):
    import os

    tenant_id, owner = make_tenant(base)
    seed_items(tenant_id, ["WIDGET-A"])
    env = {**os.environ, "ASORA_API_URL": base, "ASORA_API_KEY": owner.key, "COLUMNS": "200"}
    (tmp_path / "lots.csv").write_text(LOTS)
    (tmp_path / "sales.csv").write_text(SALES_WRONG)
    (tmp_path / "sales_fixed.csv").write_text(SALES_FIXED)

    assert "runs of" in asora(env, "list-runs", "--tenant-id", tenant_id).stdout  # tables go to stdout

    dry = asora(
        env,
        "run",
        "--tenant-id",
        tenant_id,
        "--sales-file",
        str(tmp_path / "sales.csv"),
        "--lots-file",
        str(tmp_path / "lots.csv"),
        "--dry-run",
        "--wait",
    )
    assert "validated" in dry.stdout

    wrong = asora(
        env,
        "run",
        "--tenant-id",
        tenant_id,
        "--sales-file",
        str(tmp_path / "sales.csv"),
        "--lots-file",
        str(tmp_path / "lots.csv"),
        "--mode",
        "fifo",
        "--wait",
    )
    run_id = wrong.stdout.strip().splitlines()[0]
    assert "completed" in wrong.stdout and "4400.00000000" in wrong.stdout

    refused = asora(env, "rollback", run_id, check=False)
    assert refused.returncode != 0 and "--confirm" in refused.stderr
    asora(env, "rollback", run_id, "--confirm")

    listed = asora(env, "list-runs", "--tenant-id", tenant_id, "--limit", "5", "--json")
    statuses = {r["run_id"]: r["status"] for r in __import__("json").loads(listed.stdout)}
    assert statuses[run_id] == "rolled_back"

    fixed = asora(
        env,
        "run",
        "--tenant-id",
        tenant_id,
        "--sales-file",
        str(tmp_path / "sales_fixed.csv"),
        "--lots-file",
        str(tmp_path / "lots.csv"),
        "--wait",
    )
    fixed_id = fixed.stdout.strip().splitlines()[0]
    assert "1100.00000000" in fixed.stdout

    out = tmp_path / "journal.iif"
    asora(env, "journal-entry", fixed_id, "--format", "iif", "--output-file", str(out))
    assert out.read_text().startswith("!TRNS")

    other_tenant = asora(env, "list-runs", "--tenant-id", "someone-else", check=False)
    assert other_tenant.returncode != 0
