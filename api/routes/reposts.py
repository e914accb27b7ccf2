"""Reposts: a repost is a job (kind `repost`, in GET /jobs) queued behind a backdated entry accepted in `repost`
mode; this route rolls one back."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from api.accept import accept
from api.deps import IdempotencyKeyHeader, RunsWriter, TenantSession, api_router, tenant_of
from api.openapi import errors
from shared.jobs import service as jobs
from shared.jobs.kinds import JobStatus
from shared.runs import repost
from shared.runs.schemas import RepostRollbackAccepted

router = api_router(prefix="/reposts", tags=["runs"])


@router.post(
    "/{job_id}/rollback",
    status_code=202,
    response_model=RepostRollbackAccepted,
    operation_id="reposts_rollback",
    responses=errors(404, 409),
)
def rollback(
    job_id: str, principal: RunsWriter, session: TenantSession, idempotency_key: IdempotencyKeyHeader = None
) -> JSONResponse:
    tenant_id = tenant_of(principal)

    def submit() -> dict[str, Any]:
        job = repost.request_rollback(session, tenant_id=tenant_id, actor=principal, job_id=job_id)
        return RepostRollbackAccepted(repost_job_id=job_id, job_id=job.id, status=JobStatus.QUEUED).model_dump()

    return accept(session, tenant_id, idempotency_key, jobs.request_fingerprint("repost_rollback", job_id), submit)
