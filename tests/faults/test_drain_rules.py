"""The drain's liveness rules in process (no stack): a drain claims no new job once its budget is spent or
shutdown has begun, hands the rest of the stream on (`more_work`), and the job in hand completes."""

from __future__ import annotations

import redis

from shared.jobs import runner
from tests.faults.harness import backlog, status, tenant


class Hooks(runner.DrainHooks):
    def __init__(self) -> None:
        self.handed_on: list[runner.Stream] = []

    def more_work(self, stream: runner.Stream) -> None:
        self.handed_on.append(stream)


def _drain(tenant_id: str, client: redis.Redis, hooks: Hooks, *, budget: float = 60, stopping: bool = False) -> int:
    from shared.config import get_settings
    from shared.registry import TABLE

    settings = get_settings().model_copy(update={"drain_budget_seconds": budget})
    report = runner.drain(
        runner.Stream(tenant_id),
        worker="rules",
        redis_client=client,
        settings=settings,
        kinds=TABLE,
        hooks=hooks,
        stopping=lambda: stopping,
    )
    return report.executed


def test_a_spent_budget_ends_the_drain_after_the_job_in_hand(service_urls: dict[str, str]) -> None:
    client = redis.Redis.from_url(service_urls["redis_url"])
    t = tenant("rules")
    jobs = backlog(t, 3)
    hooks = Hooks()
    assert _drain(t, client, hooks, budget=0.000001) == 1  # the first claim is made at once; no second
    assert [status(j)[0] for j in jobs] == ["completed", "queued", "queued"]
    assert hooks.handed_on == [runner.Stream(t)], "the rest was handed to a new wake-up"
    assert _drain(t, client, Hooks()) == 2
    assert all(status(j)[:2] == ("completed", 1) for j in jobs), "each job ran once, on its first attempt"


def test_a_drain_begun_after_shutdown_started_claims_nothing(service_urls: dict[str, str]) -> None:
    client = redis.Redis.from_url(service_urls["redis_url"])
    t = tenant("rules")
    jobs = backlog(t, 2)
    hooks = Hooks()
    assert _drain(t, client, hooks, stopping=True) == 0
    assert [status(j)[:2] for j in jobs] == [("queued", 0), ("queued", 0)]
    assert hooks.handed_on == [runner.Stream(t)]
