"""The one table of job kinds: each kind's queue, its handler, and whether it may be retried. The runner (which
is handed this table: `shared/jobs` never imports the domains), the publisher, the Celery queues, the workers
`asora up` starts and the deploy manifests all read it, or are proved to agree with it by
`tests/shared/jobs/test_registry.py`. Importing this module imports every handler: there is nothing to
register, and a kind without a handler is a failing test, not a KeyError in a worker.

It sits above the domains (it imports them, nothing in them imports it), which is what keeps the package
graph of `shared/` free of cycles (`tests/test_import_cycles.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from shared.exports.handlers import ExportJob
from shared.integrations.dispatch import DispatchJob
from shared.inventory.handlers import Count, Receipt
from shared.jobs.handlers import JobHandler
from shared.jobs.kinds import JobKind, Queue
from shared.landed_costs.handlers import LandedCostJob
from shared.returns.handlers import ReturnJob
from shared.runs.handlers import CogsRun, Repost, Revaluation, Rollback


@dataclass(frozen=True)
class KindSpec:
    queue: Queue
    handler: JobHandler
    # A kind that must never run twice by itself (a dispatch talks to the outside world) is failed, not
    # retried, when an attempt crashes or its worker is lost.
    retries: bool = True


KINDS: Final = MappingProxyType({
    JobKind.COGS_RUN: KindSpec(Queue.RUNS, CogsRun()),
    JobKind.ROLLBACK: KindSpec(Queue.RUNS, Rollback()),
    JobKind.REPOST: KindSpec(Queue.RUNS, Repost()),
    JobKind.REVALUATION: KindSpec(Queue.RUNS, Revaluation()),
    JobKind.RECEIPT: KindSpec(Queue.INVENTORY, Receipt()),
    JobKind.COUNT: KindSpec(Queue.INVENTORY, Count()),
    JobKind.RETURN: KindSpec(Queue.INVENTORY, ReturnJob()),
    JobKind.LANDED_COST: KindSpec(Queue.INVENTORY, LandedCostJob()),
    JobKind.EXPORT: KindSpec(Queue.EXPORTS, ExportJob()),
    JobKind.DISPATCH: KindSpec(Queue.DISPATCH, DispatchJob(), retries=False),
})  # fmt: skip

QUEUES: Final[tuple[Queue, ...]] = tuple(sorted({spec.queue for spec in KINDS.values()}))


def retries(kind: str) -> bool:
    return KINDS[JobKind(kind)].retries


class _Table:
    """The table as the runner takes it (`shared.jobs.handlers.JobKinds`)."""

    def handler_for(self, kind: str) -> JobHandler:
        return handler_for(kind)

    def retries(self, kind: str) -> bool:
        return retries(kind)


TABLE: Final = _Table()


def handler_for(kind: str) -> JobHandler:
    return KINDS[JobKind(kind)].handler


def queue_for(kind: str) -> Queue:
    return KINDS[JobKind(kind)].queue
