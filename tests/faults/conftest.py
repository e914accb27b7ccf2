"""Fixtures of the fault suite: each module has its API and relay; each scenario starts the workers it
faults, which are killed when it ends. `holds` checks every invariant and records what it found, so that
`python -m tests.faults.soak` can count violations per scenario."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

import pytest

from tests.faults.harness import Faults, OwnRedis
from tests.faults.invariants import check

Holds = Callable[..., None]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs the fast scenarios; those marked `soak` run under `make soak` (which sets
    ASORA_FAULTS_ALL=1) or when asked for."""
    if os.environ.get("ASORA_FAULTS_ALL") == "1":
        return
    skip = pytest.mark.skip(reason="a soak scenario: `make soak`, or ASORA_FAULTS_ALL=1")
    for item in items:
        if item.get_closest_marker("soak"):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def faults(service_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    """The module's API and relay, on a Redis server of its own: the session's Redis database is shared with
    any other test session on this machine (whose workers would take these messages and whose FLUSHDB would
    drop them), and a fault scenario must know every process that touches its queues."""
    tmp = Path(tmp_path_factory.mktemp("fault-logs"))
    own = OwnRedis(tmp / "redis")
    own.start()
    running = Faults(service_urls, tmp, redis_url=own.url)
    try:
        running.start_api()
        running.start_relay()
        yield running
    finally:
        running.stop_all()
        own.kill()


@pytest.fixture(autouse=True)
def _scenario(request: pytest.FixtureRequest) -> Iterator[None]:
    doc = (request.function.__doc__ or "").strip().split("\n\n")[0]
    request.node.user_properties.append(("invariant", " ".join(doc.split())))
    yield
    if "faults" in request.fixturenames:
        request.getfixturevalue("faults").stop_workers()


@pytest.fixture
def holds(request: pytest.FixtureRequest) -> Holds:
    """Check every invariant over the tenants (after the fault is over) and fail on any violation."""

    def verify(tenants: Sequence[str], *, may_fail: Collection[str] = (), timeout: float = 180) -> None:
        violations = check(tenants, may_fail=may_fail, timeout=timeout)
        request.node.user_properties.append(("violations", len(violations)))
        assert not violations, "invariants violated:\n" + "\n".join(violations)

    return verify
