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

from shared.jobs.kinds import JobKind
from shared.jobs.outbox import Wakeup
from shared.registry import queue_for
from worker.celery_app import app


def task_name(kind: JobKind) -> str:
    return f"asora.jobs.{kind}"


def coalesce(wakeups: Iterable[Wakeup]) -> list[Wakeup]:
    """One wake-up per stream, the first of each (the oldest job, in commit order)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for wakeup in wakeups:
        if (wakeup.tenant_id, wakeup.stream) not in seen:
            seen.add((wakeup.tenant_id, wakeup.stream))
            out.append(wakeup)
    return out


def publish(wakeups: Iterable[Wakeup]) -> list[str]:
    """Send one message per job; returns the ids sent. A message only says "this stream has work"."""
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
            publish(coalesce(batch))
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
