"""Journal entries for a run's cost of goods sold, and their renderings for accounting imports.

Each entry is one balanced debit/credit pair per sale date (UTC) or per sale. The amount is the
group's exact COGS rounded half-up to cents once, so debit always equals credit. Renderings are
deterministic bytes: JSON, CSV, QuickBooks Desktop IIF and Xero manual-journal CSV (zipped in
balanced files of at most 300 lines when larger).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, Literal, NamedTuple

from shared import csvsafe
from shared.decimals import AMOUNT_SCALE, format_cents, round_half_up_cents
from shared.runs.fifo import FifoResult, SalesBatch, from_datetime64

JournalFormat = Literal["json", "csv", "iif", "xero"]
GroupBy = Literal["date", "sale"]

JOURNAL_FORMATS: Final[tuple[JournalFormat, ...]] = ("json", "csv", "iif", "xero")
CSV_HEADER: Final = ("date", "account_code", "account_name", "debit", "credit", "memo", "run_id")
IIF_COLUMNS: Final = ("TRNSID", "TRNSTYPE", "DATE", "ACCNT", "CLASS", "AMOUNT", "DOCNUM", "MEMO")
IIF_TRANSACTION_TYPE: Final = "GENERAL JOURNAL"
XERO_HEADER: Final = ("*Narration", "*Date", "Description", "*AccountCode", "*TaxRate", "*Amount")
XERO_TAX_RATE: Final = "Tax Exempt"
# Xero imports at most 300 lines per file; counting the header too keeps either reading of the limit.
XERO_MAX_LINES: Final = 300
_ZIP_TIMESTAMP: Final = (1980, 1, 1, 0, 0, 0)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SaleCost:
    """One costed sale: ``cogs`` is scaled by 10**8; a naive ``sale_date`` is UTC."""

    sale_id: str
    sale_date: datetime
    cogs: int


@dataclass(frozen=True, slots=True)
class Accounts:
    cogs_code: str = "5000"
    cogs_name: str = "Cost of Goods Sold"
    inventory_code: str = "1400"
    inventory_name: str = "Inventory Asset"
    # The other side of purchase returns and landed costs (the vendor owes us / we owe the carrier). Not yet
    # a tenant setting: every tenant has the default.
    payable_code: str = "2000"
    payable_name: str = "Accounts Payable"


DEFAULT_ACCOUNTS: Final = Accounts()


@dataclass(frozen=True, slots=True)
class JournalLine:
    account_code: str
    account_name: str
    debit: int  # cents
    credit: int  # cents
    memo: str


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A balanced entry; ``narration`` identifies it (Xero groups lines by narration and date)."""

    date: date
    narration: str
    lines: tuple[JournalLine, ...]
    run_id: str

    @property
    def amount(self) -> int:
        """The entry's total debit (= total credit), in cents."""
        return sum(line.debit for line in self.lines)


class RenderedJournal(NamedTuple):
    content: bytes
    media_type: str
    filename_suffix: str


