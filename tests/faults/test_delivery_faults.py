"""Fault scenarios on delivery: messages redelivered while the first copy runs, duplicated, shuffled and
bogus; two workers racing one tenant; Redis restarted or flushed; the API killed between commit and publish."""

from __future__ import annotations

import random
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from shared.jobs.kinds import JobKind
from shared.jobs.outbox import Wakeup
from tests.faults.harness import Faults, OwnRedis, backlog, completed, size, status, tenant
from tests.support import key_for, query, sale, wait_for

pytestmark = pytest.mark.own_stack


@pytest.mark.soak
def test_s02_visibility_timeout_shorter_than_the_run(faults: Faults, holds) -> None:
    """The broker's visibility timeout is shorter than a job, so Redis hands the message to another worker
    while the first copy still runs: the second copy finds the lease or the fence taken, and every job
    commits exactly once."""
    short = {"ASORA_BROKER_VISIBILITY_TIMEOUT_SECONDS": "1", "ASORA_DEBUG_JOB_DELAY_SECONDS": "2"}
    faults.start_worker("w1", short)
    faults.start_worker("w2", short)
    t = tenant()
    jobs = backlog(t, size(4, 10))
    holds([t])
    assert all(status(j)[:2] == ("completed", 1) for j in jobs), "no job was executed a second time"


def test_s03_duplicated_shuffled_and_bogus_messages(faults: Faults, holds) -> None:
    """One tenant's wake-ups duplicated five times and shuffled, with bogus ones (unknown job, unknown
    tenant, another tenant's job under the wrong tenant): each job runs once, in seq order, and the other
    tenants' work completes meanwhile (no starvation)."""
    noisy, quiet1, quiet2 = tenant(), tenant(), tenant()
    noisy_jobs = backlog(noisy, size(6, 20))
    quiet_jobs = backlog(quiet1, 3) + backlog(quiet2, 3)
    messages = [Wakeup(j, noisy, JobKind.COGS_RUN) for j in noisy_jobs] * 5
    messages += [Wakeup("job_bogus", noisy, JobKind.COGS_RUN), Wakeup("job_bogus", "no-such-tenant", JobKind.COGS_RUN)]
    messages += [Wakeup(quiet_jobs[0], noisy, JobKind.EXPORT)]
    random.shuffle(messages)
    faults.publish(messages)
    faults.start_worker("w1", {"ASORA_DEBUG_JOB_DELAY_SECONDS": "0.3"})
    wait_for(lambda: completed(quiet_jobs) == len(quiet_jobs), 120, "the quiet tenants starved")
    holds([noisy, quiet1, quiet2])
    finished = query("SELECT seq FROM jobs WHERE tenant_id = :t ORDER BY finished_at, seq", {"t": noisy})
    assert [r.seq for r in finished] == sorted(r.seq for r in finished), "run in seq order"


def _race(tenant_id: str, clients: list[redis.Redis]) -> None:
    """Drain the tenant from one thread per client, all released at once by a barrier, until nothing is
    pending."""
    from shared.config import get_settings
    from shared.jobs import runner
    from shared.registry import TABLE

    barrier = threading.Barrier(len(clients))

    def drain(n: int) -> None:
        barrier.wait(30)
        for _ in range(200):
            if not query(
                "SELECT 1 FROM jobs WHERE tenant_id = :t AND status IN ('queued', 'running')", {"t": tenant_id}
            ):
                return
            runner.drain_tenant(
                tenant_id, worker=f"racer{n}", redis_client=clients[n], settings=get_settings(), kinds=TABLE
            )

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(drain, range(len(clients))))


def test_s04_two_workers_race_one_tenant_behind_a_barrier(faults: Faults, holds, tmp_path: Path) -> None:
    """Two workers drain one tenant at the same instant, first sharing one Redis (the lease decides), then
    each with a Redis of its own (the lease split: only the PostgreSQL fence decides): every job runs on
    exactly one attempt, in seq order."""
    shared_lease, split_lease = tenant(), tenant()
    first = backlog(shared_lease, size(10, 40))
    second = backlog(split_lease, size(10, 40))
    own = OwnRedis(tmp_path / "redis")
    own.start()
    try:
        main = redis.Redis.from_url(faults.redis_url or "")
        _race(shared_lease, [main, redis.Redis.from_url(faults.redis_url or "")])
        _race(split_lease, [main, redis.Redis.from_url(own.url)])
    finally:
        own.kill()
    faults.start_worker("w1")  # for the probe of `not-stalled`
    holds([shared_lease, split_lease])
    assert all(status(j)[:2] == ("completed", 1) for j in first + second)


