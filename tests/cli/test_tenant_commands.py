"""The API-facing commands against the shared stack: a failed run lists its validation errors, ids print whole
in a narrow terminal, `export` end to end (to a file and to stdout), `journal-entry` to stdout, `items add`,
and `tenants verify` for a tenant whose stock arrived through a run's lots."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from importlib import resources

import pytest
from typer.testing import CliRunner

from shared.cli.main import app
from shared.config import get_settings
from tests.support import make_tenant

runner = CliRunner()
SAMPLES = resources.files("shared") / "samples"
SKUS = ("WIDGET-A", "GADGET-B", "GIZMO-C")


@pytest.fixture
def tenant(shared_stack, monkeypatch):
    """A new tenant with an owner key in ASORA_API_KEY and the shared stack's URL in ASORA_API_URL."""
    tenant_id, owner = make_tenant(shared_stack)
    monkeypatch.setenv("ASORA_API_URL", shared_stack)
    monkeypatch.setenv("ASORA_API_KEY", owner.key)
    get_settings.cache_clear()
    yield tenant_id
    get_settings.cache_clear()


def invoke(*args, env=None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def sample_run(tenant_id, *extra):
    return invoke(
        "run",
        "--tenant-id",
        tenant_id,
        "--sales-file",
        str(SAMPLES / "sales.csv"),
        "--lots-file",
        str(SAMPLES / "lots.csv"),
        "--wait",
        *extra,
    )


def test_items_add_creates_the_skus_of_a_file_once(tenant):
    first = invoke("items", "add", "--from-file", str(SAMPLES / "sales.csv"), "--category", "Finished goods")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.count("created") == len(SKUS)
    again = invoke("items", "add", *SKUS, "--category", "Finished goods")
    assert again.exit_code == 0, again.stderr
    assert again.stdout.count("exists") == len(SKUS)
    assert "category 'Finished goods' created" not in again.stderr


def test_a_failed_run_lists_its_first_validation_errors_and_how_many_more(tenant, tmp_path):
    sales = tmp_path / "sales.csv"
    rows = [f"S{n:02},NO-SUCH-SKU-{n:02},2024-08-01,1" for n in range(25)]
    sales.write_text("sale_id,sku,sale_date,quantity_sold\n" + "\n".join(rows) + "\n")
    result = invoke("run", "--tenant-id", tenant, "--sales-file", str(sales), "--wait", env={"COLUMNS": "200"})
    assert result.exit_code == 1
    run_id = result.stdout.splitlines()[0]
    assert "validation errors" in result.stdout
    shown = [line for line in result.stdout.splitlines() if "UNKNOWN_SKU" in line or "INSUFFICIENT_STOCK" in line]
    assert len(shown) == 20
    assert "UNKNOWN_SKU" in result.stdout and "NO-SUCH-SKU-00" in result.stdout
    listed = invoke("list-runs", "--tenant-id", tenant, "--json")
    total = next(r for r in json.loads(listed.stdout) if r["run_id"] == run_id)["validation_errors_count"]
    assert f"and {total - 20} more validation error(s)" in result.stderr
    assert "the run failed: VALIDATION_FAILED" in result.stderr
    assert "{'" not in result.stdout + result.stderr

    as_json = invoke("run", "--tenant-id", tenant, "--sales-file", str(sales), "--wait", "--json")
    assert as_json.exit_code == 1
    body = json.loads(as_json.stdout)
    assert body["status"] == "failed"
    assert len(body["validation_errors"]) == 20
    assert set(body["validation_errors"][0]) == {"row", "field", "reason", "message", "file"}


def test_a_header_without_required_columns_is_listed_too(tenant, tmp_path):
    sales = tmp_path / "sales.csv"
    sales.write_text("sale_id,sku\nS1,WIDGET-A\n")
    result = invoke("run", "--tenant-id", tenant, "--sales-file", str(sales), "--wait", env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "MISSING_COLUMN" in result.stdout
    assert "quantity_sold" in result.stdout and "sale_date" in result.stdout


def test_ids_print_whole_in_a_narrow_terminal(tenant):
    invoke("items", "add", *SKUS)
    assert sample_run(tenant).exit_code == 0
    narrow = invoke("list-runs", "--tenant-id", tenant, env={"COLUMNS": "40"})
    assert narrow.exit_code == 0, narrow.stderr
    runs = json.loads(invoke("list-runs", "--tenant-id", tenant, "--json").stdout)
    for r in runs:
        assert r["run_id"] in narrow.stdout
        assert r["created_at"] in narrow.stdout
    assert "…" not in narrow.stdout


def test_tenants_verify_passes_for_stock_that_arrived_through_a_run(tenant):
    invoke("items", "add", *SKUS)
    before = invoke("tenants", "verify", tenant, "--json")
    assert before.exit_code == 1
    assert json.loads(before.stdout)["checks"][2]["detail"].startswith("no stock yet")

    completed = sample_run(tenant)
    assert completed.exit_code == 0, completed.stderr
    verified = invoke("tenants", "verify", tenant, "--json")
    assert verified.exit_code == 0, verified.stdout
    body = json.loads(verified.stdout)
    assert body["ok"] is True
    arrived = next(c for c in body["checks"] if c["name"].startswith("stock arrived"))
    assert arrived["detail"].startswith("1 run(s) with lots, 5 RECEIPT event(s)")

    run_id = completed.stdout.splitlines()[0]
    assert invoke("rollback", run_id, "--confirm").exit_code == 0
    after = invoke("tenants", "verify", tenant)
    assert after.exit_code == 0, after.stdout
    assert "PASS" in after.stdout and "FAIL" not in after.stdout


def test_tenants_verify_names_the_failed_checks_on_stderr(tenant):
    result = invoke("tenants", "verify", "no-such-tenant", env={"COLUMNS": "200"})
    assert result.exit_code == 1
    assert "FAIL" in result.stdout  # the table
    assert "verification failed: 1 of 1 checks" in result.stderr
    assert "FAIL tenant exists: no tenant 'no-such-tenant'" in result.stderr


def test_export_waits_downloads_and_checks_the_file(tenant, tmp_path, shared_stack):
    invoke("items", "add", *SKUS)
    assert sample_run(tenant).exit_code == 0
    target = tmp_path / "out" / "stock.csv"
    result = invoke("export", "stock-on-hand", "--param", "as_of=2024-12-31", "--wait", "--output-file", str(target))
    assert result.exit_code == 0, result.stderr
    content = target.read_bytes()
    assert content.startswith(b"sku,item_name,hub_id,bin_id,lot_id,quantity,unit_cost,value\n")
    digest = hashlib.sha256(content).hexdigest()
    assert f"sha256 {digest}" in result.stderr
    assert "_stock-on-hand_" in result.stderr  # the export's own file name

    exports = json.loads(invoke("export", "list", "--json").stdout)
    export = next(e for e in exports if e["sha256"] == digest)
    status = json.loads(invoke("export", "status", export["export_id"], "--json").stdout)
    # Three of the five sample lots have stock left at the end of the year.
    assert (status["status"], status["params"], status["row_count"]) == ("completed", {"as_of": "2024-12-31"}, 3)

    # The same export to stdout, from a process of its own: the bytes are the file's, the messages elsewhere.
    env = {**os.environ, "ASORA_API_URL": shared_stack}
    args = ("export", "stock-on-hand", "--param", "as_of=2024-12-31", "--output-file", "-")
    piped = subprocess.run(
        [sys.executable, "-m", "shared.cli.main", *args],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == content
    assert digest.encode() in piped.stderr

    without_wait = invoke("export", "valuation")
    assert without_wait.exit_code == 0
    assert without_wait.stdout.strip().startswith("exp_")


def test_export_refusals_read_as_sentences(tenant):
    empty = invoke("export", "valuation")  # no stock at all: the API refuses (NO_DATA)
    assert empty.exit_code == 1
    assert "422 VALIDATION_FAILED" in empty.stderr
    misplaced = invoke("export", "valuation", "--param", "from=2024-01-01")
    assert misplaced.exit_code == 1
    assert "field from: valuation takes as_of" in misplaced.stderr


def test_journal_entry_to_stdout_and_its_metadata_as_json(tenant, tmp_path):
    invoke("items", "add", *SKUS)
    run_id = sample_run(tenant).stdout.splitlines()[0]
    piped = invoke("journal-entry", run_id, "--format", "iif", "--output-file", "-")
    assert piped.exit_code == 0, piped.stderr
    assert piped.stdout.startswith("!TRNS")
    written = invoke("journal-entry", run_id, "--format", "xero", "--output-file", str(tmp_path / "x.csv"), "--json")
    assert written.exit_code == 0, written.stderr
    meta = json.loads(written.stdout)
    content = (tmp_path / "x.csv").read_bytes()
    assert meta == {
        "file": str(tmp_path / "x.csv"),
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
        "filename": meta["filename"],
        "format": "xero",
        "run_id": run_id,
    }
    assert content.startswith(b"*Narration,*Date")
