"""Fixtures of the fault suite: each module has its API and relay; each scenario starts the workers it
faults, which are killed when it ends. `holds` checks every invariant and records what it found, so that
`python -m tests.faults.soak` can count violations per scenario."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

import pytest

from tests.faults.harness import Faults
from tests.faults.invariants import check

Holds = Callable[..., None]


@pytest.fixture(scope="module")
def faults(service_urls: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faults]:
    running = Faults(service_urls, Path(tmp_path_factory.mktemp("fault-logs")))
    running.start_api()
    running.start_relay()
    try:
        yield running
    finally:
        running.stop_all()


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
