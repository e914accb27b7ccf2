"""The ledger's canonical form, pinned. Fixed events chained from the genesis hash must give these hashes
forever, through every path that renders the form: one event at a time (the verifier), the columnar COPY
writer, and PostgreSQL rendering stored rows (a rollback's reversals). A change that fails here would break
every chain already stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from psycopg import sql
from sqlalchemy import text

from shared import db
from shared.decimals import AMOUNT_SCALE, COST_SCALE, QTY_SCALE
from shared.ledger import canonical, service, verify
from shared.tenants import service as tenants

TENANT = "golden-canonical"
ODD_SKU = "odd\tsku\\with\nbreak \u00fcn\u00efc\u00f8d\u00e9 \u20ac"  # tab, backslash, newline, non-ASCII
ODD_REFERENCE = "count\t#1 \\ note\nsecond line \u2014 \u65e5\u672c\u8a9e"


@dataclass(frozen=True)
class Event:
    job_id: str
    run_id: str | None
    event_type: str
    sku: str
    lot_id: str
    bin_id: str | None
    quantity: int  # scaled 10^4
    unit_cost: int  # scaled 10^4
    amount: int  # scaled 10^8
    occurred_at: datetime
    reference: str | None
    reverses_seq: int | None


BIG = 20_000_000_000 * 600_000_000  # 120,000,000,000.00000000: scaled, beyond int64
EVENTS = [
    Event("job-rcv", "run-golden", "RECEIPT", "WIDGET-A", "LOT-1", "BIN-1", 100_000, 25_000, 2_500_000_000,
          datetime(2024, 3, 1, 9, 30, 0, 123456, tzinfo=UTC), "LOT-1", None),
    Event("job-run", "run-golden", "ISSUE", "WIDGET-A", "LOT-1", "BIN-1", -35_000, 25_000, -875_000_000,
          datetime(2024, 3, 2, tzinfo=UTC), "SALE-1", None),
    Event("job-rollback", "run-golden", "REVERSAL", "WIDGET-A", "LOT-1", "BIN-1", 35_000, 25_000, 875_000_000,
          datetime(2024, 3, 2, tzinfo=UTC), "SALE-1", 2),
    Event("job-count", None, "ADJUSTMENT", ODD_SKU, "ADJ-1", None, -1, 12_345_678, -12_345_678,
          datetime(2024, 3, 3, 23, 59, 59, 999999, tzinfo=UTC), ODD_REFERENCE, None),
    Event("job-count", None, "ADJUSTMENT", "WIDGET-B", "ADJ-2", None, 20_000_000_000, 600_000_000, BIG,
          datetime(2000, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2))), None, None),  # written in UTC
    Event("job-run2", "run-big", "ISSUE", "WIDGET-B", "ADJ-2", None, -19_999_999_999, 600_000_000,
          -19_999_999_999 * 600_000_000, datetime(2000, 1, 2, tzinfo=UTC), "SALE-\u00e9", None),
    # line breaks to Python that COPY leaves as they are (U+2028, U+2029, NEL, \x1c) beside ones it escapes
    Event("job-run3", "run-odd", "ISSUE", "WIDGET-C", "LOT-\u2028\x85", "BIN-\u2029", -1_0000, 1_0000, -1_0000_0000,
          datetime(2024, 12, 31, 23, 59, 59, 1, tzinfo=UTC), "SALE-\u2028\u2029\x85\x1c\r\x0b\x0c\x08", None),
]  # fmt: skip

# Computed with the writer as it was before shared/ledger/canonical.py existed (commit dd1525f), chained from
# the genesis hash in this order. Never edit these to make a change pass.
GOLDEN = [
    "67d52e737c406e0c3126424651c240a2d42656dafd37d9f0d310dd24b027838e",
    "f17c8e83b46e63e81946aaf82f7428c0f63b3f3c8c220fbf239199afee38a62e",
    "252a21032c28a8e82d559ffee90c115359c1ae46ba92658125cf6dd52710889f",
    "0e2320aee8a3f55f561716b541b6ac1582b91f12b32c13be4eb06e973fac95d2",
    "bb8c3d41e9031da15d8a8c5b89a68766cfb1d4b5204d3bd8dda1dee1f18cf6f3",
    "c2c0b284e9f74afa61d3d370d13a9360e71d221ce7bfd84b568ed5f44851d7b5",
    "31390b26280ca2b63f88b9cf07329f07c751316318d78b90d8b6557e721e1b63",
]


def _form(seq: int, e: Event) -> str:
    return canonical.canonical(
        TENANT, seq, e.event_type, e.sku, e.lot_id, e.bin_id, canonical.scaled_text(e.quantity, QTY_SCALE),
        canonical.scaled_text(e.unit_cost, COST_SCALE), canonical.scaled_text(e.amount, AMOUNT_SCALE),
        e.occurred_at, e.job_id, e.run_id, e.reference, e.reverses_seq,
    )  # fmt: skip


FORMS = [_form(seq, e) for seq, e in enumerate(EVENTS, 1)]


def _chained(forms: list[str]) -> list[str]:
    hashes, prev = [], canonical.GENESIS_HASH
    for form in forms:
        prev = canonical.chain_hash(prev, form)
        hashes.append(prev)
    return hashes


def _batch(e: Event, dtype: type) -> service.EventBatch:
    return service.EventBatch(
        e.event_type, sku=[e.sku], lot_id=[e.lot_id], quantity=np.array([e.quantity], dtype=dtype),
        unit_cost=np.array([e.unit_cost], dtype=dtype), amount=np.array([e.amount], dtype=dtype),
        occurred_at=np.array([np.datetime64(e.occurred_at.astimezone(UTC).replace(tzinfo=None), "us")]),
        reference=[e.reference], bin_id=[e.bin_id], reverses_seq=[e.reverses_seq],
    )  # fmt: skip


def test_fixed_events_hash_to_the_golden_chain() -> None:
    assert _chained(FORMS) == GOLDEN
    assert FORMS[3].split("\t")[3] == "odd\\tsku\\\\with\\nbreak \u00fcn\u00efc\u00f8d\u00e9 \u20ac"
    assert FORMS[4].split("\t")[8:10] == ["120000000000.00000000", "1999-12-31T23:00:00.000000Z"]
    assert FORMS[6].split("\t")[12] == "SALE-\u2028\u2029\x85\x1c\\r\\v\\f\\b"


@pytest.mark.parametrize(("dtype", "count"), [(object, len(EVENTS)), (np.int64, 4)])  # int64 where it fits
def test_the_columnar_writer_sends_the_canonical_form_as_the_copy_row(dtype: type, count: int) -> None:
    """What `append_batches` COPYs: each row is the canonical form and its hash, chained like GOLDEN."""
    head, rows = service.Head(0, canonical.GENESIS_HASH), []
    for e in EVENTS[:count]:
        prepared = service.prepare_batches([_batch(e, dtype)], job_id=e.job_id, run_id=e.run_id)
        chained = service.chain(TENANT, head, prepared.chunks())
        head = service.Head(chained.last, chained.last_hash)
        rows += _lines(b"".join(chained.data))
    assert rows == [
        f"{form}\t{canonical.HASH_PREFIX}{digest}" for form, digest in zip(FORMS[:count], GOLDEN[:count], strict=True)
    ]
    assert head.hash == GOLDEN[count - 1]


def _lines(data: bytes) -> list[str]:
    return data.decode().split("\n")[:-1]  # not splitlines(): U+2028 and the like are not line ends to COPY


def _copy_out(session, query: sql.Composable) -> list[str]:
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cur, cur.copy(query) as copy:
        return _lines(b"".join(bytes(chunk) for chunk in copy))


def test_stored_events_render_in_sql_as_in_python_and_keep_the_golden_hashes(service_urls) -> None:
    with db.unit_of_work() as session:
        tenants.create_tenant(
            session, tenant_id=TENANT, name="golden", plan="enterprise", role_model="standard", actor=None
        )
    with db.unit_of_work(TENANT) as session:
        for e in EVENTS:  # through the real writer (COPY as the bulk writer), one append per job
            event = service.NewEvent(
                e.event_type, e.sku, e.lot_id, e.quantity, e.unit_cost, e.amount, e.occurred_at,
                reference=e.reference, bin_id=e.bin_id, reverses_seq=e.reverses_seq,
            )  # fmt: skip
            service.append_events(session, TENANT, [event], job_id=e.job_id, run_id=e.run_id)

    with db.unit_of_work(TENANT) as session:
        stored = session.execute(text("SELECT encode(hash, 'hex') FROM ledger_events ORDER BY seq")).scalars().all()
        rows = session.execute(
            text(f"SELECT {', '.join(canonical.CONTENT_COLUMNS)} FROM ledger_events ORDER BY seq")
        ).all()
        session.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))  # must not show in the rendering
        where = sql.SQL("FROM ledger_events WHERE tenant_id = {} ORDER BY seq").format(TENANT)
        rendered = _copy_out(session, sql.SQL("COPY (SELECT {} {}) TO STDOUT").format(canonical.canonical_sql(), where))
        reversal = _copy_out(
            session,
            sql.SQL("COPY (SELECT {} FROM ledger_events WHERE tenant_id = {} AND seq = 2) TO STDOUT").format(
                canonical.reversal_body_sql(job_id="job-rollback", run_id="run-golden"), TENANT
            ),
        )
    assert stored == GOLDEN
    assert [canonical.of_stored(row) for row in rows] == FORMS
    assert rendered == FORMS
    # event 3 is the reversal of event 2, as a rollback renders it in SQL
    assert [f"{TENANT}\t3\t{body}" for body in reversal] == [FORMS[2]]
    with verify.snapshot(TENANT) as session:
        result = verify.verify_ledger(session, TENANT)
    assert result.chain_ok and result.events == len(EVENTS)
