"""Parsing sales and lots from CSV streams and JSON records, and the fixed-point number parser."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.decimals import MAX_SCALED, parse_scaled
from shared.runs import columns
from shared.runs.csvio import (
    CHUNK_ROWS,
    LOTS_COLUMNS,
    MAX_ERRORS,
    SALES_COLUMNS,
    ParsedLots,
    ParsedSales,
    lots_from_records,
    parse_lots_csv,
    parse_sales_csv,
    parse_timestamp,
    sales_from_records,
    template_csv,
)
from shared.runs.fifo import RowError, from_datetime64
from tests.tier import examples

SALES_HEADER = ",".join(SALES_COLUMNS)
LOTS_HEADER = ",".join(LOTS_COLUMNS)


def sales_csv(text: str | bytes) -> ParsedSales:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_sales_csv(io.BytesIO(data))


def lots_csv(text: str | bytes) -> ParsedLots:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return parse_lots_csv(io.BytesIO(data))


def problems(errors: list[RowError]) -> list[tuple[int, str, str]]:
    return [(e.row, e.field, e.reason) for e in errors]


def dates(parsed: ParsedSales) -> list[datetime]:
    return [from_datetime64(value) for value in parsed.batch.sale_date]


# ---------------------------------------------------------------------------------------------
# Fixed-point numbers


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("10", 4, 100_000),
        ("10.5", 4, 105_000),
        ("-3", 4, -30_000),
        ("+3.25", 4, 32_500),
        ("  7 ", 4, 70_000),
        (".5", 4, 5_000),
        ("10.", 4, 100_000),
        ("0.0001", 4, 1),
        ("1.23450000", 4, 12_345),
        ("007", 2, 700),
        ("1.11098889", 8, 111_098_889),
    ],
)
def test_parse_scaled_accepts_plain_decimals(text: str, scale: int, expected: int) -> None:
    assert parse_scaled(text, scale) == expected


@pytest.mark.parametrize(
    "text", ["", " ", ".", "-", "1e2", "1E2", "1,000", "1_000", "nan", "inf", "1.23456", "--1", "1.2.3", "١٢", "²"]
)
def test_parse_scaled_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_scaled(text, 4)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.text(alphabet="0123456789.+-e ,x", max_size=12), max_size=20))
def test_bulk_number_parsing_agrees_with_parse_scaled(values: list[str]) -> None:
    stripped = [value.strip() for value in values]
    parsed, ok = columns.parse_decimals(stripped, 4)
    for text, value, good in zip(stripped, parsed.tolist(), ok.tolist(), strict=True):
        try:
            expected: int | None = parse_scaled(text, 4)
        except ValueError:
            expected = None
        if expected is not None and abs(expected) > MAX_SCALED:
            expected = None
        assert (value if good else None) == expected, text


def test_numbers_beyond_the_storable_range_are_bad() -> None:
    parsed, ok = columns.parse_decimals(["100000000000000", "99999999999999.9999", "-100000000000000.0001"], 4)
    assert ok.tolist() == [True, True, False]
    assert parsed.tolist() == [MAX_SCALED, MAX_SCALED - 1, 0]


@settings(max_examples=examples(200), deadline=None)
@given(st.integers(-(10**13), 10**13), st.integers(0, 4))
def test_bulk_number_parsing_round_trips_integers(value: int, places: int) -> None:
    text = str(abs(value)).rjust(places + 1, "0")
    text = ("-" if value < 0 else "") + (
        text[: len(text) - places] + "." + text[len(text) - places :] if places else text
    )
    parsed, ok = columns.parse_decimals([text], 4)
    assert ok.tolist() == [True]
    assert parsed.tolist() == [value * 10 ** (4 - places)]


# ---------------------------------------------------------------------------------------------
# Dates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-07-20", datetime(2024, 7, 20, tzinfo=UTC)),
        ("2024-07-20T10:00:00Z", datetime(2024, 7, 20, 10, tzinfo=UTC)),
        ("2024-07-20T10:00:00", datetime(2024, 7, 20, 10, tzinfo=UTC)),
        ("2024-07-20 10:00:00+02:00", datetime(2024, 7, 20, 8, tzinfo=UTC)),
        ("2024-07-20T10:00:00-05:30", datetime(2024, 7, 20, 15, 30, tzinfo=UTC)),
        ("2024-07-20T10:00:00.5Z", datetime(2024, 7, 20, 10, 0, 0, 500_000, tzinfo=UTC)),
        ("2024-07-20T10:00:00.123456+01:00", datetime(2024, 7, 20, 9, 0, 0, 123_456, tzinfo=UTC)),
        ("2024-07-20 23:59:59.000001", datetime(2024, 7, 20, 23, 59, 59, 1, tzinfo=UTC)),
        ("2024-07-20T10:00", datetime(2024, 7, 20, 10, tzinfo=UTC)),
        ("2024-07-20T10:00:00+0200", datetime(2024, 7, 20, 8, tzinfo=UTC)),
        ("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC)),
        # Seven fraction digits (.NET's round-trip format): below a microsecond is dropped.
        ("2024-07-20T10:00:00.1234567Z", datetime(2024, 7, 20, 10, 0, 0, 123_456, tzinfo=UTC)),
        ("2024-07-21T00:30:00+01:00", datetime(2024, 7, 20, 23, 30, tzinfo=UTC)),
    ],
)
def test_iso_dates_in_every_common_form(text: str, expected: datetime) -> None:
    assert parse_timestamp(text) == expected
    parsed = sales_csv(f"{SALES_HEADER}\nS1,A,{text},1\n")
    assert parsed.errors == []
    assert dates(parsed) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-29",
        "2024-13-01",
        "2024-00-10",
        "2024-07-32",
        "07/20/2024",
        "20/07/2024",
        "2024-07-20T24:00:00",
        "2024-07-20T10:60:00",
        "2024-07-20T10:00:00+25:00",
        "yesterday",
        "0000-01-01",
        "2024-07-20Z",
    ],
)
def test_malformed_dates_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)
    parsed = sales_csv(f"{SALES_HEADER}\nS1,A,{text},1\n")
    assert problems(parsed.errors) == [(1, "sale_date", "BAD_DATE")]


@settings(max_examples=examples(300), deadline=None)
@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.sampled_from([None, 0, 60, -330, 14 * 60 - 1, -(14 * 60 - 1)]),
    st.sampled_from(["T", " "]),
    st.booleans(),
)
def test_bulk_date_parsing_agrees_with_fromisoformat(
    moment: datetime, offset: int | None, separator: str, seconds_only: bool
) -> None:
    if seconds_only:
        moment = moment.replace(microsecond=0)
    if offset is not None:
        moment = moment.replace(tzinfo=timezone(timedelta(minutes=offset)))
    text = moment.isoformat(sep=separator)
    expected = moment.replace(tzinfo=moment.tzinfo or UTC).astimezone(UTC)
    micros, ok = columns.parse_dates([text, text.replace("+00:00", "Z"), text[:10]])
    assert ok.all()
    assert [from_datetime64(m) for m in micros.tolist()[:2]] == [expected, expected]


# ---------------------------------------------------------------------------------------------
# CSV structure


def test_template_is_the_header_row() -> None:
    assert template_csv("sales") == "sale_id,sku,sale_date,quantity_sold\n"
    assert template_csv("lots") == (
        "lot_id,sku,received_date,original_quantity,remaining_quantity,unit_price,freight_cost_per_unit\n"
    )


def test_a_plain_file() -> None:
    parsed = sales_csv(f"{SALES_HEADER}\nS1,A,2024-07-20,10\nS2,B,2024-07-21T10:00:00Z,2.5\n")

    assert parsed.errors == []
    assert parsed.row_count == 2
    assert parsed.batch.row.tolist() == [1, 2]
    assert parsed.batch.sale_id == ["S1", "S2"]
    assert parsed.batch.sku == ["A", "B"]
    assert parsed.batch.quantity.tolist() == [100_000, 25_000]
    assert parsed.batch.sale_date.dtype == np.dtype("datetime64[us]")
    assert dates(parsed) == [datetime(2024, 7, 20, tzinfo=UTC), datetime(2024, 7, 21, 10, tzinfo=UTC)]
    assert parsed.tenant_ids == set()


def test_bom_crlf_quotes_extra_columns_and_column_order() -> None:
    text = (
        "\ufeffQuantity_Sold , note,sku,sale_date,sale_id\r\n"
        '3,"a, b",A,2024-07-20,S1\r\n'
        '4,"multi\r\nline ""quoted""","B,1",2024-07-21,"S2"\r\n'
        "5,,C,2024-07-22,S3\r\n"
    )

    parsed = sales_csv(text)

    assert parsed.errors == []
    assert parsed.batch.sale_id == ["S1", "S2", "S3"]
    assert parsed.batch.sku == ["A", "B,1", "C"]
    assert parsed.batch.quantity.tolist() == [30_000, 40_000, 50_000]
    assert parsed.batch.row.tolist() == [1, 2, 3]


