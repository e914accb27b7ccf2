"""The one rule for CSV cells a spreadsheet could run as a formula (OWASP "CSV Injection"), used by every CSV
Asora writes: report exports and the csv and Xero journal renderings.

A text cell (an id, a name, a memo) that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is
written with a single quote (`'`) in front, so Excel, LibreOffice and Google Sheets show it as text instead
of evaluating it. The rule is deterministic (the same value always becomes the same cell, so exports stay
byte-identical), it never touches numeric columns (a credit of `-12.50` keeps its sign), and it is
reversible by removing one leading quote from a cell that starts with `'` followed by a trigger character.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def neutralise(text: str) -> str:
    return QUOTE + text if text.startswith(TRIGGERS) else text


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str]], text_columns: Iterable[int]) -> bytes:
    """UTF-8 CSV with `\\n` line ends, minimal quoting, and the rule applied to the given text columns."""
    text = frozenset(text_columns)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows([neutralise(cell) if i in text else cell for i, cell in enumerate(row)] for row in rows)
    return buffer.getvalue().encode("utf-8")
