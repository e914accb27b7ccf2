"""Master data: categories, hubs, bins, vendors and items. Create, read, list, update, soft delete, and
vendor eligibility. Onboarding order: categories, hubs, bins, vendors, items."""

# Annotations are evaluated eagerly here: the CRUD factory's signatures name its own arguments.

from typing import Annotated, Any

from fastapi import Query, Request, Response
from pydantic import BaseModel

from api.deps import CursorQuery, LimitQuery, MasterWriter, Reader, TenantSession, api_router, json_body, tenant_of
from api.openapi import errors
from shared.inventory import master as inventory
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

router = api_router(tags=["inventory"])
Filter = Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")]


def _master_routes(
    path: str,
    plural: str,
    model: Any,
    create: type[BaseModel],
    update: type[BaseModel],
    out: Any,
) -> None:
    """Register create, read, update and delete of one kind of master record (lists are below, each with
    its own filters)."""
    kind = inventory.noun(model)
    # Every kind counts against a plan ceiling; an item's SKU must also be free (409 ALREADY_EXISTS).
    refusals = errors(402, 409) if model is Item else errors(402)

    @router.post(
        path,
        status_code=201,
        response_model=out,
        name=f"create_{kind}",
        operation_id=f"{plural}_create",
        responses=refusals,
    )
    def create_record(
        request: Request,
        principal: MasterWriter,
        session: TenantSession,
        body: Annotated[BaseModel, json_body(create)],
    ) -> Any:
        tenant_id = tenant_of(principal, getattr(body, "tenant_id", None))
        values = body.model_dump(exclude={"tenant_id"})
        record = inventory.create_record(
            session, model, tenant_id, values, actor=principal, request_id=request.state.request_id
        )
        return out.model_validate(record)

    @router.get(f"{path}/{{record_id}}", response_model=out, name=f"get_{kind}", operation_id=f"{plural}_get")
    def get_record(record_id: str, principal: Reader, session: TenantSession) -> Any:
        return out.model_validate(inventory.get_record(session, model, tenant_of(principal), record_id))

    @router.patch(f"{path}/{{record_id}}", response_model=out, name=f"update_{kind}", operation_id=f"{plural}_update")
    def update_record(
        record_id: str,
        request: Request,
        principal: MasterWriter,
        session: TenantSession,
        body: Annotated[BaseModel, json_body(update)],
    ) -> Any:
        tenant_id = tenant_of(principal, getattr(body, "tenant_id", None))
        changes = body.model_dump(exclude_unset=True, exclude={"tenant_id"})
        record = inventory.update_record(
            session, model, tenant_id, record_id, changes, actor=principal, request_id=request.state.request_id
        )
        return out.model_validate(record)

    @router.delete(f"{path}/{{record_id}}", status_code=204, name=f"delete_{kind}", operation_id=f"{plural}_delete")
    def delete_record(record_id: str, request: Request, principal: MasterWriter, session: TenantSession) -> Response:
        inventory.delete_record(
            session, model, tenant_of(principal), record_id, actor=principal, request_id=request.state.request_id
        )
        return Response(status_code=204)


_master_routes("/categories", "categories", Category, CategoryCreate, CategoryUpdate, CategoryOut)
_master_routes("/hubs", "hubs", Hub, HubCreate, HubUpdate, HubOut)
_master_routes("/bins", "bins", Bin, BinCreate, BinUpdate, BinOut)
_master_routes("/vendors", "vendors", Vendor, VendorCreate, VendorUpdate, VendorOut)
_master_routes("/items", "items", Item, ItemCreate, ItemUpdate, ItemOut)


def _page(
    session: Any, principal: Any, model: Any, out: Any, limit: int, cursor: str | None, **filters: str | None
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


@router.get("/categories", response_model=Page[CategoryOut], operation_id="categories_list")
def list_categories(
    principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None
) -> Any:
    return _page(session, principal, Category, CategoryOut, limit, cursor)


@router.get("/hubs", response_model=Page[HubOut], operation_id="hubs_list")
def list_hubs(principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None) -> Any:
    return _page(session, principal, Hub, HubOut, limit, cursor)


@router.get("/bins", response_model=Page[BinOut], operation_id="bins_list")
def list_bins(
    principal: Reader,
    session: TenantSession,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
    hub_id: Filter = None,
) -> Any:
    return _page(session, principal, Bin, BinOut, limit, cursor, hub_id=hub_id)


@router.get("/vendors", response_model=Page[VendorOut], operation_id="vendors_list")
def list_vendors(principal: Reader, session: TenantSession, limit: LimitQuery = 100, cursor: CursorQuery = None) -> Any:
    return _page(session, principal, Vendor, VendorOut, limit, cursor)


@router.get("/items", response_model=Page[ItemOut], operation_id="items_list")
def list_items(
    principal: Reader,
    session: TenantSession,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
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


def _set_vendor(vendor_id: str, enabled: bool, request: Request, session: Any, principal: Any) -> VendorOut:
    vendor = inventory.set_vendor_enabled(
        session, tenant_of(principal), vendor_id, enabled, actor=principal, request_id=request.state.request_id
    )
    return VendorOut.model_validate(vendor)


@router.post("/vendors/{vendor_id}/enable", response_model=VendorOut, operation_id="vendors_enable")
def enable_vendor(vendor_id: str, request: Request, principal: MasterWriter, session: TenantSession) -> VendorOut:
    return _set_vendor(vendor_id, True, request, session, principal)


@router.post("/vendors/{vendor_id}/disable", response_model=VendorOut, operation_id="vendors_disable")
def disable_vendor(vendor_id: str, request: Request, principal: MasterWriter, session: TenantSession) -> VendorOut:
    return _set_vendor(vendor_id, False, request, session, principal)
