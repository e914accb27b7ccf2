"""Receipt and count jobs, executed inside the tenant's fenced transaction; each queues its domain event
(`receipt.posted`, `count.posted`) for subscribed integrations in that transaction. Their status lives on the
job itself (a count's view reads it from there), so `status_changed` has nothing to mirror."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.errors import DomainError
from shared.integrations import events
from shared.integrations.models import EventName
from shared.inventory import counts, receipts
from shared.jobs.models import Job


class Receipt:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Nothing to mirror: a receipt is its job and the ledger events it wrote."""

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        result = receipts.post_receipt(session, job)
        events.emit(session, job.tenant_id, EventName.RECEIPT_POSTED, {"job_id": job.id, **result})
        return result


class Count:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Nothing to mirror: GET /counts/{id} reads the status from the job."""

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        result = counts.post_count(session, job)
        events.emit(session, job.tenant_id, EventName.COUNT_POSTED, {"job_id": job.id, **result})
        return result
