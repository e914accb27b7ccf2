"""Request-scoped dependencies: the database session and the authenticated principal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from sqlalchemy.orm import Session

from shared.auth import Principal
from shared.db import get_sessionmaker
from shared.errors import Forbidden
from shared.tenants import service as tenants


def get_session() -> Iterator[Session]:
    """One transaction per request; endpoints that write commit explicitly (then publish), everything
    else is rolled back when the request ends."""
    with get_sessionmaker()() as session:
        session.begin()
        try:
            yield session
        finally:
            if session.in_transaction():
                session.rollback()


SessionDep = Annotated[Session, Depends(get_session)]


def get_principal(
    request: Request,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
    x_tenant_id: Annotated[str | None, Header()] = None,
) -> Principal:
    raw = None
    if authorization:
        scheme, _, token = authorization.partition(" ")
        raw = token.strip() if scheme.lower() == "bearer" else None
    principal = tenants.authenticate(session, raw, x_tenant_id)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def tenant_of(principal: Principal, body_tenant_id: str | None = None) -> str:
    """The tenant a request acts on: always the key's (an operator's X-Tenant-ID); a differing body
    tenant_id is refused."""
    if principal.tenant_id is None:
        raise Forbidden(
            "operator requests on tenant data must name the tenant in X-Tenant-ID", reason="TENANT_REQUIRED"
        )
    if body_tenant_id is not None and body_tenant_id != principal.tenant_id:
        raise Forbidden("tenant_id in the request does not match the authenticated tenant", reason="TENANT_MISMATCH")
    return principal.tenant_id


LimitQuery = Annotated[int, Query(ge=1, le=1000)]
# A page cursor that is a seq or an id number (ledger, audit).
SeqCursor = Annotated[int | None, Query(ge=0, le=2**62)]
IdempotencyKeyHeader = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]
