"""Journal entries for a run, their four renderings, and the cent rounding they rely on."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.decimals import format_cents, format_scaled, round_half_up_cents, to_decimal
from shared.journals.entries import (
    CSV_HEADER,
    XERO_HEADER,
    XERO_MAX_LINES,
    Accounts,
    GroupBy,
    JournalEntry,
    SaleCost,
    build_journal,
    render_journal,
    sale_costs,
)
from shared.runs.fifo import Lot, LotsBatch, Sale, SalesBatch, allocate
from tests.tier import examples

RUN = "run-42"


def amount(text: str) -> int:
    return int(Decimal(text).scaleb(8))


SALES = [
    SaleCost("S1", datetime(2024, 7, 20, 10, tzinfo=UTC), amount("1.11098889")),
    # 23:30 at UTC-2 is 01:30 UTC the next day.
    SaleCost("S2", datetime(2024, 7, 20, 23, 30, tzinfo=timezone(timedelta(hours=-2))), amount("2.005")),
    SaleCost("S3", datetime(2024, 7, 20, 12), amount("1.11098889")),  # naive = UTC
    SaleCost("S4", datetime(2024, 7, 22, tzinfo=UTC), amount("0.00499999")),  # rounds to nothing
]


# ---------------------------------------------------------------------------------------------
# Fixed-point helpers


@pytest.mark.parametrize(
    ("scaled", "scale", "cents"),
    [
        (amount("1.11098889"), 8, 111),
        (amount("0.005"), 8, 1),
        (amount("0.00499999"), 8, 0),
        (amount("2.22197778"), 8, 222),
        (amount("-0.005"), 8, -1),
        (amount("-0.0049"), 8, 0),
        (12_345, 4, 123),
        (12_350, 4, 124),
        (7, 0, 700),
        (7, 2, 7),
    ],
)
def test_round_half_up_cents(scaled: int, scale: int, cents: int) -> None:
    assert round_half_up_cents(scaled, scale) == cents


def test_formatting_keeps_a_fixed_number_of_decimals() -> None:
    assert format_scaled(12_345_000, 4) == "1234.5000"
    assert format_scaled(-5, 4) == "-0.0005"
    assert format_scaled(0, 8) == "0.00000000"
    assert format_scaled(42, 0) == "42"
    assert format_cents(-1234) == "-12.34"
    assert to_decimal(111_098_889, 8) == Decimal("1.11098889")
    assert str(to_decimal(10_000, 4)) == "1.0000"


# ---------------------------------------------------------------------------------------------
# Building entries


def test_one_balanced_pair_per_utc_sale_date() -> None:
    entries = build_journal(RUN, SALES)

    assert [(e.date, e.amount) for e in entries] == [(date(2024, 7, 20), 222), (date(2024, 7, 21), 201)]
    first = entries[0]
    assert [(line.account_code, line.account_name, line.debit, line.credit) for line in first.lines] == [
        ("5000", "Cost of Goods Sold", 222, 0),
        ("1400", "Inventory Asset", 0, 222),
    ]
    assert first.narration == "COGS for sales on 2024-07-20 (run run-42)"
    assert all(line.memo == first.narration for line in first.lines)
    assert first.run_id == RUN


def test_rounding_happens_once_per_group() -> None:
    # Three sales of 0.005: rounded one by one they would make 0.03, the group's exact 0.015 is 0.02.
    sales = [SaleCost(f"S{i}", datetime(2024, 7, 20, tzinfo=UTC), amount("0.005")) for i in range(3)]

    assert [e.amount for e in build_journal(RUN, sales)] == [2]
    assert [e.amount for e in build_journal(RUN, sales, group_by="sale")] == [1, 1, 1]


def test_one_pair_per_sale() -> None:
    entries = build_journal(RUN, SALES, group_by="sale")

    assert [(e.date, e.amount, e.narration) for e in entries] == [
        (date(2024, 7, 20), 111, "COGS for sale S1 (run run-42)"),
        (date(2024, 7, 20), 111, "COGS for sale S3 (run run-42)"),
        (date(2024, 7, 21), 201, "COGS for sale S2 (run run-42)"),
    ]


def test_a_rolled_back_run_gets_the_reversing_entry() -> None:
    accounts = Accounts(cogs_code="6100", cogs_name="COGS", inventory_code="1200", inventory_name="Stock")

    entries = build_journal(RUN, SALES, accounts=accounts, reversing=True)

    assert [(line.account_code, line.account_name, line.debit, line.credit) for line in entries[0].lines] == [
        ("1200", "Stock", 222, 0),
        ("6100", "COGS", 0, 222),
    ]
    assert entries[0].narration.startswith("Reversal of COGS for sales on 2024-07-20")


def test_no_sales_no_entries() -> None:
    assert build_journal(RUN, []) == []
    assert render_journal([], "csv").content == (",".join(CSV_HEADER) + "\n").encode()
    assert render_journal([], "json").content == b"[]\n"


def test_sale_costs_come_from_an_allocation() -> None:
    day = datetime(2024, 7, 20, 9, tzinfo=UTC)
    sales = SalesBatch.from_sales([Sale("S1", "A", day, 3_333), Sale("S2", "A", day, 10_000)])
    lots = LotsBatch.from_lots([Lot("L1", "A", day, 20_000, 33_333)])
    result = allocate(sales, lots)

    costs = sale_costs(sales, result)

    assert costs == [
        SaleCost("S1", day, amount("1.11098889")),
        SaleCost("S2", day, amount("3.3333")),
    ]
    assert [e.amount for e in build_journal(RUN, costs)] == [444]


# ---------------------------------------------------------------------------------------------
# Renderings


def test_json_rendering() -> None:
    rendered = render_journal(build_journal(RUN, SALES[:1]), "json")

    assert rendered.media_type == "application/json"
    assert rendered.filename_suffix == ".json"
    assert json.loads(rendered.content) == [
        {
            "date": "2024-07-20",
            "lines": [
                {
                    "account_code": "5000",
                    "account_name": "Cost of Goods Sold",
                    "debit": "1.11",
                    "credit": "0.00",
                    "memo": "COGS for sales on 2024-07-20 (run run-42)",
                },
                {
                    "account_code": "1400",
                    "account_name": "Inventory Asset",
                    "debit": "0.00",
                    "credit": "1.11",
                    "memo": "COGS for sales on 2024-07-20 (run run-42)",
                },
            ],
            "run_id": "run-42",
        }
    ]


def test_csv_rendering() -> None:
    rendered = render_journal(build_journal(RUN, SALES), "csv")

    assert rendered.filename_suffix == ".csv"
    assert rendered.content.decode() == (
        "date,account_code,account_name,debit,credit,memo,run_id\n"
        "2024-07-20,5000,Cost of Goods Sold,2.22,0.00,COGS for sales on 2024-07-20 (run run-42),run-42\n"
        "2024-07-20,1400,Inventory Asset,0.00,2.22,COGS for sales on 2024-07-20 (run run-42),run-42\n"
        "2024-07-21,5000,Cost of Goods Sold,2.01,0.00,COGS for sales on 2024-07-21 (run run-42),run-42\n"
        "2024-07-21,1400,Inventory Asset,0.00,2.01,COGS for sales on 2024-07-21 (run run-42),run-42\n"
    )


def test_iif_rendering() -> None:
    rendered = render_journal(build_journal(RUN, SALES[:1]), "iif")

    memo = "COGS for sales on 2024-07-20 (run run-42)"
    assert rendered.filename_suffix == ".iif"
    assert rendered.content.decode().split("\r\n") == [
        "!TRNS\tTRNSID\tTRNSTYPE\tDATE\tACCNT\tCLASS\tAMOUNT\tDOCNUM\tMEMO",
        "!SPL\tTRNSID\tTRNSTYPE\tDATE\tACCNT\tCLASS\tAMOUNT\tDOCNUM\tMEMO",
        "!ENDTRNS",
        f"TRNS\t\tGENERAL JOURNAL\t07/20/2024\tCost of Goods Sold\t\t1.11\trun-42\t{memo}",
        f"SPL\t\tGENERAL JOURNAL\t07/20/2024\tInventory Asset\t\t-1.11\trun-42\t{memo}",
        "ENDTRNS",
        "",
    ]


def test_iif_fields_never_carry_tabs_or_line_breaks() -> None:
    accounts = Accounts(cogs_name="Cost\tof\ngoods")

    content = render_journal(build_journal("run\t1", SALES[:1], accounts=accounts), "iif").content.decode()

    assert all(len(line.split("\t")) == 9 for line in content.split("\r\n")[3:] if line.startswith(("TRNS", "SPL")))


def test_xero_rendering() -> None:
    rendered = render_journal(build_journal(RUN, SALES[:1]), "xero")

    memo = "COGS for sales on 2024-07-20 (run run-42)"
    assert rendered.media_type.startswith("text/csv")
    assert rendered.filename_suffix == ".csv"
    assert rendered.content.decode() == (
        "*Narration,*Date,Description,*AccountCode,*TaxRate,*Amount\n"
        f"{memo},20/07/2024,{memo},5000,Tax Exempt,1.11\n"
        f"{memo},20/07/2024,{memo},1400,Tax Exempt,-1.11\n"
    )


def test_large_xero_journals_come_as_a_deterministic_zip_of_balanced_files() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    sales = [SaleCost(f"S{i:04d}", start + timedelta(hours=i), amount("1.005") + i) for i in range(400)]
    entries = build_journal(RUN, sales, group_by="sale")

    rendered = render_journal(entries, "xero")

    assert rendered.media_type == "application/zip"
    assert rendered.filename_suffix == ".zip"
    assert rendered.content == render_journal(entries, "xero").content
    with zipfile.ZipFile(io.BytesIO(rendered.content)) as archive:
        names = archive.namelist()
        assert names == ["journal-001.csv", "journal-002.csv", "journal-003.csv"]
        total_rows = 0
        for name in names:
            text = archive.read(name).decode()
            lines = text.splitlines()
            assert len(lines) <= XERO_MAX_LINES
            assert lines[0] == ",".join(XERO_HEADER)
            assert sum(Decimal(row["*Amount"]) for row in csv.DictReader(io.StringIO(text))) == 0
            total_rows += len(lines) - 1
    assert total_rows == 2 * len(entries)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown journal format"):
        render_journal([], "pdf")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Every format balances, whatever the input


def parse_json(content: bytes) -> list[tuple[str, Decimal]]:
    entries: list[tuple[str, Decimal]] = []
    for entry in json.loads(content):
        debit = sum((Decimal(line["debit"]) for line in entry["lines"]), Decimal(0))
        assert debit == sum((Decimal(line["credit"]) for line in entry["lines"]), Decimal(0))
        entries.append((entry["date"], debit))
    return entries


def parse_csv(content: bytes) -> list[tuple[str, Decimal]]:
    groups: dict[tuple[str, str], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for row in csv.DictReader(io.StringIO(content.decode())):
        sums = groups[row["date"], row["memo"]]
        sums[0] += Decimal(row["debit"])
        sums[1] += Decimal(row["credit"])
    for debit, credit in groups.values():
        assert debit == credit
    return [(day, sums[0]) for (day, _), sums in groups.items()]


def parse_iif(content: bytes, run_id: str) -> list[tuple[str, Decimal]]:
    lines = content.decode().split("\r\n")
    assert lines[:3] == [
        "!TRNS\tTRNSID\tTRNSTYPE\tDATE\tACCNT\tCLASS\tAMOUNT\tDOCNUM\tMEMO",
        "!SPL\tTRNSID\tTRNSTYPE\tDATE\tACCNT\tCLASS\tAMOUNT\tDOCNUM\tMEMO",
        "!ENDTRNS",
    ]
    assert lines[-1] == ""
    entries: list[tuple[str, Decimal]] = []
    block: list[list[str]] = []
    for line in lines[3:-1]:
        if line == "ENDTRNS":
            assert block[0][0] == "TRNS"
            assert all(fields[0] == "SPL" for fields in block[1:])
            assert sum(Decimal(fields[6]) for fields in block) == 0
            assert {fields[2] for fields in block} == {"GENERAL JOURNAL"}
            assert {fields[7] for fields in block} == {run_id}
            assert re.fullmatch(r"\d\d/\d\d/\d{4}", block[0][3])
            entries.append((block[0][3], Decimal(block[0][6])))
            block = []
        else:
            fields = line.split("\t")
            assert len(fields) == 9
            block.append(fields)
    assert block == []
    return entries


def parse_xero(content: bytes, media_type: str) -> list[tuple[str, Decimal]]:
    if media_type == "application/zip":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            files = [archive.read(name).decode() for name in archive.namelist()]
        assert len(files) > 1
    else:
        files = [content.decode()]
    entries: list[tuple[str, Decimal]] = []
    for text in files:
        assert len(text.splitlines()) <= XERO_MAX_LINES
        groups: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        positive: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for row in csv.DictReader(io.StringIO(text)):
            assert row["*TaxRate"] == "Tax Exempt"
            value = Decimal(row["*Amount"])
            groups[row["*Narration"], row["*Date"]] += value
            positive[row["*Narration"], row["*Date"]] += max(value, Decimal(0))
        assert all(total == 0 for total in groups.values())
        entries.extend((day, positive[key]) for key in groups for day in [key[1]])
    return entries


sale_cost_lists = st.lists(
    st.builds(
        SaleCost,
        st.text(alphabet="ab1,\"'\t", min_size=1, max_size=4),
        st.datetimes(
            min_value=datetime(2020, 1, 1),
            max_value=datetime(2030, 1, 1),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))]),
        ),
        st.one_of(st.integers(0, 10**12), st.sampled_from([500_000, 499_999, 0, 1])),
    ),
    max_size=220,
)


@settings(max_examples=examples(150), deadline=None)
@given(sale_cost_lists, st.sampled_from(("date", "sale")), st.booleans(), st.text(alphabet="run-1\t", min_size=1))
def test_every_format_balances(sales: list[SaleCost], group_by: GroupBy, reversing: bool, run_id: str) -> None:
    entries: list[JournalEntry] = build_journal(run_id, sales, group_by=group_by, reversing=reversing)
    expected_total = Decimal(sum(entry.amount for entry in entries)) / 100
    assert all(sum(line.debit for line in e.lines) == sum(line.credit for line in e.lines) for e in entries)

    json_entries = parse_json(render_journal(entries, "json").content)
    csv_entries = parse_csv(render_journal(entries, "csv").content)
    iif_entries = parse_iif(render_journal(entries, "iif").content, " ".join(run_id.replace("\t", " ").splitlines()))
    xero = render_journal(entries, "xero")
    xero_entries = parse_xero(xero.content, xero.media_type)

    for parsed in (json_entries, csv_entries, iif_entries, xero_entries):
        assert sum(value for _, value in parsed) == expected_total
    assert len(json_entries) == len(iif_entries) == len(entries)