def test_values_are_stripped_and_blank_lines_skipped_but_counted() -> None:
    text = f"{SALES_HEADER}\n S1 , A ,2024-07-20 , 1 \n\n,,,\n  \nS2,A,2024-07-20,2"

    parsed = sales_csv(text)

    assert parsed.errors == []
    assert parsed.batch.sale_id == ["S1", "S2"]
    assert parsed.batch.sku == ["A", "A"]
    assert parsed.batch.row.tolist() == [1, 5]
    assert parsed.row_count == 2


def test_a_row_of_empty_fields_is_blank() -> None:
    parsed = sales_csv(f"{SALES_HEADER}\nS1,A,2024-07-20,1\n , ,,\nS2,A,2024-07-20,2\n")

    assert parsed.errors == []
    assert parsed.batch.row.tolist() == [1, 3]


def test_classic_mac_line_endings() -> None:
    parsed = sales_csv(f"{SALES_HEADER}\rS1,A,2024-07-20,1\rS2,A,2024-07-20,2\r")

    assert parsed.errors == []
    assert parsed.batch.sale_id == ["S1", "S2"]


def test_the_callers_stream_stays_open() -> None:
    stream = io.BytesIO(f"{SALES_HEADER}\nS1,A,2024-07-20,1\n".encode())

    parse_sales_csv(stream)

    assert not stream.closed


