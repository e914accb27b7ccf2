"""The costing methods through the `asora` CLI: `run --mode` (a multipart upload), `valuation set-default`,
`valuation show` and the audited `valuation switch`, refused while it would revalue stock on hand unless
`--revalue` asks for the revaluation."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest

from tests.cli.test_runbook_workflow import asora
from tests.support import make_tenant, query, seed_items

LOTS = """lot_id,sku,received_date,original_quantity,remaining_quantity,unit_price,freight_cost_per_unit
L1,A,2024-05-01T00:00:00Z,10,10,10.00,0
L2,A,2024-05-02T00:00:00Z,10,10,20.00,0
"""
SALES = "sale_id,sku,sale_date,quantity_sold\nS1,A,2024-05-03T00:00:00Z,15\n"
MORE = "sale_id,sku,sale_date,quantity_sold\nS2,A,2024-05-04T00:00:00Z,1\n"


@pytest.fixture(scope="module")
def base(shared_stack):
    return shared_stack


def test_methods_through_the_cli(base, tmp_path):
    tenant_id, owner = make_tenant(base, prefix="mcli")
    seed_items(tenant_id, ["A", "B"])
    env = {**os.environ, "ASORA_API_URL": base, "ASORA_API_KEY": owner.key, "COLUMNS": "200"}
    (tmp_path / "lots.csv").write_text(LOTS)
    (tmp_path / "sales.csv").write_text(SALES)
    (tmp_path / "more.csv").write_text(MORE)

    costed = asora(
        env, "run", "--tenant-id", tenant_id, "--sales-file", str(tmp_path / "sales.csv"),
        "--lots-file", str(tmp_path / "lots.csv"), "--mode", "moving_average", "--wait", "--json",
    )  # fmt: skip
    outcome = json.loads(costed.stdout)
    assert (outcome["status"], outcome["mode"], outcome["total_cogs"]) == (
        "completed",
        "moving_average",
        "225.00000000",
    )

    asora(env, "valuation", "set-default", "lifo")
    shown = json.loads(asora(env, "valuation", "show", "--json").stdout)
    assert shown["default_method"] == "lifo"
    assert [(s["sku"], s["method"]) for s in shown["skus"]] == [("A", "moving_average")]

    # The default (LIFO) is not A's method: the run fails, naming A and its method.
    refused = asora(
        env, "run", "--tenant-id", tenant_id, "--sales-file", str(tmp_path / "more.csv"), "--wait", check=False
    )
    assert refused.returncode == 1
    assert "VALUATION_METHOD_MISMATCH" in refused.stdout + refused.stderr
    assert "moving_average" in refused.stdout + refused.stderr

    blocked = asora(env, "valuation", "switch", "A", "fifo", check=False)
    assert blocked.returncode != 0 and "REVALUATION_REQUIRED" in blocked.stderr
    assert "--revalue" in blocked.stderr
    assert "not costed -> fifo" in asora(env, "valuation", "switch", "B", "fifo").stderr  # messages go to stderr
    assert asora(env, "valuation", "switch", "A", "sideways", check=False).returncode == 2
    actions = query("SELECT action FROM audit_events ORDER BY id", tenant_id=tenant_id)
    assert [a for (a,) in actions if "valuation" in a] == [
        "tenant.valuation_method_changed",
        "sku.valuation_method_switched",
    ]

    # With --revalue: 5 left worth 75 in the pool, 100 at L2's own cost; the job posts +25 and switches A.
    revalued = asora(env, "valuation", "switch", "A", "fifo", "--revalue")
    assert "carried value -25.00000000" in revalued.stderr and "moving_average -> fifo" in revalued.stderr
    assert query("SELECT lot_id, amount FROM ledger_events WHERE event_type = 'REVALUATION'", tenant_id=tenant_id) == [
        ("L2", Decimal(25))
    ]
    shown = json.loads(asora(env, "valuation", "show", "--json").stdout)
    assert [(s["sku"], s["method"]) for s in shown["skus"]] == [("A", "fifo"), ("B", "fifo")]
