"""Fault scenarios on workers: killed (a pool child, the whole worker), terminated as a deploy does, paused
past the lease, cut off from PostgreSQL, killed by a poison job, and outlasted by a tenant's backlog."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from shared.config import get_settings
from tests.faults.harness import (
    Faults,
    backlog,
    completed,
    copying_holder,
    fence_holders,
    kill_fence_holder,
    large_run,
    size,
    status,
    tenant,
    terminate_backend,
    wait_running,
)
from tests.faults.invariants import pending
from tests.support import query, wait_for

pytestmark = pytest.mark.own_stack

SLOW = {"ASORA_DEBUG_JOB_DELAY_SECONDS": "1"}  # each job holds its transaction 1 s before it commits


def test_s01a_sigkill_a_pool_child_mid_run(faults: Faults, holds) -> None:
    """A pool child killed inside a job's transaction: nothing of that attempt is written, the job runs once
    (counted as a lost attempt), and the tenant's backlog completes."""
    faults.start_worker("w1", SLOW)  # first: it starts while the backlog is recorded
    t = tenant()
    jobs = backlog(t, size(4, 10))
    wait_running(jobs)
    kill_fence_holder(faults, "w1")
    holds([t])
    assert sum(status(j)[2] for j in jobs) >= 1, "the killed attempt was counted as lost"


@pytest.mark.soak
def test_s01b_sigkill_the_whole_worker_mid_run(faults: Faults, holds) -> None:
    """The whole worker (main process and children) killed mid-run; a new worker takes over: every accepted
    job completes once and the books verify."""
    faults.start_worker("w1", SLOW)
    t = tenant()
    jobs = backlog(t, size(4, 10))
    wait_running(jobs)
    faults.stop("w1", signal.SIGKILL)
    faults.start_worker("w2")
    holds([t])


def test_s01c_sigterm_during_a_run_drains_no_further(faults: Faults, holds) -> None:
    """SIGTERM during a run, as a deploy does: the worker finishes the job in hand, claims no new one, exits,
    and the rest of the backlog stays queued for the next worker, which completes it once."""
    faults.start_worker("w1", SLOW)
    t = tenant()
    jobs = backlog(t, size(8, 20))
    wait_running(jobs)
    done_before = completed(jobs)
    proc = faults.process("w1")
    faults.send("w1", signal.SIGTERM, group=False)  # to the main process only, as a container runtime does
    proc.wait(120)  # the grace period: a drain that kept going would outlast it
    done_after = completed(jobs)
    # One job per child may have been in hand when the signal came; none was started after it.
    assert done_after - done_before <= 2, (done_before, done_after)
    assert pending([t]) > 0, "the backlog was left queued for the next worker"
    faults.start_worker("w2")
    holds([t])


def test_s05_sigstop_the_lock_holder_past_its_lease(faults: Faults, holds) -> None:
    """The worker holding a tenant's fence is paused (SIGSTOP) past its lease and the stale threshold, then
    resumed: PostgreSQL ends its idle transaction (idle_in_transaction_session_timeout), so another worker
    completes the tenant's jobs and other tenants' jobs during the pause; the resumed worker's attempt is
    fenced, and nothing commits twice."""
    faults.start_worker("w1", {"ASORA_DEBUG_JOB_DELAY_SECONDS": "2"})
    paused, other = tenant(), tenant()
    jobs = backlog(paused, 3)
    held = wait_running(jobs, worker="w1")
    wait_for(lambda: fence_holders(faults.service_urls), 30, "w1 never held the fence")
    faults.send("w1", signal.SIGSTOP)
    try:
        faults.start_worker("w2")
        others = backlog(other, 3)
        # While w1 is still paused: the other tenant is served, and so is the paused tenant.
        wait_for(lambda: completed(others) == len(others), 120, "another tenant was blocked by the paused worker")
        wait_for(lambda: completed(jobs) == len(jobs), 120, "the paused worker's tenant stalled for the pause")
    finally:
        faults.send("w1", signal.SIGCONT)
    holds([paused, other])
    _, attempts, lost, _ = status(held)
    assert attempts >= 2 and lost >= 1, "the paused attempt was superseded and counted as lost"


