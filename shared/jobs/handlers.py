"""What a job handler is. Each kind's handler is in `shared/jobs/registry.py`; the runner calls it inside the
stream's fenced transaction. Handlers raise DomainError for a deterministic failure and never commit."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session

from shared.errors import DomainError
from shared.jobs.models import Job


class JobHandler(Protocol):
    def execute(self, session: Session, job: Job) -> dict[str, Any] | None:
        """Do the work; runs in the same transaction that marks the job completed."""

    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Mirror a queued/running/failed job status onto the domain row (e.g. the run)."""
