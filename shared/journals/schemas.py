"""A run's journal entry in its JSON format (`GET /runs/{id}/journal-entry?format=json`), as
`shared.journals.entries.render_json` writes it: amounts in cents as decimal strings."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

Cents = Annotated[str, Field(pattern=r"^-?[0-9]+\.[0-9]{2}$", examples=["1234.50"])]


class JournalLineOut(BaseModel):
    account_code: str
    account_name: str
    debit: Cents
    credit: Cents
    memo: str


class JournalEntryOut(BaseModel):
    """One balanced entry: debit COGS, credit Inventory (the reverse for a rolled-back run)."""

    date: Annotated[str, Field(json_schema_extra={"format": "date"})]
    lines: list[JournalLineOut]
    run_id: str