def test_tenant_ids_are_collected() -> None:
    parsed = sales_csv("sale_id,sku,sale_date,quantity_sold,tenant_id\nS1,A,2024-07-20,1,acme\nS2,A,2024-07-20,1,\n")

    assert parsed.errors == []
    assert parsed.tenant_ids == {"acme"}


def test_large_files_span_chunks_and_mix_plain_and_quoted_text() -> None:
    lines = [f"S{i},SKU-{i % 7},2024-07-{1 + i % 28:02d}T10:00:00Z,{1 + i % 5}" for i in range(CHUNK_ROWS + 5_000)]
    lines[40_000] = 'S40000,"SKU,quoted",2024-07-01,1'
    lines[CHUNK_ROWS + 10] = "S10,A,2024-07-01,1"  # repeats the id of row 11
    lines[CHUNK_ROWS + 20] = "S-bad,A,2024-07-01,0"

    parsed = sales_csv(SALES_HEADER + "\n" + "\n".join(lines) + "\n")

    assert problems(parsed.errors) == [
        (CHUNK_ROWS + 11, "sale_id", "DUPLICATE_ID"),
        (CHUNK_ROWS + 21, "quantity_sold", "NON_POSITIVE_QUANTITY"),
    ]
    assert "already appears on row 11" in parsed.errors[0].message
    assert len(parsed.batch) == len(lines) - 2
    assert parsed.batch.sku[40_000] == "SKU,quoted"
    assert parsed.batch.row.tolist()[:3] == [1, 2, 3]
    assert parsed.batch.row.tolist()[-1] == len(lines)


# ---------------------------------------------------------------------------------------------
# Every error reason, on the right row


def test_missing_columns_are_reported_on_row_zero() -> None:
    parsed = sales_csv("sale_id,sku,when\nS1,A,2024-07-20\n")

    assert problems(parsed.errors) == [(0, "sale_date", "MISSING_COLUMN"), (0, "quantity_sold", "MISSING_COLUMN")]
    assert len(parsed.batch) == 0


def test_missing_values() -> None:
    parsed = sales_csv(f"{SALES_HEADER}\nS1,,2024-07-20,1\n,A,,\nS3,A,2024-07-20\n")

    assert problems(parsed.errors) == [
        (1, "sku", "MISSING_VALUE"),
        (2, "sale_id", "MISSING_VALUE"),
        (2, "sale_date", "MISSING_VALUE"),
        (2, "quantity_sold", "MISSING_VALUE"),
        (3, "quantity_sold", "MISSING_VALUE"),
    ]
    assert len(parsed.batch) == 0


