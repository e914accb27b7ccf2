"""The shape of every enqueueing POST: idempotent intake answering 202 with the job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from shared.jobs import service as jobs


def accept(
    session: Session,
    tenant_id: str,
    idempotency_key: str | None,
    fingerprint: str,
    submit: Callable[[], dict[str, Any]],
) -> JSONResponse:
    """Replay the stored answer for a repeated Idempotency-Key (422 for the same key with another request);
    otherwise record the job via `submit` and remember its answer under the key in the same transaction. The
    request's session commits when the route returns, and the job is published after that commit."""
    if idempotency_key:
        previous = jobs.claim_key(session, tenant_id, idempotency_key, fingerprint)
        if previous is not None:
            return JSONResponse(status_code=previous[0], content=previous[1])
    answer = submit()
    if idempotency_key:
        jobs.store_answer(session, tenant_id, idempotency_key, 202, answer)
    return JSONResponse(status_code=202, content=answer)