def test_s06_redis_restarted_mid_queue_and_flushed(faults: Faults, holds, tmp_path: Path) -> None:
    """Redis (a server of the suite's own) is restarted with messages queued, and later flushed (FLUSHALL)
    while a worker drains: the relay re-publishes what the broker lost and every accepted job runs once."""
    own = OwnRedis(tmp_path / "redis")
    own.start()
    stack = Faults(faults.service_urls, tmp_path / "logs", redis_url=own.url)
    faults.stop("relay")  # this scenario's relay and worker use the Redis it restarts
    try:
        stack.start_relay()
        restarted, flushed = tenant(), tenant()
        jobs = backlog(restarted, size(4, 10))
        wait_for(lambda: all(status(j)[0] == "queued" for j in jobs) and _published(jobs), 30, "not published")
        own.restart()  # the queued messages are gone with it (no persistence)
        stack.start_worker("w1", {"ASORA_DEBUG_JOB_DELAY_SECONDS": "0.5"})
        more = backlog(flushed, size(6, 20))
        wait_for(lambda: completed(more) >= 1, 120, "nothing ran after the restart")
        own.flushall()  # messages, leases and wake flags, mid-drain
        holds([restarted, flushed])
    finally:
        stack.stop_all()
        own.kill()
        faults.start_relay()


def _published(jobs: list[str]) -> bool:
    rows = query("SELECT count(*) FROM jobs WHERE id = ANY(:j) AND published_at IS NOT NULL", {"j": jobs})
    return int(rows[0][0]) == len(jobs)


@pytest.mark.soak
def test_s08_api_killed_between_commit_and_publish(faults: Faults, holds, tmp_path: Path) -> None:
    """Jobs committed whose wake-up was never sent (the API died between commit and publish), and an API
    killed (SIGKILL) in the middle of a burst of requests: every job that was committed runs exactly once,
    including each one whose 202 was answered."""
    faults.start_worker("w1")
    t = tenant()
    unpublished = backlog(t, 3)  # committed as the API commits, never published: the relay delivers them
    api = Faults(faults.service_urls, tmp_path / "logs")
    base = api.start_api()
    owner = key_for(base, t, "owner")
    answered: list[str] = []

    def post(n: int) -> None:
        day = f"2024-06-{1 + n % 28:02d}"
        body = {"sales_data": [sale(f"B{n}", "F-2", day, "1")], "lots_data": [_lot(f"BL{n}", day)]}
        try:
            response = httpx.post(
                f"{base}/api/v1/runs", json=body, headers={"Authorization": f"Bearer {owner.key}"}, timeout=30
            )
        except httpx.HTTPError:
            return
        if response.status_code == 202:
            answered.append(response.json()["job_id"])

    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(post, n) for n in range(size(24, 80))]
            wait_for(lambda: len(answered) >= 3, 60, "no request was accepted")
            api.stop("api", signal.SIGKILL)
            for future in futures:
                future.result(60)
    finally:
        api.stop_all()
    holds([t])
    assert all(status(j)[:2] == ("completed", 1) for j in unpublished)
    # Answered jobs raced each other, so a later-dated sale may have been costed first: such a run fails
    # BACKDATED_SALE (a domain outcome, which `holds` tells apart from a lost job). None may be missing.
    found = query("SELECT count(*) FROM jobs WHERE id = ANY(:j) AND status IN ('completed', 'failed')", {"j": answered})
    assert found[0][0] == len(answered), "an answered job was lost"


def _lot(lot_id: str, day: str) -> dict[str, str]:
    return {
        "lot_id": lot_id,
        "sku": "F-2",
        "received_date": day,
        "original_quantity": "2",
        "remaining_quantity": "2",
        "unit_price": "3",
    }