@pytest.mark.parametrize(
    ("line", "field"),
    [(",A,2024-07-20,1", "sale_id"), ("S1,,2024-07-20,1", "sku"), ("S1,A,2024-07-20,", "quantity_sold")],
)
def test_missing_values_in_an_otherwise_regular_file(line: str, field: str) -> None:
    parsed = sales_csv(f"{SALES_HEADER}\n{line}\nS2,A,2024-07-20,1")

    assert problems(parsed.errors) == [(1, field, "MISSING_VALUE")]


def test_bad_numbers_dates_and_quantities() -> None:
    parsed = sales_csv(
        f"{SALES_HEADER}\n"
        "S1,A,2024-07-20,1e2\n"
        'S2,A,2024-07-20,"1,000"\n'
        "S3,A,2024-07-20,1.23456\n"
        "S4,A,20/07/2024,1\n"
        "S5,A,2024-07-20,0\n"
        "S6,A,2024-07-20,-2\n"
        "S7,A,2024-07-20,1.5\n"
    )

    assert problems(parsed.errors) == [
        (1, "quantity_sold", "BAD_NUMBER"),
        (2, "quantity_sold", "BAD_NUMBER"),
        (3, "quantity_sold", "BAD_NUMBER"),
        (4, "sale_date", "BAD_DATE"),
        (5, "quantity_sold", "NON_POSITIVE_QUANTITY"),
        (6, "quantity_sold", "NON_POSITIVE_QUANTITY"),
    ]
    assert parsed.batch.sale_id == ["S7"]
    assert all(e.file == "sales" for e in parsed.errors)


def test_duplicate_ids_report_the_later_row() -> None:
    parsed = sales_csv(f"{SALES_HEADER}\nS1,A,2024-07-20,1\nS2,A,2024-07-20,1\nS1,B,2024-07-21,2\n")

    assert problems(parsed.errors) == [(3, "sale_id", "DUPLICATE_ID")]
    assert "row 1" in parsed.errors[0].message
    assert parsed.batch.sale_id == ["S1", "S2"]


def test_lot_errors() -> None:
    parsed = lots_csv(
        f"{LOTS_HEADER}\n"
        "L1,A,2024-07-01,0,0,1,0\n"
        "L2,A,2024-07-01,5,-1,1,0\n"
        "L3,A,2024-07-01,5,6,1,0\n"
        "L4,A,2024-07-01,5,5,-1,0\n"
        "L5,A,2024-07-01,5,5,1,-0.5\n"
        "L6,A,2024-07-01,5,5,,0\n"
        "L1,A,2024-07-01,5,5,1,0\n"
        "L8,A,2024-07-01,5,5,1.00001,0\n"
        "L9,A,2024-07-01,5,4,2.5,0.25\n"
    )

    assert problems(parsed.errors) == [
        (1, "original_quantity", "NON_POSITIVE_QUANTITY"),
        (2, "remaining_quantity", "NON_POSITIVE_QUANTITY"),
        (3, "remaining_quantity", "REMAINING_EXCEEDS_ORIGINAL"),
        (4, "unit_price", "NEGATIVE_COST"),
        (5, "freight_cost_per_unit", "NEGATIVE_COST"),
        (6, "unit_price", "MISSING_VALUE"),
        (7, "lot_id", "DUPLICATE_ID"),
        (8, "unit_price", "BAD_NUMBER"),
    ]
    assert all(e.file == "lots" for e in parsed.errors)
    assert parsed.batch.lot_id == ["L9"]
    assert parsed.batch.row.tolist() == [9]
    assert parsed.batch.quantity.tolist() == [40_000]
    assert parsed.batch.unit_cost.tolist() == [27_500]
    assert parsed.original_quantity.tolist() == [50_000]
    assert parsed.unit_price.tolist() == [25_000]
    assert parsed.freight.tolist() == [2_500]


def test_freight_may_be_empty_or_absent() -> None:
    with_column = lots_csv(f"{LOTS_HEADER}\nL1,A,2024-07-01,5,5,2,\n")
    without = lots_csv(
        "lot_id,sku,received_date,original_quantity,remaining_quantity,unit_price\nL1,A,2024-07-01,5,5,2\n"
    )

    for parsed in (with_column, without):
        assert parsed.errors == []
        assert parsed.freight.tolist() == [0]
        assert parsed.batch.unit_cost.tolist() == [20_000]


def test_short_rows_miss_values() -> None:
    parsed = lots_csv(f"{LOTS_HEADER}\nL1,A,2024-07-01,5\n")

    assert problems(parsed.errors) == [
        (1, "remaining_quantity", "MISSING_VALUE"),
        (1, "unit_price", "MISSING_VALUE"),
    ]


