"""Job status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import LimitQuery, PrincipalDep, SessionDep, tenant_of
from shared.auth import Permission
from shared.jobs import service as jobs
from shared.jobs.schemas import JobOut
from shared.schemas import Page

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: SessionDep, principal: PrincipalDep) -> JobOut:
    principal.require(Permission.READ)
    return JobOut.model_validate(jobs.get_job(session, tenant_of(principal), job_id))


@router.get("", response_model=Page[JobOut])
def list_jobs(
    session: SessionDep,
    principal: PrincipalDep,
    kind: str | None = None,
    status: str | None = None,
    limit: LimitQuery = 100,
    cursor: Annotated[int | None, Query(ge=0)] = None,
) -> Page[JobOut]:
    principal.require(Permission.READ)
    rows = jobs.list_jobs(session, tenant_of(principal), kind=kind, status=status, after_seq=cursor, limit=limit)
    return Page(
        items=[JobOut.model_validate(j) for j in rows], next_cursor=str(rows[-1].seq) if len(rows) == limit else None
    )
