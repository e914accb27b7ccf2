"""The Celery application: queues, delivery guarantees and limits. Job order and exactly-once effects are
decided by the jobs table and the PostgreSQL fence, not by Celery.

The configuration is read from the settings when Celery first needs it, not at import: a process (the API, a
test) may import this module before its environment is complete."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import celeryd_init, setup_logging, worker_init
from kombu import Queue as KombuQueue

from shared.config import get_settings
from shared.jobs.kinds import Queue
from shared.registry import QUEUES


def task_soft_limit() -> int:
    """A task may run one job to its budget after the drain's own budget is spent (shared/jobs/runner.py)."""
    settings = get_settings()
    return settings.task_time_limit_seconds + int(settings.drain_budget_seconds)


def celery_config() -> dict[str, Any]:
    settings = get_settings()
    soft_limit = task_soft_limit()
    return {
        "broker_url": settings.redis_url,
        "task_queues": [KombuQueue(name) for name in QUEUES],
        "task_default_queue": Queue.RUNS,
        "task_acks_late": True,  # a message is acknowledged only after the drain finished
        "task_reject_on_worker_lost": True,  # ... and a killed worker's message goes back to the queue
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": soft_limit,
        "task_time_limit": soft_limit + 60,
        # Redis redelivers an unacknowledged message after the visibility timeout; it must outlast the longest
        # task, or a slow job would be delivered twice (harmless, but wasteful).
        "broker_transport_options": {
            "visibility_timeout": settings.broker_visibility_timeout_seconds or soft_limit + 600
        },
        "broker_connection_retry_on_startup": True,
        "task_ignore_result": True,
        "worker_send_task_events": True,
        # No "task-sent" event per message: intake publishes one message per job, and Flower learns of a task
        # from the worker that receives it.
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        # Flower and logs show task arguments: ours are ids and the job kind, never payloads or secrets.
        "task_serializer": "json",
        "accept_content": ["json"],
    }


app = Celery("asora", include=["worker.tasks.jobs"])
app.add_defaults(celery_config)


@celeryd_init.connect
@setup_logging.connect
def _configure_logging(loglevel: int | str | None = None, **_: object) -> None:
    """Celery leaves logging to us (a receiver of `setup_logging` replaces its own set-up): its lines and ours
    are written by shared/logs.py, in the pool's children too (each runs this again after it starts).
    `celeryd_init` comes first, so even the worker's start-up warnings are lines."""
    from shared.logs import configure_logging

    configure_logging("worker", level=loglevel or "INFO")


@worker_init.connect
def _wire_worker(**_: object) -> None:
    """Jobs a worker accepts (a job that queues another) are published after their commit, like the API's."""
    from shared.jobs import outbox
    from worker.publisher import wake

    outbox.set_publisher(wake)
