"""Job kinds, statuses, queues and streams: the names every layer uses instead of string literals. Which
queue and handler each kind has is the one table in `shared/registry.py`."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from shared.locks import LEDGER_STREAM as LEDGER


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
    REPOST = "repost"  # re-cost the sales a backdated entry changed (shared/runs/repost.py), or reverse a repost
    RETURN = "return"
    LANDED_COST = "landed_cost"
    REVALUATION = "revaluation"  # a switch away from moving average that revalues stock (shared/runs/revaluation.py)


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
LEDGER_STREAM: Final = LEDGER


def integration_stream(integration_id: str) -> str:
    return f"integration:{integration_id}"
