"""Master data on the service: what each write stores and audits, parents that must be live and the tenant's
own, plan ceilings that count live records only, soft delete (and what blocks it: children, stock),
identity fields that never change, vendor eligibility, and list pages with their cursors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared import db
from shared.errors import Conflict, NotFound, PlanLimitExceeded, ValidationFailed
from shared.inventory import master
from shared.inventory.models import Bin, Category, Hub, Item, Vendor
from shared.pagination import MAX_TEXT_CURSOR
from tests import factories
from tests.support import ledger_move, ledger_receive

OWNER = factories.principal("any", "owner")


def _live(session: Session, model: type[Any], tenant_id: str) -> int:
    query = select(func.count()).select_from(model).where(model.tenant_id == tenant_id, model.deleted_at.is_(None))
    return int(session.scalar(query) or 0)


def test_create_stores_the_record_and_audits_the_values(db_session: Session, db_tenant: str) -> None:
    category = master.create_record(
        db_session, Category, db_tenant, {"name": "Fasteners"}, actor=OWNER, request_id="req-1"
    )
    assert category.id.startswith("cat_")
    assert (category.tenant_id, category.name, category.deleted_at) == (db_tenant, "Fasteners", None)
    assert category.created_at is not None  # refreshed from the server default
    [event] = factories.audit_trail(db_session, db_tenant, "category.created")
    assert (event.target, event.outcome, event.request_id, event.actor_role) == (category.id, "ok", "req-1", "owner")
    assert event.details == {"values": {"name": "Fasteners"}}


@pytest.mark.parametrize(("model", "prefix"), [(Hub, "hub_"), (Vendor, "ven_"), (Category, "cat_")])
def test_each_kind_has_its_id_prefix_and_audit_noun(
    db_session: Session, db_tenant: str, model: type[Any], prefix: str
) -> None:
    record = master.create_record(db_session, model, db_tenant, {"name": "n"}, actor=None)
    assert record.id.startswith(prefix)
    assert [e.target for e in factories.audit_trail(db_session, db_tenant, f"{master.noun(model)}.created")] == [
        record.id
    ]


def _refused_for_parent(session: Session, model: type[Any], tenant_id: str, values: dict[str, Any]) -> str:
    with pytest.raises(ValidationFailed) as refused:
        master.create_record(session, model, tenant_id, values, actor=None)
    assert refused.value.reason == "MISSING_PARENT"
    field: str = refused.value.details[0]["field"]
    return field


def test_parents_must_exist_be_live_and_belong_to_the_tenant(db_session: Session, db_tenant: str) -> None:
    other = factories.tenant(db_session)
    foreign_hub, foreign_category = factories.hub(db_session, other), factories.category(db_session, other)
    foreign_bin = factories.bin_(db_session, other, foreign_hub.id)
    db.scope_session(db_session, db_tenant)
    gone = factories.hub(db_session, db_tenant, "gone")
    master.delete_record(db_session, Hub, db_tenant, gone.id, actor=None)
    category = factories.category(db_session, db_tenant)
    for hub_id in ("hub_missing", gone.id, foreign_hub.id, "x" * 41):
        assert _refused_for_parent(db_session, Bin, db_tenant, {"hub_id": hub_id, "name": "b"}) == "hub_id"
    item = {"sku": "S-1", "name": "s"}
    assert _refused_for_parent(db_session, Item, db_tenant, {**item, "category_id": foreign_category.id}) == (
        "category_id"
    )
    assert (
        _refused_for_parent(
            db_session, Item, db_tenant, {**item, "category_id": category.id, "default_bin_id": foreign_bin.id}
        )
        == "default_bin_id"
    )
    assert _live(db_session, Bin, db_tenant) == 0
    assert _live(db_session, Item, db_tenant) == 0


def test_a_live_sku_is_taken_and_a_deleted_one_is_free(db_session: Session, db_tenant: str) -> None:
    first = factories.item(db_session, db_tenant, "DUP-1")
    with pytest.raises(Conflict) as refused:
        factories.item(db_session, db_tenant, "DUP-1")
    assert refused.value.reason == "ALREADY_EXISTS"
    assert first.id in refused.value.details[0]["message"]
    master.delete_record(db_session, Item, db_tenant, first.id, actor=None)
    assert factories.item(db_session, db_tenant, "DUP-1").id != first.id
    other = factories.tenant(db_session)
    factories.item(db_session, other, "DUP-1")  # SKUs are per tenant


@pytest.mark.parametrize(("model", "limit"), [(Hub, 1), (Vendor, 5)])
def test_a_ceiling_counts_live_records_and_a_delete_frees_a_place(
    db_session: Session, model: type[Any], limit: int
) -> None:
    tenant_id = factories.tenant(db_session, plan="free")
    records = [master.create_record(db_session, model, tenant_id, {"name": f"n{n}"}, actor=None) for n in range(limit)]
    with pytest.raises(PlanLimitExceeded) as refused:
        master.create_record(db_session, model, tenant_id, {"name": "one more"}, actor=None)
    assert refused.value.details[0] | {"message": ""} == {
        "limit": f"{master.noun(model)}s",
        "used": limit,
        "max": limit,
        "message": "",
    }
    assert _live(db_session, model, tenant_id) == limit
    master.delete_record(db_session, model, tenant_id, records[0].id, actor=None)
    master.create_record(db_session, model, tenant_id, {"name": "in the freed place"}, actor=None)
    assert _live(db_session, model, tenant_id) == limit


def test_a_soft_deleted_record_stays_in_the_table_and_leaves_every_read(db_session: Session, db_tenant: str) -> None:
    vendor = factories.vendor(db_session, db_tenant)
    master.delete_record(db_session, Vendor, db_tenant, vendor.id, actor=OWNER, request_id="req-del")
    stored = db_session.get(Vendor, vendor.id)
    assert stored is not None
    assert stored.deleted_at is not None
    assert master.find_live(db_session, Vendor, db_tenant, vendor.id) is None
    assert master.list_records(db_session, Vendor, db_tenant, limit=10, cursor=None) == ([], None)
    for write in (
        lambda: master.get_record(db_session, Vendor, db_tenant, vendor.id),
        lambda: master.update_record(db_session, Vendor, db_tenant, vendor.id, {"name": "x"}, actor=None),
        lambda: master.delete_record(db_session, Vendor, db_tenant, vendor.id, actor=None),
        lambda: master.set_vendor_enabled(db_session, db_tenant, vendor.id, False, actor=None),
    ):
        with pytest.raises(NotFound):
            write()
    [event] = factories.audit_trail(db_session, db_tenant, "vendor.deleted")
    assert (event.target, event.request_id, event.details) == (vendor.id, "req-del", None)


def test_parents_with_live_children_are_in_use(db_session: Session, db_tenant: str) -> None:
    md = factories.master_data(db_session, db_tenant, skus=("BUSY-1",))
    parents: list[tuple[type[Any], str]] = [(Hub, md.hub_id), (Bin, md.bin_id), (Category, md.category_id)]
    for model, record_id in parents:
        with pytest.raises(ValidationFailed) as refused:
            master.delete_record(db_session, model, db_tenant, record_id, actor=None)
        assert refused.value.reason == "IN_USE"
    master.delete_record(db_session, Item, db_tenant, md.items["BUSY-1"], actor=None)
    for model, record_id in reversed(parents):
        master.delete_record(db_session, model, db_tenant, record_id, actor=None)
    assert [e.action for e in factories.audit_trail(db_session, db_tenant) if e.action.endswith(".deleted")] == [
        "item.deleted",
        "category.deleted",
        "bin.deleted",
        "hub.deleted",
    ]


def test_stock_on_hand_blocks_deleting_its_item_and_its_bin_until_it_is_gone(
    db_session: Session, db_tenant: str
) -> None:
    md = factories.master_data(db_session, db_tenant, skus=("STOCK-1",))
    other_bin = factories.bin_(db_session, db_tenant, md.hub_id, "spare")
    ledger_receive(
        db_session,
        db_tenant,
        lot_id="L1",
        sku="STOCK-1",
        quantity="2",
        unit_cost="1",
        at="2024-01-01T00:00:00Z",
        bin_id=other_bin.id,
    )
    refusals: dict[type[Any], tuple[str | None, str]] = {}
    stocked: list[tuple[type[Any], str]] = [(Item, md.items["STOCK-1"]), (Bin, other_bin.id)]
    for model, record_id in stocked:
        with pytest.raises(ValidationFailed) as refused:
            master.delete_record(db_session, model, db_tenant, record_id, actor=None)
        refusals[model] = (refused.value.reason, refused.value.details[0]["message"])
    assert refusals == {
        Item: ("IN_USE", "the item has stock on hand"),
        Bin: ("IN_USE", "the bin holds stock"),
    }
    ledger_move(db_session, db_tenant, "ISSUE", lot_id="L1", quantity="-2", at="2024-01-02T00:00:00Z")
    master.delete_record(db_session, Bin, db_tenant, other_bin.id, actor=None)  # ledger history never blocks
    master.delete_record(db_session, Item, db_tenant, md.items["STOCK-1"], actor=None)


def test_an_update_audits_only_what_changed(db_session: Session, db_tenant: str) -> None:
    md = factories.master_data(db_session, db_tenant, skus=("UPD-1",))
    item_id = md.items["UPD-1"]
    same = master.update_record(
        db_session, Item, db_tenant, item_id, {"sku": "UPD-1", "name": "UPD-1"}, actor=None
    )  # the identity repeated unchanged, and a name equal to the stored one
    assert same.sku == "UPD-1"
    assert factories.audit_trail(db_session, db_tenant, "item.updated") == []
    changed = master.update_record(
        db_session, Item, db_tenant, item_id, {"name": "renamed", "default_bin_id": None}, actor=OWNER
    )
    assert (changed.name, changed.default_bin_id) == ("renamed", None)
    [event] = factories.audit_trail(db_session, db_tenant, "item.updated")
    assert event.details == {"changes": {"name": "renamed", "default_bin_id": None}}


@pytest.mark.parametrize(
    ("model", "changes", "reason"),
    [
        (Item, {"sku": "OTHER"}, "IMMUTABLE_FIELD"),
        (Bin, {"hub_id": "hub_elsewhere"}, "IMMUTABLE_FIELD"),
        (Item, {"name": None}, "BAD_REQUEST"),
        (Item, {"category_id": None}, "BAD_REQUEST"),
        (Item, {"category_id": "cat_missing"}, "MISSING_PARENT"),
        (Item, {"default_bin_id": "bin_missing"}, "MISSING_PARENT"),
        (Hub, {"name": None}, "BAD_REQUEST"),
    ],
)
def test_an_update_that_would_break_identity_or_parents_changes_nothing(
    db_session: Session, db_tenant: str, model: type[Any], changes: dict[str, Any], reason: str
) -> None:
    md = factories.master_data(db_session, db_tenant, skus=("IMM-1",))
    record_id = {Item: md.items["IMM-1"], Bin: md.bin_id, Hub: md.hub_id}[model]
    before = {c.key: getattr(db_session.get(model, record_id), c.key) for c in model.__table__.columns}
    with pytest.raises(ValidationFailed) as refused:
        master.update_record(db_session, model, db_tenant, record_id, dict(changes), actor=None)
    assert refused.value.reason == reason
    db_session.expire_all()
    assert {c.key: getattr(db_session.get(model, record_id), c.key) for c in model.__table__.columns} == before
    assert factories.audit_trail(db_session, db_tenant, f"{master.noun(model)}.updated") == []


def test_vendor_eligibility_is_audited_with_what_it_was(db_session: Session, db_tenant: str) -> None:
    vendor = factories.vendor(db_session, db_tenant)
    assert master.set_vendor_enabled(db_session, db_tenant, vendor.id, False, actor=OWNER).enabled is False
    master.set_vendor_enabled(db_session, db_tenant, vendor.id, False, actor=OWNER)  # idempotent, still recorded
    assert master.set_vendor_enabled(db_session, db_tenant, vendor.id, True, actor=OWNER).enabled is True
    trail = [
        (e.action, e.details)
        for e in factories.audit_trail(db_session, db_tenant)
        if e.action.startswith("vendor.") and e.action != "vendor.created"
    ]
    assert trail == [
        ("vendor.disabled", {"previously_enabled": True}),
        ("vendor.disabled", {"previously_enabled": False}),
        ("vendor.enabled", {"previously_enabled": False}),
    ]
    with pytest.raises(NotFound):
        master.set_vendor_enabled(db_session, db_tenant, "ven_missing", True, actor=None)


def test_odd_ids_are_not_found(db_session: Session, db_tenant: str) -> None:
    for record_id in ("x" * (master.MAX_ID_LENGTH + 1), "cat_\x00", ""):
        with pytest.raises(NotFound):
            master.get_record(db_session, Category, db_tenant, record_id)


# --- list pages ---------------------------------------------------------------------------------------------


def _walk(session: Session, model: type[Any], tenant_id: str, limit: int, **filters: str) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        rows, cursor = master.list_records(session, model, tenant_id, limit=limit, cursor=cursor, filters=filters)
        pages.append([r.id for r in rows])
        if cursor is None:
            return pages


def test_pages_follow_creation_order_and_end_exactly(db_session: Session, db_tenant: str) -> None:
    ids = [factories.vendor(db_session, db_tenant, f"v{n}").id for n in range(5)]
    assert _walk(db_session, Vendor, db_tenant, 2) == [ids[0:2], ids[2:4], ids[4:]]
    assert _walk(db_session, Vendor, db_tenant, 5) == [ids]  # a full last page has no next cursor
    assert _walk(db_session, Vendor, db_tenant, 1000) == [ids]
    master.delete_record(db_session, Vendor, db_tenant, ids[2], actor=None)
    assert _walk(db_session, Vendor, db_tenant, 2) == [ids[0:2], ids[3:]]


def test_filters_and_the_tenant_bound_every_page(db_session: Session, db_tenant: str) -> None:
    hub_a, hub_b = factories.hub(db_session, db_tenant, "a"), factories.hub(db_session, db_tenant, "b")
    in_a = [factories.bin_(db_session, db_tenant, hub_a.id, f"a{n}").id for n in range(3)]
    factories.bin_(db_session, db_tenant, hub_b.id, "b0")
    other = factories.tenant(db_session)
    factories.bin_(db_session, other, name="foreign")
    db.scope_session(db_session, db_tenant)  # (no scope spans tenants since migration 0013)
    assert _walk(db_session, Bin, db_tenant, 2, hub_id=hub_a.id) == [in_a[:2], in_a[2:]]
    assert sum(len(p) for p in _walk(db_session, Bin, db_tenant, 10)) == 4


@pytest.mark.parametrize("cursor", ["a\x00b", "tab\there", "x" * (MAX_TEXT_CURSOR + 1), "\u2028"])
def test_a_text_cursor_that_no_page_gave_out_is_422_bad_cursor(
    db_session: Session, db_tenant: str, cursor: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        master.list_records(db_session, Category, db_tenant, limit=10, cursor=cursor)
    assert (refused.value.status_code, refused.value.reason) == (422, "BAD_CURSOR")
    assert refused.value.details == [{"field": "cursor", "message": "is not a cursor this list gave out"}]


def test_a_printable_cursor_of_the_longest_length_is_a_key_like_any_other(db_session: Session, db_tenant: str) -> None:
    factories.category(db_session, db_tenant)
    rows, cursor = master.list_records(db_session, Category, db_tenant, limit=10, cursor="z" * MAX_TEXT_CURSOR)
    assert (rows, cursor) == ([], None)  # "z..." sorts after every generated id
