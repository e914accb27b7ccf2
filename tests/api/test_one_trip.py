"""`api.deps.in_one_trip`, the route class of every router: a sync route and its transaction's end share one trip
to the threadpool, a failed COMMIT is answered as an error (never a 2xx), a route that raises rolls back, and GET
routes run in a lane of their own so that a read never queues behind writes holding every pooled thread.

The routes here are a small app of their own on the real database (the application's session dependency and
route class, no application route), so that each property is shown without depending on a route's domain."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio.to_thread
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from api import errors
from api.deps import SessionDep, api_router

SHARED_THREADS = 2
ENDINGS: list[str] = []  # how /raises' transaction ended


def _app(release: threading.Event) -> FastAPI:
    router = api_router()

    @router.get("/thread")
    def thread(session: SessionDep) -> dict[str, Any]:
        committed_in: list[int] = []
        event.listen(session, "after_commit", lambda _s: committed_in.append(threading.get_ident()))
        session.execute(text("SELECT 1"))
        session.info["committed_in"] = committed_in
        return {"route": threading.get_ident(), "committed_in": committed_in}

    @router.post("/fails-at-commit")
    def fails_at_commit(session: SessionDep) -> dict[str, str]:
        # A deferred unique constraint is checked at COMMIT: the route returns, and its commit fails.
        session.execute(text("CREATE TEMP TABLE one_trip (id int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP"))
        session.execute(text("INSERT INTO one_trip VALUES (1), (1)"))
        return {"status": "should never be sent"}

    @router.post("/raises")
    def raises(session: SessionDep) -> dict[str, str]:
        event.listen(session, "after_commit", lambda _s: ENDINGS.append("commit"))
        event.listen(session, "after_rollback", lambda _s: ENDINGS.append("rollback"))
        session.execute(text("SELECT 1"))
        raise ValueError("the route failed after its first statement")

    @router.post("/blocks")
    def blocks() -> dict[str, str]:
        release.wait(30)
        return {"status": "released"}

    @router.get("/read")
    def read() -> dict[str, str]:
        return {"status": "read"}

    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    return app


@pytest.fixture
def client() -> Iterator[tuple[TestClient, threading.Event]]:
    release = threading.Event()
    with TestClient(_app(release), raise_server_exceptions=False) as test_client:
        # The shared pool as small as the test needs, in the client's own event loop.
        assert test_client.portal is not None
        test_client.portal.call(_limit_shared_pool, SHARED_THREADS)
        yield test_client, release
        release.set()


async def _borrowed() -> int:
    return int(anyio.to_thread.current_default_thread_limiter().borrowed_tokens)


async def _limit_shared_pool(threads: int) -> None:
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads


def test_the_route_and_its_commit_run_in_one_thread(client):
    http, _ = client
    answer = http.get("/thread")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # The response is serialised after the trip: by then the route's COMMIT has run, in the route's thread.
    assert body["committed_in"] == [body["route"]], body


def test_a_commit_that_fails_is_answered_as_an_error(client):
    http, _ = client
    answer = http.post("/fails-at-commit")
    assert answer.status_code >= 400, answer.text
    assert "should never be sent" not in answer.text
    assert "error" in answer.json(), answer.text


def test_a_route_that_raises_is_rolled_back(client):
    http, _ = client
    ENDINGS.clear()
    answer = http.post("/raises")
    assert answer.status_code == 500, answer.text
    assert ENDINGS == ["rollback"], ENDINGS


def test_a_read_answers_while_every_shared_thread_is_held(client):
    http, release = client
    held = SHARED_THREADS * 2  # more writes than the shared pool has threads: the rest queue behind them
    with ThreadPoolExecutor(max_workers=held) as pool:
        writes = [pool.submit(http.post, "/blocks") for _ in range(held)]
        deadline = time.monotonic() + 30
        while http.portal.call(_borrowed) < SHARED_THREADS and time.monotonic() < deadline:
            time.sleep(0.01)
        assert http.portal.call(_borrowed) == SHARED_THREADS, "the writes never took the shared pool"
        read = http.get("/read")  # without a lane of its own, it would wait for a shared thread: until release
        still_held = not any(w.done() for w in writes)
        release.set()
        statuses = [w.result(timeout=30).status_code for w in writes]
    assert read.status_code == 200, read.text
    assert still_held, "a write finished before the read was answered: the test showed nothing"
    assert statuses == [200] * held


def test_commit_happens_once_per_request(client):
    """The session dependency only closes what the route's trip ended: one COMMIT per request, not two."""
    http, _ = client
    commits: list[int] = []

    def count(_session: Session) -> None:
        commits.append(1)

    event.listen(Session, "after_commit", count)
    try:
        assert http.get("/thread").status_code == 200
    finally:
        event.remove(Session, "after_commit", count)
    assert len(commits) == 1