def sale_costs(sales: SalesBatch, result: FifoResult) -> list[SaleCost]:
    """The per-sale COGS of an allocation, ready for ``build_journal``."""
    return [
        SaleCost(sale_id=sale_id, sale_date=from_datetime64(micros), cogs=int(cogs))
        for sale_id, micros, cogs in zip(
            sales.sale_id,
            sales.sale_date.astype("datetime64[us]").astype("int64").tolist(),
            result.sale_cogs.tolist(),
            strict=True,
        )
    ]


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def build_journal(
    run_id: str,
    sales: Iterable[SaleCost],
    *,
    accounts: Accounts = DEFAULT_ACCOUNTS,
    reversing: bool = False,
    group_by: GroupBy = "date",
) -> list[JournalEntry]:
    """Debit COGS / credit Inventory per group (the reverse for a rolled-back run).

    Groups are UTC sale dates (``group_by="date"``) or single sales (``"sale"``), in date order. Each
    group's exact total is rounded half-up to cents once; groups that round to zero are left out.
    """
    totals: dict[tuple[date, datetime, str], int] = {}
    for sale in sales:
        when = _utc(sale.sale_date)
        key = (when.date(), when, sale.sale_id) if group_by == "sale" else (when.date(), _EPOCH, "")
        totals[key] = totals.get(key, 0) + sale.cogs

    debit_side = (accounts.cogs_code, accounts.cogs_name)
    credit_side = (accounts.inventory_code, accounts.inventory_name)
    if reversing:
        debit_side, credit_side = credit_side, debit_side
    entries: list[JournalEntry] = []
    for (day, _, sale_id), total in sorted(totals.items()):
        cents = round_half_up_cents(total, AMOUNT_SCALE)
        if cents == 0:
            continue
        debit, credit = (debit_side, credit_side) if cents > 0 else (credit_side, debit_side)
        cents = abs(cents)
        subject = f"sale {sale_id}" if group_by == "sale" else f"sales on {day.isoformat()}"
        memo = f"{'Reversal of ' if reversing else ''}COGS for {subject} (run {run_id})"
        entries.append(
            JournalEntry(
                date=day,
                narration=memo,
                lines=(
                    JournalLine(account_code=debit[0], account_name=debit[1], debit=cents, credit=0, memo=memo),
                    JournalLine(account_code=credit[0], account_name=credit[1], debit=0, credit=cents, memo=memo),
                ),
                run_id=run_id,
            )
        )
    return entries


def adjusting_entry(
    run_id: str, day: date, amount: int, subject: str, *, accounts: Accounts = DEFAULT_ACCOUNTS, reversing: bool = False
) -> JournalEntry | None:
    """A repost's change to a run's COGS (`amount` scaled 10**8; + costs more) as one balanced entry: debit COGS /
    credit Inventory for an increase, the other way for a decrease, swapped again when `reversing`. None when it
    rounds to zero cents."""
    cents = round_half_up_cents(amount, AMOUNT_SCALE) * (-1 if reversing else 1)
    if cents == 0:
        return None
    cogs, inventory = (accounts.cogs_code, accounts.cogs_name), (accounts.inventory_code, accounts.inventory_name)
    debit, credit = (cogs, inventory) if cents > 0 else (inventory, cogs)
    memo = f"{'Reversal of ' if reversing else ''}COGS adjustment by {subject} (run {run_id})"
    return JournalEntry(
        date=day,
        narration=memo,
        lines=(
            JournalLine(account_code=debit[0], account_name=debit[1], debit=abs(cents), credit=0, memo=memo),
            JournalLine(account_code=credit[0], account_name=credit[1], debit=0, credit=abs(cents), memo=memo),
        ),
        run_id=run_id,
    )


Posting = tuple[str, str, int]  # account code, account name, cents (>= 0)


def document_entry(
    document_id: str, day: date, memo: str, debits: Sequence[Posting], credits: Sequence[Posting]
) -> list[JournalEntry]:
    """One balanced entry for a document other than a run (a return, a landed cost); lines of zero cents are
    left out, and an entry of zero is no entry. `run_id` carries the document's id (the renderings' DOCNUM)."""
    if sum(p[2] for p in debits) != sum(p[2] for p in credits):
        raise ValueError("an entry must balance")
    lines = tuple(
        JournalLine(account_code=code, account_name=name, debit=cents, credit=0, memo=memo)
        for code, name, cents in debits
        if cents
    ) + tuple(
        JournalLine(account_code=code, account_name=name, debit=0, credit=cents, memo=memo)
        for code, name, cents in credits
        if cents
    )
    return [JournalEntry(date=day, narration=memo, lines=lines, run_id=document_id)] if lines else []


def render_journal(entries: Sequence[JournalEntry], fmt: JournalFormat) -> RenderedJournal:
    if fmt == "json":
        return RenderedJournal(render_json(entries), "application/json", ".json")
    if fmt == "csv":
        return RenderedJournal(render_csv(entries), "text/csv; charset=utf-8", ".csv")
    if fmt == "iif":
        return RenderedJournal(render_iif(entries), "application/x-iif", ".iif")
    if fmt == "xero":
        return render_xero(entries)
    raise ValueError(f"unknown journal format: {fmt!r}")


