"""`worker.publisher.wake`: one wake-up per stream and queue while one is queued and its drain has not begun.

The decision is made against the real Redis (the queued markers); what would be sent to the broker is recorded
rather than sent, so no message is left for a later stack's worker. That a drain deletes the markers before it
reads a job is shown with the real runner (`runner.drain` on a stream with no job)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import pytest

from shared import registry
from shared.config import get_settings
from shared.jobs import runner
from shared.jobs.kinds import JobKind
from shared.jobs.outbox import Wakeup
from worker import publisher


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch, service_urls: dict[str, str]) -> Iterator[list[str]]:
    del service_urls  # the settings' Redis is the test session's
    publisher.redis_client.cache_clear()
    record: list[str] = []

    def send(wakeups: Sequence[Wakeup]) -> list[str]:
        record.extend(w.job_id for w in wakeups)
        return [w.job_id for w in wakeups]

    monkeypatch.setattr(publisher, "_send", send)
    yield record
    publisher.redis_client.cache_clear()


def _tenant() -> str:
    return f"wake-{uuid.uuid4().hex[:10]}"


def test_a_second_wake_up_for_a_queued_stream_is_not_sent(sent):
    tenant = _tenant()
    assert publisher.wake([Wakeup("job-1", tenant, JobKind.COGS_RUN)]) == ["job-1"]
    assert publisher.wake([Wakeup("job-2", tenant, JobKind.COGS_RUN)]) == []
    assert publisher.wake([Wakeup("job-3", tenant, JobKind.ROLLBACK)]) == []  # same stream, same queue (runs)
    assert sent == ["job-1"]


def test_each_queue_of_a_stream_has_its_own_wake_up(sent):
    tenant = _tenant()
    both = [Wakeup("run-1", tenant, JobKind.COGS_RUN), Wakeup("receipt-1", tenant, JobKind.RECEIPT)]
    assert publisher.wake(both) == ["run-1", "receipt-1"]
    assert publisher.wake([Wakeup("export-1", tenant, JobKind.EXPORT)]) == ["export-1"]
    assert sent == ["run-1", "receipt-1", "export-1"]


def test_a_batch_sends_one_wake_up_per_stream(sent):
    tenants = [_tenant(), _tenant()]
    batch = [Wakeup(f"job-{n}", tenants[n % 2], JobKind.COGS_RUN) for n in range(6)]
    assert publisher.wake(batch) == ["job-0", "job-1"]


def test_once_a_drain_begins_the_next_commit_sends_again(sent):
    tenant = _tenant()
    assert publisher.wake([Wakeup("job-1", tenant, JobKind.COGS_RUN)]) == ["job-1"]
    assert publisher.wake([Wakeup("job-2", tenant, JobKind.RECEIPT)]) == ["job-2"]
    # The queued wake-up is taken: its drain deletes every queue's marker of the stream before it reads a job.
    report = runner.drain(
        runner.Stream(tenant),
        worker="test-wake",
        redis_client=publisher.redis_client(),
        settings=get_settings(),
        kinds=registry.TABLE,
    )
    assert report.executed == 0
    assert publisher.wake([Wakeup("job-3", tenant, JobKind.COGS_RUN)]) == ["job-3"]
    assert publisher.wake([Wakeup("job-4", tenant, JobKind.RECEIPT)]) == ["job-4"]


def test_publish_always_sends_and_marks_the_stream_queued(sent):
    tenant = _tenant()
    wakeup = Wakeup("job-1", tenant, JobKind.COGS_RUN)
    assert publisher.publish([wakeup]) == ["job-1"]
    assert publisher.publish([wakeup]) == ["job-1"]  # the relay's re-send is never skipped
    assert publisher.wake([Wakeup("job-2", tenant, JobKind.COGS_RUN)]) == []
    assert sent == ["job-1", "job-1"]


def test_a_failed_send_leaves_no_marker(sent, monkeypatch):
    tenant = _tenant()

    def broker_down(wakeups: Sequence[Wakeup]) -> list[str]:
        raise ConnectionError("broker down")

    monkeypatch.setattr(publisher, "_send", broker_down)
    with pytest.raises(ConnectionError):
        publisher.wake([Wakeup("job-1", tenant, JobKind.COGS_RUN)])
    monkeypatch.setattr(publisher, "_send", lambda wakeups: [w.job_id for w in wakeups])
    assert publisher.wake([Wakeup("job-2", tenant, JobKind.COGS_RUN)]) == ["job-2"]


def test_the_marker_expires_after_the_relays_re_send_delay(sent):
    tenant = _tenant()
    publisher.wake([Wakeup("job-1", tenant, JobKind.COGS_RUN)])
    ttl = publisher.redis_client().ttl(runner.Stream(tenant).queued_key(registry.queue_for(JobKind.COGS_RUN)))
    assert 0 < ttl <= get_settings().relay_republish_after_seconds
