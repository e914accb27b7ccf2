"""Commit, then hand the new jobs to the broker. If publishing fails the rows stay unpublished and the
relay delivers them; the client already has its 202."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from shared import db
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