@pytest.mark.parametrize(
    ("data", "row"),
    [
        (b"", 0),
        (b"\n\n", 0),
        (SALES_HEADER.encode() + b"\nS1,A,2024-07-20,1\nS2,\xff\xfe,2024-07-20,1\n", 2),
        (b'sale_id,sku,sale_date,quantity_sold\nS1,A,2024-07-20,1\nS2,"A,2024-07-20,1\n', 2),
        (b'sale_id,sku,sale_date,quantity_sold\nS1,"A"x,2024-07-20,1\n', 1),
        (b"\xff\xfe" + SALES_HEADER.encode(), 0),
    ],
)
def test_unreadable_files_are_bad_csv(data: bytes, row: int) -> None:
    parsed = sales_csv(data)

    assert [(e.row, e.reason) for e in parsed.errors][-1:] == [(row, "BAD_CSV")]


def test_invalid_utf8_is_located_by_row() -> None:
    data = (SALES_HEADER + "\nS1,Å,2024-07-20,1\nS2,A,2024-07-20,1\nS3,").encode() + b"\xe9" + b",2024-07-20,1\n"

    parsed = sales_csv(data)

    assert problems(parsed.errors) == [(3, "", "BAD_CSV")]
    assert "not valid UTF-8" in parsed.errors[0].message
    assert parsed.batch.sku == ["Å", "A"]


def test_errors_are_capped_and_the_last_one_says_so() -> None:
    lines = "\n".join(f"S{i},A,2024-07-20,0" for i in range(MAX_ERRORS + 500))

    parsed = sales_csv(f"{SALES_HEADER}\n{lines}\n")

    assert len(parsed.errors) == MAX_ERRORS
    assert parsed.errors[0].row == 1
    assert parsed.errors[-1].row == MAX_ERRORS
    assert "500 further errors" in parsed.errors[-1].message


# ---------------------------------------------------------------------------------------------
# JSON records


RUNBOOK_LOT: dict[str, object] = {
    "lot_id": "LOT001",
    "sku": "WIDGET-A",
    "received_date": "2024-07-01T00:00:00Z",
    "original_quantity": 500,
    "remaining_quantity": 500,
    "unit_price": 10.00,
    "freight_cost_per_unit": 1.00,
    "tenant_id": "acme-corp",
}


def test_the_runbook_request_body() -> None:
    sales = sales_from_records(
        [
            {
                "sale_id": "SALE001",
                "sku": "WIDGET-A",
                "sale_date": "2024-07-20T10:00:00Z",
                "quantity_sold": 100,
                "tenant_id": "acme-corp",
            }
        ]
    )
    lots = lots_from_records([RUNBOOK_LOT])

    assert sales.errors == []
    assert lots.errors == []
    assert sales.tenant_ids == lots.tenant_ids == {"acme-corp"}
    assert sales.batch.quantity.tolist() == [1_000_000]
    assert lots.batch.unit_cost.tolist() == [110_000]


def test_json_numbers_stay_exact() -> None:
    parsed = sales_from_records(
        [
            {"sale_id": "S1", "sku": "A", "sale_date": "2024-07-20", "quantity_sold": 10.1},
            {"sale_id": "S2", "sku": "A", "sale_date": "2024-07-20", "quantity_sold": "0.3333"},
            {"sale_id": 3, "sku": "A", "sale_date": "2024-07-20", "quantity_sold": Decimal("2.50")},
            {"sale_id": "S4", "sku": "A", "sale_date": datetime(2024, 7, 20, tzinfo=UTC), "quantity_sold": 1},
        ]
    )

    assert parsed.errors == []
    assert parsed.batch.sale_id == ["S1", "S2", "3", "S4"]
    assert parsed.batch.quantity.tolist() == [101_000, 3_333, 25_000, 10_000]


