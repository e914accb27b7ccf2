"""Commit, then hand the new jobs to the broker. If publishing fails the rows stay unpublished and the
relay delivers them; the client already has its 202."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from shared import db
from shared.jobs import service as jobs
from shared.jobs.models import Job
from shared.jobs.service import mark_published

log = logging.getLogger("asora.api.outbox")


def commit_and_publish(session: Session, jobs: list[Job]) -> None:
    session.commit()
    if not jobs:
        return
    try:
        from worker.publisher import publish

        published = publish(jobs)
        with db.unit_of_work(jobs[0].tenant_id) as tx:
            mark_published(tx, published)
    except Exception as exc:
        log.warning("publishing after commit failed (%s); the relay will deliver", exc.__class__.__name__)


def accept(
    session: Session,
    tenant_id: str,
    idempotency_key: str | None,
    fingerprint: str,
    submit: Callable[[], tuple[dict[str, Any], Job]],
) -> JSONResponse:
    """The shape of every enqueueing POST: replay the stored answer for a repeated Idempotency-Key (422 for
    the same key with another request), otherwise record the job via `submit`, remember the answer under the
    key in the same transaction, commit, publish and answer 202."""
    if idempotency_key:
        previous = jobs.claim_key(session, tenant_id, idempotency_key, fingerprint)
        if previous is not None:
            return JSONResponse(status_code=previous[0], content=previous[1])
    answer, job = submit()
    if idempotency_key:
        jobs.store_answer(session, tenant_id, idempotency_key, 202, answer)
    commit_and_publish(session, [job])
    return JSONResponse(status_code=202, content=answer)
