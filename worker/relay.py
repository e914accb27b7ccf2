"""The outbox relay: re-sends wake-ups the broker may not have (a process that died between commit and
publish, a restarted Redis, a wake-up dropped while the tenant's lease was held), reaps jobs whose worker
died, and purges expired idempotency keys. Run one or more (`python -m worker.relay`); rows are claimed with
SKIP LOCKED, so relays never send the same row at once."""

from __future__ import annotations

import logging
import signal
import threading
import time

from shared import db, registry
from shared.config import get_settings
from shared.jobs import runner
from shared.jobs.kinds import JobKind
from shared.jobs.outbox import Wakeup
from shared.jobs.service import purge_idempotency_keys
from shared.logs import configure_logging
from worker.publisher import publish

log = logging.getLogger("asora.relay")
PURGE_EVERY_SECONDS = 3600


def relay_once() -> int:
    with db.unit_of_work(db.SYSTEM_SCOPE) as session:
        heads = runner.wake_streams(session, get_settings().relay_republish_after_seconds)
        publish(Wakeup(job.id, job.tenant_id, JobKind(job.kind), job.stream) for job in heads)
    return len(heads)


def main() -> None:
    configure_logging("relay")
    settings = get_settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    last_reap = last_purge = 0.0
    log.info("relay started")
    while not stop.is_set():
        try:
            count = relay_once()
            if count:
                log.info("published %d job(s)", count, extra={"published": count})
            if time.monotonic() - last_reap > settings.relay_reap_interval_seconds:
                last_reap = time.monotonic()
                for outcome in runner.reap_stale_jobs(settings, registry.TABLE):
                    log.warning("reaped %s", outcome)
            if time.monotonic() - last_purge > PURGE_EVERY_SECONDS:
                last_purge = time.monotonic()
                with db.unit_of_work(db.SYSTEM_SCOPE) as session:
                    purged = purge_idempotency_keys(session, settings.idempotency_retention_days)
                if purged:
                    log.info("purged %d idempotency key(s) past retention", purged, extra={"purged": purged})
        except Exception:
            log.exception("relay iteration failed; retrying")
        if settings.relay_alive_file is not None:
            settings.relay_alive_file.touch()  # the liveness probe's evidence that this loop still turns
        stop.wait(settings.relay_interval_seconds)
    log.info("relay stopped")


if __name__ == "__main__":
    main()