def test_json_values_of_the_wrong_type() -> None:
    parsed = sales_from_records(
        [
            {"sale_id": True, "sku": ["A"], "sale_date": 20240720, "quantity_sold": True},
            {"sale_id": "S2", "sku": "A", "sale_date": "2024-07-20", "quantity_sold": 1e-05},
            {"sale_id": "S3", "sku": "A", "sale_date": "2024-07-20", "quantity_sold": float("nan")},
            {"sale_id": "S4", "sku": None, "sale_date": "2024-07-20"},
            "not an object",
        ]
    )

    assert problems(parsed.errors) == [
        (1, "sale_id", "MISSING_VALUE"),
        (1, "sku", "MISSING_VALUE"),
        (1, "sale_date", "BAD_DATE"),
        (1, "quantity_sold", "BAD_NUMBER"),
        (2, "quantity_sold", "BAD_NUMBER"),
        (3, "quantity_sold", "BAD_NUMBER"),
        (4, "sku", "MISSING_VALUE"),
        (4, "quantity_sold", "MISSING_VALUE"),
        (5, "sale_id", "MISSING_VALUE"),
        (5, "sku", "MISSING_VALUE"),
        (5, "sale_date", "MISSING_VALUE"),
        (5, "quantity_sold", "MISSING_VALUE"),
    ]
    assert "must be a string" in parsed.errors[0].message
    assert "wrong type" in parsed.errors[2].message


def test_csv_and_json_give_the_same_result() -> None:
    records: list[dict[str, str]] = [
        {"sale_id": "S1", "sku": "A", "sale_date": "2024-07-20", "quantity_sold": "1.5"},
        {"sale_id": "S2", "sku": "", "sale_date": "2024-07-20T10:00:00+02:00", "quantity_sold": "2"},
        {"sale_id": "S1", "sku": "B", "sale_date": "bad", "quantity_sold": "0"},
        {"sale_id": "S4", "sku": "B", "sale_date": "2024-07-21 08:00:00", "quantity_sold": "3"},
    ]
    text = SALES_HEADER + "\n" + "\n".join(",".join(r[c] for c in SALES_COLUMNS) for r in records) + "\n"

    from_csv = sales_csv(text)
    from_json = sales_from_records(list(records))

    assert from_csv.errors == from_json.errors
    assert from_csv.batch.sale_id == from_json.batch.sale_id == ["S1", "S4"]
    assert from_csv.batch.row.tolist() == from_json.batch.row.tolist() == [1, 4]
    assert from_csv.batch.sale_date.tolist() == from_json.batch.sale_date.tolist()
    assert from_csv.batch.quantity.tolist() == from_json.batch.quantity.tolist()


def test_lots_from_records_match_lots_from_csv() -> None:
    from_json = lots_from_records([RUNBOOK_LOT, {**RUNBOOK_LOT, "lot_id": "LOT002", "freight_cost_per_unit": None}])
    from_csv = lots_csv(
        LOTS_HEADER + "\nLOT001,WIDGET-A,2024-07-01T00:00:00Z,500,500,10.00,1.00\n"
        "LOT002,WIDGET-A,2024-07-01T00:00:00Z,500,500,10.00,\n"
    )

    assert from_json.errors == from_csv.errors == []
    for name in ("original_quantity", "unit_price", "freight"):
        assert getattr(from_json, name).tolist() == getattr(from_csv, name).tolist()
    assert from_json.batch.unit_cost.tolist() == from_csv.batch.unit_cost.tolist() == [110_000, 100_000]


def test_nul_characters_are_rejected_not_passed_to_the_database() -> None:
    parsed = parse_sales_csv(
        io.BytesIO(b"sale_id,sku,sale_date,quantity_sold\nS1,A\x00B,2024-01-01,1\nS2,A,2024-01-01,1\n")
    )
    assert [(e.row, e.field, e.reason) for e in parsed.errors] == [(1, "sku", "BAD_CSV")]
    assert parsed.batch.sale_id == ["S2"]


def test_text_longer_than_its_column_is_a_row_error_not_a_failed_write() -> None:
    fits, too_long = "S" * 200, "S" * 201
    parsed = sales_csv(f"sale_id,sku,sale_date,quantity_sold\n{fits},A,2024-01-01,1\n{too_long},A,2024-01-01,1\n"
                       f"S3,{'K' * 101},2024-01-01,1\n")  # fmt: skip
    assert [(e.row, e.field, e.reason) for e in parsed.errors] == [(2, "sale_id", "TOO_LONG"), (3, "sku", "TOO_LONG")]
    assert "201 characters" in parsed.errors[0].message
    assert len(parsed.batch) == 1
    lots = lots_from_records([
        {"lot_id": "L" * 201, "sku": "A", "received_date": "2024-01-01", "original_quantity": 1,
         "remaining_quantity": 1, "unit_price": 1},
    ])  # fmt: skip
    assert [(e.row, e.field, e.reason) for e in lots.errors] == [(1, "lot_id", "TOO_LONG")]