@pytest.mark.soak
def test_s05b_sigstop_the_lock_holder_in_the_middle_of_a_copy(faults: Faults, holds) -> None:
    """The fence holder is paused while its large run streams a COPY: its backend is active, waiting on the
    client, where no idle timeout applies. The reaper ends that backend once the job's heartbeat is stale, so
    another worker completes the tenant's jobs during the pause; the resumed attempt fails, nothing twice."""
    faults.start_worker("w1")
    paused = tenant()
    jobs = [large_run(paused, size(60_000, 200_000)), *backlog(paused, 2)]
    for _ in range(5):  # a run streams several COPYs; a pause that lands just after one ends tries the next
        holder = wait_for(
            lambda: copying_holder(faults.service_urls), 180, "w1 never streamed a COPY holding the fence"
        )
        faults.send("w1", signal.SIGSTOP)
        time.sleep(0.5)  # what the client had sent is consumed; a COPY still open now waits on the paused client
        if copying_holder(faults.service_urls) == holder:
            break
        faults.send("w1", signal.SIGCONT)
    else:
        pytest.fail("five pauses in a row missed w1's COPYs")
    try:
        faults.start_worker("w2")
        wait_for(lambda: completed(jobs) == len(jobs), 180, "the paused worker's tenant stalled for the pause")
    finally:
        faults.send("w1", signal.SIGCONT)
    holds([paused])
    _, attempts, lost, _ = status(jobs[0])
    assert attempts >= 2 and lost >= 1, "the frozen attempt was ended and counted as lost"


@pytest.mark.soak
def test_s07_pg_terminate_backend_mid_transaction(faults: Faults, holds) -> None:
    """The worker's database connection is ended (pg_terminate_backend) inside a job's transaction: all or
    nothing, the attempt counts as lost (infrastructure, not the input), and the tenant is not stuck."""
    faults.start_worker("w1", {"ASORA_DEBUG_JOB_DELAY_SECONDS": "2"})
    t = tenant()
    jobs = backlog(t, 3)
    held = wait_running(jobs)
    holders = wait_for(lambda: fence_holders(faults.service_urls), 30, "no worker connection held the fence")
    assert terminate_backend(faults.service_urls, holders[0][0])
    holds([t])
    assert status(held)[:3] == ("completed", 2, 1)


@pytest.mark.soak
def test_s10_a_poison_job_that_kills_its_worker_every_time(faults: Faults, holds) -> None:
    """A job whose every attempt kills its worker's process: its attempts are bounded (the worker-lost cap,
    each after a growing back-off, so no hot loop), then it fails ATTEMPTS_EXHAUSTED with nothing written, and
    the tenant's next job still runs."""
    # The cap (ASORA_JOB_MAX_LOST_ATTEMPTS) is 5; make test gives the relay (the reaper) and the worker 2.
    cap = size(2, get_settings().job_max_lost_attempts)
    capped = {"ASORA_JOB_MAX_LOST_ATTEMPTS": str(cap)}
    faults.start_worker("w1", SLOW | capped)
    faults.start_relay(capped)
    t = tenant()
    poison, following = backlog(t, 2)
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:  # plays the poison: each new attempt of the job kills the process running it
        while not stop.is_set():
            state, attempts, _, _ = status(poison)
            if state not in {"running", "queued"}:
                return
            if state == "running" and attempts > len(killed):
                try:
                    kill_fence_holder(faults, "w1", timeout=10)
                    killed.append(attempts)
                except AssertionError:
                    pass
            stop.wait(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        wait_for(lambda: status(poison)[0] == "failed", 300, "the poison job was never given up")
    finally:
        stop.set()
        thread.join(30)
        faults.start_relay()  # the module's relay again, uncapped
    holds([t], may_fail=[poison])
    state, attempts, lost, _ = status(poison)
    assert (state, lost) == ("failed", cap) and attempts == cap, "bounded: exactly the cap of lost attempts"
    error = query("SELECT error FROM jobs WHERE id = :j", {"j": poison})[0][0]
    assert error["reason"] == "ATTEMPTS_EXHAUSTED"
    assert status(following)[0] == "completed"


@pytest.mark.soak
def test_s11_a_backlog_longer_than_the_task_time_limit(faults: Faults, holds) -> None:
    """A tenant's backlog takes longer than Celery's task time limit: each drain stops claiming at its budget
    and hands the rest on, so no job is cut off half-done (each completes on its first attempt) and the
    backlog completes."""
    # A task may run 6 s + 1 s (its soft limit); the backlog needs more than a second per job.
    faults.start_worker("w1", SLOW | {"ASORA_TASK_TIME_LIMIT_SECONDS": "6", "ASORA_DRAIN_BUDGET_SECONDS": "1"})
    t = tenant()
    jobs = backlog(t, size(8, 20))
    holds([t])
    assert all(status(j)[:3] == ("completed", 1, 0) for j in jobs)
    assert "TimeLimitExceeded" not in faults.log("w1")
