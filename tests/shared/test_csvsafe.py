"""Every CSV Asora writes neutralises text cells a spreadsheet would run as a formula, deterministically, and
keeps the sign of its numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from shared import csvsafe
from shared.exports.service import render_csv, text_columns
from shared.journals import entries

HOSTILE = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_formula_trigger_becomes_text(value):
    assert csvsafe.neutralise(value) == "'" + value
    assert csvsafe.neutralise(csvsafe.neutralise(value)) == "'" + value  # idempotent on its own output


@pytest.mark.parametrize("value", ["SKU-1", "a=b", "", "'quoted", "100"])
def test_ordinary_text_is_unchanged(value):
    assert csvsafe.neutralise(value) == value


def _cells(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode())))


def test_exports_neutralise_ids_and_names_but_not_numbers():
    assert text_columns("stock-on-hand") == {"sku", "item_name", "hub_id", "bin_id", "lot_id"}
    assert text_columns("valuation") == {"sku"}
    rows = [
        {"sku": "=cmd|' /C calc'!A0", "item_name": "@SUM(A1)", "hub_id": None, "bin_id": "-b1", "lot_id": "+L",
         "quantity": "-5.0000", "unit_cost": "2.0000", "value": "-10.00000000"},
    ]  # fmt: skip
    first = render_csv("stock-on-hand", rows)
    assert first == render_csv("stock-on-hand", rows)  # deterministic
    header, row = _cells(first)
    cell = dict(zip(header, row, strict=True))
    assert cell["sku"] == "'=cmd|' /C calc'!A0" and cell["item_name"] == "'@SUM(A1)"
    assert cell["bin_id"] == "'-b1" and cell["lot_id"] == "'+L" and cell["hub_id"] == ""
    assert (cell["quantity"], cell["value"]) == ("-5.0000", "-10.00000000")


def _journal() -> list[entries.JournalEntry]:
    sales = [entries.SaleCost("=S1", datetime(2024, 7, 20, tzinfo=UTC), 1_234_500_000_000)]
    return entries.build_journal("=run", sales, reversing=True, group_by="sale")


def test_journal_csv_and_xero_neutralise_memos_and_ids_and_keep_signed_amounts():
    header, *rows = _cells(entries.render_journal(_journal(), "csv").content)
    for row in rows:
        cell = dict(zip(header, row, strict=True))
        assert cell["run_id"] == "'=run" and not cell["memo"].startswith(tuple(csvsafe.TRIGGERS))
    xero = entries.render_journal(_journal(), "xero")
    header, *rows = _cells(xero.content)
    amounts = [row[header.index("*Amount")] for row in rows]
    assert any(a.startswith("-") for a in amounts), "a reversing entry credits: its amounts keep their sign"
    assert all(not row[0].startswith(tuple(csvsafe.TRIGGERS)) for row in rows)
