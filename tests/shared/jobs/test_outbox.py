"""The outbox hook: a job's wake-up is published only after its transaction commits, all of a transaction's
wake-ups at once and in order, never after a rollback, and a publisher that fails does not undo the commit
(the relay delivers). Commits here release the test's savepoint; the session sees them as commits."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy.orm import Session

from shared.jobs import outbox
from shared.jobs import service as jobs
from shared.jobs.kinds import JobKind, integration_stream
from shared.jobs.models import Job


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[outbox.Wakeup]] = []

    def __call__(self, wakeups: Sequence[outbox.Wakeup]) -> None:
        self.calls.append(list(wakeups))


@pytest.fixture
def published() -> Iterator[Recorder]:
    """A recording publisher, installed for the test only: the process's publisher is None otherwise."""
    recorder = Recorder()
    outbox.set_publisher(recorder)
    try:
        yield recorder
    finally:
        outbox.set_publisher(None)


def _accept(session: Session, tenant_id: str, kind: JobKind = JobKind.RECEIPT, stream: str = "ledger") -> Job:
    accepted = jobs.accept_job(session, tenant_id=tenant_id, kind=kind, payload={}, actor=None, stream=stream)
    jobs.number_pending(session)
    job = session.get(Job, accepted.id)
    assert job is not None
    return job


def test_wakeups_are_published_after_commit_all_at_once_in_order(
    db_session: Session, db_tenant: str, published: Recorder
) -> None:
    receipt = _accept(db_session, db_tenant)
    dispatch = _accept(db_session, db_tenant, JobKind.DISPATCH, stream=integration_stream("int_1"))
    assert receipt.published_at is not None  # scheduled: the relay will not re-send it at once
    db_session.flush()
    assert published.calls == []
    db_session.commit()
    assert published.calls == [
        [
            outbox.Wakeup(receipt.id, db_tenant, JobKind.RECEIPT),
            outbox.Wakeup(dispatch.id, db_tenant, JobKind.DISPATCH, "integration:int_1"),
        ]
    ]
    db_session.commit()  # nothing new: nothing published again
    assert len(published.calls) == 1


def test_a_rollback_drops_the_wakeups_for_good(db_session: Session, db_tenant: str, published: Recorder) -> None:
    _accept(db_session, db_tenant)
    db_session.rollback()
    assert published.calls == []
    db_session.commit()
    assert published.calls == []


def test_a_failing_publisher_leaves_the_commit_standing(
    db_session: Session, db_tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(wakeups: Sequence[outbox.Wakeup]) -> None:
        raise ConnectionError("broker down")

    outbox.set_publisher(broken)
    try:
        job = _accept(db_session, db_tenant)
        with caplog.at_level(logging.WARNING, logger=outbox.__name__):
            db_session.commit()
    finally:
        outbox.set_publisher(None)
    assert "the relay will deliver" in caplog.text
    assert db_session.get(Job, job.id) is not None


def test_without_a_publisher_nothing_is_scheduled(db_session: Session, db_tenant: str) -> None:
    assert not outbox.publishing()
    job = _accept(db_session, db_tenant)
    db_session.commit()
    assert job.published_at is None  # the relay sends it
