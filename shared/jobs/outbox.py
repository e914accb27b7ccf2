"""Handing accepted jobs to the broker after their transaction commits: the one way jobs get published.

`accept_job` notes each new job on its session; when the session's transaction commits, the process's
publisher (set once at start-up: the API and the workers use Celery's, see `worker/publisher.py`) sends a
wake-up for each, and a rollback drops them. The job row itself is the transactional outbox: if the process
dies between commit and publish, or the broker loses the message, the relay sends the wake-up again
(`Job.published_at` is when one was last sent or scheduled; the relay re-sends for queued jobs whose last
one is older than `relay_republish_after_seconds`, and at once for jobs that no process scheduled).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.orm import Session

from shared.jobs.kinds import LEDGER_STREAM, JobKind

log = logging.getLogger(__name__)

_PENDING = "asora.jobs_to_publish"


@dataclass(frozen=True, slots=True)
class Wakeup:
    """What a broker message carries: which job caused it (for Flower and logs), never its payload."""

    job_id: str
    tenant_id: str
    kind: JobKind
    stream: str = LEDGER_STREAM


Publisher = Callable[[Sequence[Wakeup]], object]
_publisher: Publisher | None = None


def set_publisher(publisher: Publisher | None) -> None:
    """Install the process's publisher (None: this process does not publish; the relay will)."""
    global _publisher  # noqa: PLW0603 - wired once per process at start-up
    _publisher = publisher


def publishing() -> bool:
    return _publisher is not None


def publish_after_commit(session: Session, wakeup: Wakeup) -> None:
    session.info.setdefault(_PENDING, []).append(wakeup)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending: list[Wakeup] = session.info.pop(_PENDING, [])
    if not pending or _publisher is None:
        return
    try:
        _publisher(pending)
    except Exception as exc:  # the rows are committed: the relay delivers what could not be sent now
        log.warning("publishing %d job(s) after commit failed (%s); the relay will deliver", len(pending), exc)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
