"""`insert_lots` and `apply_deltas`, the one way every writer changes lots' rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import text

from shared import db
from shared.errors import ValidationFailed
from shared.ledger import lots
from tests.support import create_tenant_direct, query

AT = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def _receive(tenant_id: str, *rows: lots.LotRow, job_id: str = "job_a") -> None:
    with db.unit_of_work(tenant_id) as session:
        lots.insert_lots(session, tenant_id, lots.NewLots.from_rows(rows, source_job_id=job_id))


def _lots(tenant_id: str) -> dict[str, tuple[object, ...]]:
    rows = query("SELECT * FROM lots", tenant_id=tenant_id)
    return {
        r.lot_id: (r.sku, r.bin_id, r.vendor_id, r.remaining_quantity, r.unit_cost, r.status, r.source_job_id)
        for r in rows
    }


@pytest.fixture
def tenant(service_urls) -> str:
    return create_tenant_direct("lots")


def test_lots_are_received_whole_and_a_live_lot_id_is_refused(tenant):
    _receive(tenant, ("L1", "A", "B1", "V1", AT, 10_0000, 2_5000, 1000, 1), ("L2", "A", None, None, AT, 1, 1, 0, 2))
    assert _lots(tenant) == {
        "L1": ("A", "B1", "V1", Decimal("10.0000"), Decimal("2.6000"), "live", "job_a"),
        "L2": ("A", None, None, Decimal("0.0001"), Decimal("0.0001"), "live", "job_a"),
    }
    with pytest.raises(ValidationFailed) as refused:
        _receive(tenant, ("L3", "A", None, None, AT, 1, 1, 0, 3), ("L1", "A", None, None, AT, 1, 1, 0, 4))
    assert refused.value.reason == "LOT_CONFLICT"
    assert set(_lots(tenant)) == {"L1", "L2"}  # nothing of the refused receipt stays


def test_a_reversed_lot_id_is_received_anew_and_replaces_the_reversed_row(tenant):
    _receive(tenant, ("L1", "A", "B1", "V1", AT, 10_0000, 2_0000, 0, 1))
    with db.unit_of_work(tenant) as session:
        lots.apply_deltas(session, tenant, [lots.encode_deltas(["L1"], [-10_0000], np.array([True]))])
    assert _lots(tenant)["L1"][3:6] == (Decimal("0.0000"), Decimal("2.0000"), "reversed")
    _receive(tenant, ("L1", "B", None, "V2", AT, 3_0000, 1_0000, 5000, 7), job_id="job_b")
    assert _lots(tenant) == {"L1": ("B", None, "V2", Decimal("3.0000"), Decimal("1.5000"), "live", "job_b")}


def test_deltas_move_balances_in_one_update_or_not_at_all(tenant):
    _receive(tenant, ("L1", "A", None, None, AT, 10_0000, 1, 0, 1), ("L2", "A", None, None, AT, 5_0000, 1, 0, 2))
    with db.unit_of_work(tenant) as session:
        lots.apply_deltas(session, tenant, [lots.encode_deltas(["L1", "L2"], [-2_5000, 1])])
        lots.apply_deltas(session, tenant, [lots.encode_deltas(["L1"], [-1])])  # again, in the same transaction
    assert {k: v[3] for k, v in _lots(tenant).items()} == {"L1": Decimal("7.4999"), "L2": Decimal("5.0001")}

    with db.unit_of_work(tenant) as session:
        deltas = lots.encode_deltas(["L1", "L2"], [-1, -5_0002])
        with pytest.raises(lots.NegativeBalance) as negative:
            lots.apply_deltas(session, tenant, [deltas], refuse_negative=True)
        assert negative.value.lot_ids == ["L2"]
        unchanged = session.execute(text("SELECT lot_id, remaining_quantity FROM lots ORDER BY lot_id")).all()
        assert [tuple(r) for r in unchanged] == [("L1", Decimal("7.4999")), ("L2", Decimal("5.0001"))]
        lots.apply_deltas(session, tenant, [lots.encode_deltas(["L2"], [-1])], refuse_negative=True)
    assert {k: v[3] for k, v in _lots(tenant).items()} == {"L1": Decimal("7.4999"), "L2": Decimal("5.0000")}