def render_json(entries: Sequence[JournalEntry]) -> bytes:
    document = [
        {
            "date": entry.date.isoformat(),
            "lines": [
                {
                    "account_code": line.account_code,
                    "account_name": line.account_name,
                    "debit": format_cents(line.debit),
                    "credit": format_cents(line.credit),
                    "memo": line.memo,
                }
                for line in entry.lines
            ],
            "run_id": entry.run_id,
        }
        for entry in entries
    ]
    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# Text columns (codes, names, memos, ids) get the formula rule of shared/csvsafe.py; dates and amounts don't.
CSV_TEXT_COLUMNS: Final = (1, 2, 5, 6)
XERO_TEXT_COLUMNS: Final = (0, 2, 3, 4)


def render_csv(entries: Sequence[JournalEntry]) -> bytes:
    return csvsafe.csv_bytes(
        CSV_HEADER,
        (
            (
                entry.date.isoformat(),
                line.account_code,
                line.account_name,
                format_cents(line.debit),
                format_cents(line.credit),
                line.memo,
                entry.run_id,
            )
            for entry in entries
            for line in entry.lines
        ),
        CSV_TEXT_COLUMNS,
    )


def _iif_field(text: str) -> str:
    # IIF is tab-delimited with one record per line; neither may appear inside a field.
    return " ".join(text.replace("\t", " ").splitlines())


def render_iif(entries: Sequence[JournalEntry]) -> bytes:
    """QuickBooks Desktop IIF: a TRNS row (the debit), SPL rows, ENDTRNS; amounts debit+/credit-."""
    records = [
        ["!TRNS", *IIF_COLUMNS],
        ["!SPL", *IIF_COLUMNS],
        ["!ENDTRNS"],
    ]
    for entry in entries:
        day = entry.date.strftime("%m/%d/%Y")
        for index, line in enumerate(entry.lines):
            records.append(
                [
                    "TRNS" if index == 0 else "SPL",
                    "",
                    IIF_TRANSACTION_TYPE,
                    day,
                    _iif_field(line.account_name),
                    "",
                    format_cents(line.debit - line.credit),
                    _iif_field(entry.run_id),
                    _iif_field(line.memo),
                ]
            )
        records.append(["ENDTRNS"])
    # QuickBooks Desktop is a Windows application: CR LF line endings.
    return "".join("\t".join(record) + "\r\n" for record in records).encode("utf-8")


def _xero_rows(entry: JournalEntry) -> list[tuple[str, ...]]:
    day = entry.date.strftime("%d/%m/%Y")
    return [
        (entry.narration, day, line.memo, line.account_code, XERO_TAX_RATE, format_cents(line.debit - line.credit))
        for line in entry.lines
    ]


def render_xero(entries: Sequence[JournalEntry]) -> RenderedJournal:
    """Xero manual-journal CSV; above ``XERO_MAX_LINES`` a zip of numbered, balanced CSV files."""
    capacity = XERO_MAX_LINES - 1  # the header is a line too
    files: list[list[tuple[str, ...]]] = [[]]
    for entry in entries:
        rows = _xero_rows(entry)
        if len(rows) > capacity:
            raise ValueError("a journal entry has more lines than a Xero import file can hold")
        if len(files[-1]) + len(rows) > capacity:
            files.append([])
        files[-1].extend(rows)
    if len(files) == 1:
        return RenderedJournal(
            csvsafe.csv_bytes(XERO_HEADER, files[0], XERO_TEXT_COLUMNS), "text/csv; charset=utf-8", ".csv"
        )

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number, rows in enumerate(files, start=1):
            # Fixed metadata so the same journal always zips to the same bytes.
            info = zipfile.ZipInfo(f"journal-{number:03d}.csv", date_time=_ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, csvsafe.csv_bytes(XERO_HEADER, rows, XERO_TEXT_COLUMNS))
    return RenderedJournal(buffer.getvalue(), "application/zip", ".zip")
