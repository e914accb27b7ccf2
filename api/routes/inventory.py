"""Master data: categories, hubs, bins, vendors and items. Create, read, list, update, soft delete, and
vendor eligibility. Onboarding order: categories, hubs, bins, vendors, items."""

# Annotations are evaluated eagerly here: the CRUD factory's signatures name its own arguments.

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel

from api.deps import LimitQuery, SessionDep, tenant_of
from api.intake import MasterWriter, Reader, json_body
from shared.inventory import service as inventory
from shared.inventory.models import Bin, Category, Hub, Item, Vendor
from shared.inventory.schemas import (
    BinCreate,
    BinOut,
    BinUpdate,
    CategoryCreate,
    CategoryOut,
    CategoryUpdate,
    HubCreate,
    HubOut,
    HubUpdate,
    ItemCreate,
    ItemOut,
    ItemUpdate,
    VendorCreate,
    VendorOut,
    VendorUpdate,
)
from shared.schemas import Page

router = APIRouter(tags=["inventory"])
Cursor = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_]*$")]
Filter = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _master_routes(
    path: str,
    model: Any,
    create: type[BaseModel],
    update: type[BaseModel],
    out: Any,
) -> None:
    """Register create, read, update and delete of one kind of master record (lists are below, each with
    its own filters)."""
    kind = inventory.noun(model)

    @router.post(path, status_code=201, response_model=out, name=f"create_{kind}")
    def create_record(
        request: Request,
        session: SessionDep,
        principal: MasterWriter,
        body: Annotated[BaseModel, json_body(create)],
    ) -> Any:
        tenant_id = tenant_of(principal, getattr(body, "tenant_id", None))
        values = body.model_dump(exclude={"tenant_id"})
        record = inventory.create_record(
            session, model, tenant_id, values, actor=principal, request_id=_request_id(request)
        )
        answer = out.model_validate(record)
        session.commit()
        return answer

    @router.get(f"{path}/{{record_id}}", response_model=out, name=f"get_{kind}")
    def get_record(record_id: str, session: SessionDep, principal: Reader) -> Any:
        return out.model_validate(inventory.get_record(session, model, tenant_of(principal), record_id))

    @router.patch(f"{path}/{{record_id}}", response_model=out, name=f"update_{kind}")
    def update_record(
        record_id: str,
        request: Request,
        session: SessionDep,
        principal: MasterWriter,
        body: Annotated[BaseModel, json_body(update)],
    ) -> Any:
        tenant_id = tenant_of(principal, getattr(body, "tenant_id", None))
        changes = body.model_dump(exclude_unset=True, exclude={"tenant_id"})
        record = inventory.update_record(
            session, model, tenant_id, record_id, changes, actor=principal, request_id=_request_id(request)
        )
        answer = out.model_validate(record)
        session.commit()
        return answer

    @router.delete(f"{path}/{{record_id}}", status_code=204, name=f"delete_{kind}")
    def delete_record(record_id: str, request: Request, session: SessionDep, principal: MasterWriter) -> Response:
        inventory.delete_record(
            session, model, tenant_of(principal), record_id, actor=principal, request_id=_request_id(request)
        )
        session.commit()
        return Response(status_code=204)


_master_routes("/categories", Category, CategoryCreate, CategoryUpdate, CategoryOut)
_master_routes("/hubs", Hub, HubCreate, HubUpdate, HubOut)
_master_routes("/bins", Bin, BinCreate, BinUpdate, BinOut)
_master_routes("/vendors", Vendor, VendorCreate, VendorUpdate, VendorOut)
_master_routes("/items", Item, ItemCreate, ItemUpdate, ItemOut)


def _page(
    session: SessionDep, principal: Any, model: Any, out: Any, limit: int, cursor: str | None, **filters: str | None
) -> Any:
    rows, next_cursor = inventory.list_records(
        session,
        model,
        tenant_of(principal),
        limit=limit,
        cursor=cursor,
        filters={k: v for k, v in filters.items() if v is not None},
    )
    return Page[out](items=[out.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/categories", response_model=Page[CategoryOut])
def list_categories(session: SessionDep, principal: Reader, limit: LimitQuery = 100, cursor: Cursor = None) -> Any:
    return _page(session, principal, Category, CategoryOut, limit, cursor)


@router.get("/hubs", response_model=Page[HubOut])
def list_hubs(session: SessionDep, principal: Reader, limit: LimitQuery = 100, cursor: Cursor = None) -> Any:
    return _page(session, principal, Hub, HubOut, limit, cursor)


@router.get("/bins", response_model=Page[BinOut])
def list_bins(
    session: SessionDep, principal: Reader, limit: LimitQuery = 100, cursor: Cursor = None, hub_id: Filter = None
) -> Any:
    return _page(session, principal, Bin, BinOut, limit, cursor, hub_id=hub_id)


@router.get("/vendors", response_model=Page[VendorOut])
def list_vendors(session: SessionDep, principal: Reader, limit: LimitQuery = 100, cursor: Cursor = None) -> Any:
    return _page(session, principal, Vendor, VendorOut, limit, cursor)


@router.get("/items", response_model=Page[ItemOut])
def list_items(
    session: SessionDep,
    principal: Reader,
    limit: LimitQuery = 100,
    cursor: Cursor = None,
    sku: Filter = None,
    category_id: Filter = None,
    default_bin_id: Filter = None,
) -> Any:
    return _page(
        session,
        principal,
        Item,
        ItemOut,
        limit,
        cursor,
        sku=sku,
        category_id=category_id,
        default_bin_id=default_bin_id,
    )


def _set_vendor(vendor_id: str, enabled: bool, request: Request, session: SessionDep, principal: Any) -> VendorOut:
    vendor = inventory.set_vendor_enabled(
        session, tenant_of(principal), vendor_id, enabled, actor=principal, request_id=_request_id(request)
    )
    answer = VendorOut.model_validate(vendor)
    session.commit()
    return answer


@router.post("/vendors/{vendor_id}/enable", response_model=VendorOut)
def enable_vendor(vendor_id: str, request: Request, session: SessionDep, principal: MasterWriter) -> VendorOut:
    return _set_vendor(vendor_id, True, request, session, principal)


@router.post("/vendors/{vendor_id}/disable", response_model=VendorOut)
def disable_vendor(vendor_id: str, request: Request, session: SessionDep, principal: MasterWriter) -> VendorOut:
    return _set_vendor(vendor_id, False, request, session, principal)
