"""Handing job wake-ups to the broker: the publisher the API and the workers install in
`shared.jobs.outbox` (after commit), and the one the relay calls for outbox rows it re-sends.

Each message is a task named for the job's kind (`asora.jobs.cogs_run`, ...) whose id is the job's id, with
the job, tenant, kind and stream as its only arguments: Flower lists every job under its own id, and a
re-sent wake-up is the same task again. Payloads and secrets never travel in a message."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Sequence
from functools import lru_cache

import redis

from shared.config import get_settings
from shared.jobs.kinds import JobKind
from shared.jobs.outbox import Wakeup
from shared.jobs.runner import Stream
from shared.registry import queue_for
from worker.celery_app import app


def task_name(kind: JobKind) -> str:
    return f"asora.jobs.{kind}"


def coalesce(wakeups: Iterable[Wakeup]) -> list[Wakeup]:
    """One wake-up per stream and queue, the first of each (the oldest job, in commit order)."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for wakeup in wakeups:
        key = (wakeup.tenant_id, wakeup.stream, str(queue_for(wakeup.kind)))
        if key not in seen:
            seen.add(key)
            out.append(wakeup)
    return out


def publish(wakeups: Iterable[Wakeup]) -> list[str]:
    """Send one message per job; returns the ids sent. A message only says "this stream has work". Each stream
    sent to is marked as having a wake-up queued (`wake`), so that jobs committed before its drain begins need
    none of their own."""
    wakeups = list(wakeups)
    if wakeups:
        _mark_queued(wakeups)
    try:
        return _send(wakeups)
    except Exception:
        _unmark(wakeups)
        raise


def _send(wakeups: Sequence[Wakeup]) -> list[str]:
    published = []
    with app.producer_or_acquire() as producer:
        for wakeup in wakeups:
            kwargs = {
                "job_id": wakeup.job_id,
                "tenant_id": wakeup.tenant_id,
                "kind": str(wakeup.kind),
                "stream": wakeup.stream,
            }
            app.send_task(
                task_name(wakeup.kind),
                kwargs=kwargs,
                task_id=wakeup.job_id,
                queue=queue_for(wakeup.kind),
                producer=producer,
                # What Flower shows, given rather than computed: Celery's saferepr of four short strings is their
                # repr, and walking them cost a sixth of a publish.
                argsrepr="()",
                kwargsrepr=repr(kwargs),
            )
            published.append(wakeup.job_id)
    return published


log = logging.getLogger("asora.publisher")


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    """This process's client of the broker's Redis (the queued marks; a worker's leases and wake flags)."""
    return redis.Redis.from_url(get_settings().redis_url or "")


def _queued_key(wakeup: Wakeup) -> str:
    return Stream(wakeup.tenant_id, wakeup.stream).queued_key(queue_for(wakeup.kind))


def _marker_seconds() -> int:
    # A lost message leaves its marker until it expires; the relay re-sends its jobs' wake-ups after as long.
    return max(1, get_settings().relay_republish_after_seconds)


def _mark_queued(wakeups: Sequence[Wakeup], *, only_new: bool = False) -> list[bool]:
    """Mark each wakeup's stream and queue as having a wake-up queued, in one round trip; `only_new`: only where
    no mark stands (`SET NX`). Returns, per wake-up, whether it was marked."""
    with redis_client().pipeline(transaction=False) as pipe:
        for wakeup in wakeups:
            pipe.set(_queued_key(wakeup), 1, nx=only_new, ex=_marker_seconds())
        return [bool(marked) for marked in pipe.execute()]


def wake(wakeups: Iterable[Wakeup]) -> list[str]:
    """What processes publish after a commit: one wake-up per stream (the first of each), and none for a stream
    whose wake-up is already queued and not yet begun. That is decided by `SET NX` on the stream's queued marker,
    for the whole batch in one round trip; a drain deletes the marker before it reads any job
    (`runner.drain`), so a job committed before the marker was seen is read by the drain the queued wake-up
    starts, or by the lease holder that drain wakes. Returns the ids sent. The relay and a drain that leaves work
    behind call `publish`, which always sends."""
    wanted = coalesce(wakeups)
    if not wanted:
        return []
    fresh = _mark_queued(wanted, only_new=True)
    due = [wakeup for wakeup, marked in zip(wanted, fresh, strict=True) if marked]
    if not due:
        return []
    try:
        return _send(due)
    except Exception:
        _unmark(due)  # nothing was queued for them: the next commit (or the relay) sends again
        raise


def _unmark(wakeups: Sequence[Wakeup]) -> None:
    try:
        redis_client().delete(*(_queued_key(wakeup) for wakeup in wakeups))
    except Exception as exc:  # the markers expire on their own
        log.warning("could not clear %d queued marker(s): %s", len(wakeups), exc)


class BackgroundPublisher:
    """The API's publisher: wake-ups go to the broker from a thread of their own, in the order their
    transactions committed, so a request answers as soon as its transaction commits instead of after a
    round trip to Redis, and a burst goes out as one batch. A batch holds one wake-up per stream (its oldest
    job's): a message means "this stream has work", and the drain it starts runs every pending job of the
    stream and reports each to Flower under its own id. A wake-up still queued here when the process dies
    is not lost: its job's `published_at` ages, and the relay sends it again."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[list[Wakeup] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="asora-publisher", daemon=True)
        self._thread.start()

    def __call__(self, wakeups: Sequence[Wakeup]) -> None:
        self._queue.put(list(wakeups))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = list(first)
            while True:  # whatever else is waiting goes in the same batch
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._send(batch)
                    return
                batch += more
            self._send(batch)

    def _send(self, batch: list[Wakeup]) -> None:
        try:
            wake(batch)
        except Exception as exc:  # the jobs are committed: the relay sends what could not be sent now
            log.warning(
                "publishing %d wake-up(s) failed (%s); the relay will send them",
                len(batch),
                exc,
                extra={"wakeups": len(batch), "error": type(exc).__name__},
            )

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop (at shutdown)."""
        self._queue.put(None)
        self._thread.join(timeout)
