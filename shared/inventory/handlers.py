"""Receipt and count jobs, executed inside the tenant's fenced transaction. Their status lives on the job
itself (a count's view reads it from there), so `status_changed` has nothing to mirror."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.errors import DomainError
from shared.inventory import counts, receipts
from shared.jobs.handlers import register
from shared.jobs.models import Job


@register("receipt")
class Receipt:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Nothing to mirror: a receipt is its job and the ledger events it wrote."""

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        return receipts.post_receipt(session, job)


@register("count")
class Count:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Nothing to mirror: GET /counts/{id} reads the status from the job."""

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        return counts.post_count(session, job)
