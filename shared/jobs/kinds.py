"""Job kinds, statuses and queues: the names every layer uses instead of string literals.

Each kind names the Celery queue its wake-ups travel on; `shared/jobs/registry.py` maps each kind to the
handler that executes it, and `tests/shared/jobs/test_kinds.py` proves that the queues Celery declares,
the queues `asora up` starts workers on, and the deploy manifests agree with this table.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Queue(StrEnum):
    RUNS = "runs"
    INVENTORY = "inventory"
    EXPORTS = "exports"
    DISPATCH = "dispatch"


class JobKind(StrEnum):
    COGS_RUN = "cogs_run"
    ROLLBACK = "rollback"
    RECEIPT = "receipt"
    COUNT = "count"
    EXPORT = "export"
    DISPATCH = "dispatch"

    @property
    def queue(self) -> Queue:
        return KIND_QUEUES[self]


KIND_QUEUES: Final[dict[JobKind, Queue]] = {
    JobKind.COGS_RUN: Queue.RUNS,
    JobKind.ROLLBACK: Queue.RUNS,
    JobKind.RECEIPT: Queue.INVENTORY,
    JobKind.COUNT: Queue.INVENTORY,
    JobKind.EXPORT: Queue.EXPORTS,
    JobKind.DISPATCH: Queue.DISPATCH,
}
QUEUES: Final[tuple[Queue, ...]] = tuple(Queue)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


PENDING: Final = (JobStatus.QUEUED, JobStatus.RUNNING)
TERMINAL: Final = (JobStatus.COMPLETED, JobStatus.FAILED)


# A tenant's jobs run one at a time, in `seq` order, within their stream. Everything that reads or writes the
# tenant's books shares the LEDGER stream (an export accepted after a receipt sees the receipt); an
# integration's dispatches only read their own outbox, so each integration has a stream of its own and a slow
# receiver never holds up the books.
LEDGER_STREAM: Final = "ledger"


def integration_stream(integration_id: str) -> str:
    return f"integration:{integration_id}"
