"""What a job handler is, and what the runner needs to know of each kind (`JobKinds`, the table in
`shared/registry.py`). The runner calls a handler inside the stream's fenced transaction. Handlers raise
DomainError for a deterministic failure and never commit."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session

from shared.errors import DomainError
from shared.jobs.models import Job

CARRIED = "asora.carried"


def carry(session: Session, *rows: object) -> None:
    """Keep these rows loaded for the job's execution: a handler calls this from `status_changed` when a job is
    claimed, and the runner merges them, unchanged and without a query, into the transaction that executes the
    job (it commits just after the claim, under the same fence). Only for rows nothing but the stream's fence
    holder writes (a run's row): the attempt is checked against the job row first, which is always read anew."""
    session.info.setdefault(CARRIED, []).extend(rows)


class JobHandler(Protocol):
    """Runs inside the fenced transaction that marks the job finished."""

    def execute(self, session: Session, job: Job) -> dict[str, Any] | None:
        """Do the work; runs in the same transaction that marks the job completed."""

    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Mirror a queued/running/failed job status onto the domain row (e.g. the run)."""


class Attempt(Protocol):
    def fenced(self) -> AbstractContextManager[tuple[Session, Job]]:
        """A new transaction holding the stream's fence, with the job still claimed by this attempt (or
        Fenced is raised and nothing is committed)."""


@runtime_checkable
class SelfTransacting(Protocol):
    """A handler that must not hold one transaction for its whole run (a dispatch waits on receivers): it
    commits its own steps through `attempt.fenced()`. The runner then marks the job finished in a last fenced
    transaction. `abandoned` is called, in the transaction that fails the job, when an attempt was lost."""

    def run(self, attempt: Attempt) -> dict[str, Any] | None: ...

    def abandoned(self, session: Session, job: Job) -> None: ...


class JobKinds(Protocol):
    """What the runner asks of the job-kind table (`shared.registry.TABLE`)."""

    def handler_for(self, kind: str) -> JobHandler: ...

    def retries(self, kind: str) -> bool: ...
