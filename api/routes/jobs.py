"""Job status."""

from __future__ import annotations

from api.deps import CursorQuery, LimitQuery, Reader, TenantSession, api_router, tenant_of
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind, JobStatus
from shared.jobs.schemas import JobOut
from shared.schemas import Page

router = api_router(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobOut, operation_id="jobs_get")
def get_job(job_id: str, principal: Reader, session: TenantSession) -> JobOut:
    return JobOut.model_validate(jobs.get_job(session, tenant_of(principal), job_id))


@router.get("", response_model=Page[JobOut], operation_id="jobs_list")
def list_jobs(
    principal: Reader,
    session: TenantSession,
    kind: JobKind | None = None,
    status: JobStatus | None = None,
    limit: LimitQuery = 100,
    cursor: CursorQuery = None,
) -> Page[JobOut]:
    """The tenant's jobs, newest (highest seq) first."""
    rows, next_cursor = jobs.list_jobs(
        session, tenant_of(principal), kind=kind, status=status, cursor=cursor, limit=limit
    )
    return Page(items=[JobOut.model_validate(j) for j in rows], next_cursor=next_cursor)
