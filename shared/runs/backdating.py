"""The costing boundary for stock: a receipt, a count's gain, a run's lot or a sale return's lot dated before an
already-costed sale of its SKU is *backdated*. The boundary is the one BACKDATED_SALE uses (`costed_skus`: each
SKU's latest costed sale date among live runs); "before" is strictly earlier, so the same instant is allowed, as
for sales.

What a backdated entry does is the tenant's `backdated_entries` setting:
- `reject` (the default): 422 BACKDATED_RECEIPT naming the SKU and its latest costed sale date, nothing written;
- `repost`: the entry is accepted and a `repost` job is queued behind it in the tenant's ledger stream for the
  SKUs concerned (`shared/runs/repost.py` re-costs their sales). Backdated sales are accepted in this mode too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.errors import BACKDATED_RECEIPT, BackdatedReceipt
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind
from shared.jobs.service import AcceptedJob
from shared.tenants.models import Tenant

Mode = Literal["reject", "repost"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One dated line of stock coming in: its row (1-based, in its request or file), SKU and business time."""

    row: int
    sku: str
    at: datetime


def mode(session: Session, tenant_id: str) -> Mode:
    tenant = session.get(Tenant, tenant_id)
    return "repost" if tenant is not None and tenant.backdated_entries == "repost" else "reject"


def boundary(session: Session, tenant_id: str, skus: Iterable[str]) -> dict[str, datetime]:
    """Each SKU's latest costed sale date (SKUs never costed are absent)."""
    wanted = sorted(set(skus))
    if not wanted:
        return {}
    rows = session.execute(
        text("SELECT sku, last_sale_date FROM costed_skus WHERE tenant_id = :t AND sku = ANY(:skus)"),
        {"t": tenant_id, "skus": wanted},
    ).all()
    return {str(row[0]): row[1] for row in rows if row[1] is not None}


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def backdated(
    session: Session, tenant_id: str, entries: Sequence[Entry], *, inclusive: bool = False
) -> list[tuple[Entry, datetime]]:
    """The entries dated strictly before their SKU's latest costed sale (`inclusive`: or at it), each with that
    date. Refusals use the strict rule; a repost is queued by the inclusive one, because at one instant FIFO
    orders lots and sales by id, so an entry at the boundary may change an allocation too."""
    return backdated_against(boundary(session, tenant_id, (e.sku for e in entries)), entries, inclusive=inclusive)


def backdated_against(
    last: dict[str, datetime], entries: Sequence[Entry], *, inclusive: bool = False
) -> list[tuple[Entry, datetime]]:
    """`backdated` against a boundary already read (`boundary`: each SKU's latest costed sale date)."""
    if inclusive:
        return [(e, last[e.sku]) for e in entries if e.sku in last and _utc(e.at) <= _utc(last[e.sku])]
    return [(e, last[e.sku]) for e in entries if e.sku in last and _utc(e.at) < _utc(last[e.sku])]


def detail(entry: Entry, last_sale: datetime, *, field: str, file: str | None = None) -> dict[str, Any]:
    shown = _utc(last_sale).isoformat().replace("+00:00", "Z")
    out: dict[str, Any] = {
        "row": entry.row,
        "field": field,
        "reason": BACKDATED_RECEIPT,
        "sku": entry.sku,
        "last_costed_sale_date": shown,
        "message": f"SKU '{entry.sku}' was already costed up to {shown}; stock dated before it is refused "
        "(backdated_entries = reject)",
    }
    if file is not None:
        out["file"] = file
    return out


def check(session: Session, tenant_id: str, entries: Sequence[Entry], *, field: str, what: str) -> dict[str, datetime]:
    """Refuse backdated entries in `reject` mode (BackdatedReceipt, every one listed); in `repost` mode return
    what to re-cost: each SKU with an entry at or before its boundary, with the earliest such date."""
    if mode(session, tenant_id) == "repost":
        return earliest({}, ((e.sku, e.at) for e, _ in backdated(session, tenant_id, entries, inclusive=True)))
    found = backdated(session, tenant_id, entries)
    if found:
        first, last_sale = found[0]
        raise BackdatedReceipt(
            f"{what} dated before an already-costed sale: SKU '{first.sku}' was costed up to "
            f"{_utc(last_sale).isoformat().replace('+00:00', 'Z')}",
            [detail(e, d, field=field) for e, d in found],
        )
    return {}


def earliest(start: dict[str, datetime], more: Iterable[tuple[str, datetime]]) -> dict[str, datetime]:
    out = {sku: _utc(at) for sku, at in start.items()}
    for sku, at in more:
        out[sku] = min(out.get(sku, _utc(at)), _utc(at))
    return out


def queue_repost(session: Session, tenant_id: str, skus: dict[str, datetime], *, cause: str) -> AcceptedJob | None:
    """Queue a `repost` of these SKUs (each with the date it was backdated to) behind the job `cause` that
    wrote the backdated entry, in the tenant's ledger stream. Numbered when this transaction commits."""
    if not skus:
        return None
    payload = {
        "skus": {sku: _utc(at).isoformat() for sku, at in sorted(skus.items())},
        "cause_job_id": cause,
    }
    return jobs.accept_job(session, tenant_id=tenant_id, kind=JobKind.REPOST, payload=payload, actor=None)
