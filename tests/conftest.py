"""Test infrastructure: a fresh PostgreSQL database migrated to head and a private Redis database per
session, on the configured servers (ASORA_DATABASE_URL / ASORA_REDIS_URL) or on embedded ones."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hypothesis
import psycopg
import pytest
import redis
from sqlalchemy import Connection, make_url, text
from sqlalchemy.orm import Session

from shared.embedded import ensure_services, stop_embedded
from tests.tier import FAST

OPERATOR_KEY = "asora_test_operator_" + secrets.token_hex(16)
TEST_ENV = {
    "ASORA_ENVIRONMENT": "test",
    "ASORA_BOOTSTRAP_OPERATOR_KEY": OPERATOR_KEY,
    "ASORA_HEARTBEAT_SECONDS": "1",
    "ASORA_JOB_STALE_AFTER_SECONDS": "5",
    "ASORA_TENANT_LOCK_LEASE_SECONDS": "5",
    "ASORA_RELAY_INTERVAL_SECONDS": "0.2",
    "ASORA_RELAY_REPUBLISH_AFTER_SECONDS": "3",
    "ASORA_JOB_RETRY_BACKOFF_SECONDS": "0.2",
}


# Properties that set no example count of their own draw Hypothesis's default (100) in `make test` and a quarter
# of it in `make test-fast` (tests/tier.py).
hypothesis.settings.register_profile("fast", max_examples=25)
if FAST:
    hypothesis.settings.load_profile("fast")


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


@pytest.fixture(scope="session")
def service_urls() -> Iterator[dict[str, str]]:
    configured_db = os.environ.get("ASORA_DATABASE_URL")
    configured_redis = os.environ.get("ASORA_REDIS_URL")
    data_dir = Path(tempfile.mkdtemp(prefix="asora-test-"))
    urls = ensure_services(configured_db, configured_redis, data_dir)

    name = f"asora_test_{secrets.token_hex(4)}"
    with psycopg.connect(_libpq(urls.database_url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute(f"ALTER DATABASE {name} SET synchronous_commit = off")
    database_url = make_url(urls.database_url).set(database=name).render_as_string(hide_password=False)

    redis_url = urls.redis_url
    if configured_redis:
        redis_url = str(
            make_url(redis_url.replace("redis://", "postgresql://", 1)).set(database=str(_redis_test_db()))
        ).replace("postgresql://", "redis://", 1)
    redis.Redis.from_url(redis_url).flushdb()

    saved = {k: os.environ.get(k) for k in (*TEST_ENV, "ASORA_DATABASE_URL", "ASORA_REDIS_URL")}
    os.environ.update(TEST_ENV)
    os.environ["ASORA_DATABASE_URL"] = database_url
    os.environ["ASORA_REDIS_URL"] = redis_url
    _reset_caches()

    from shared.migrate import upgrade

    upgrade(database_url)
    yield {"database_url": database_url, "redis_url": redis_url, "admin_url": urls.database_url}

    from shared.db import get_engine, get_system_engine

    get_engine().dispose()
    get_system_engine().dispose()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _reset_caches()
    with psycopg.connect(_libpq(urls.database_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    if configured_redis:
        redis.Redis.from_url(redis_url).flushdb()
    stop_embedded(data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)


def _redis_test_db() -> int:
    """The Redis database a session owns on a configured server: ASORA_TEST_REDIS_DB (default 13), plus the
    pytest-xdist worker's index, so that parallel sessions (xdist workers, or two checkouts on one machine)
    never flush or read each other's queues."""
    base = int(os.environ.get("ASORA_TEST_REDIS_DB", "13"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return (base + int(worker.removeprefix("gw") or 0)) % 16


def _reset_caches() -> None:
    from shared.config import get_settings
    from shared.db import reset_engines

    get_settings.cache_clear()
    reset_engines()


@pytest.fixture(scope="session")
def database_url(service_urls: dict[str, str]) -> str:
    return service_urls["database_url"]


@pytest.fixture(scope="session")
def shared_stack_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the shared stack's processes write their logs (`api.log`, `worker0.log`, `relay.log`)."""
    return tmp_path_factory.mktemp("stack-logs")


@pytest.fixture(scope="session")
def shared_stack(service_urls: dict[str, str], shared_stack_logs: Path) -> Iterator[str]:
    """The one shared stack for pipeline tests: API, a worker and the relay on the session's database and
    Redis, up until every dependency answers (`GET /health` 200). Yields the API's base URL. Modules that
    kill, pause or reconfigure processes start their own with `tests.support.start_stack` and are marked
    `own_stack`; they run before this stack starts (see `pytest_collection_modifyitems`)."""
    from tests.support import start_stack, wait_for

    running, base = start_stack(service_urls, shared_stack_logs)
    try:
        wait_for(lambda: _healthy(base), 60, f"the shared stack did not become healthy at {base}")
        yield base
    finally:
        running.stop_all()


def _healthy(base: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{base}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def in_process(service_urls: dict[str, str]) -> str:
    """The API served in this process (no worker, no relay, no broker): for tests of intake, permissions and
    reads whose jobs must stay queued. Returns the base that `tests.support.Api` understands."""
    from shared import db
    from shared.tenants import service as tenants
    from tests.support import IN_PROCESS

    with db.unit_of_work(db.SYSTEM_SCOPE) as session:
        tenants.ensure_operator_key(session, OPERATOR_KEY)
    return IN_PROCESS


def _phase(item: pytest.Item) -> int:
    """Tests run in three phases, so that no worker or relay runs while a test expects its jobs untouched:
    0. needs no stack (services in process, the API in process): `make test-fast`;
    1. a module with a stack of its own (`own_stack`), which it starts and stops;
    2. the shared stack (`shared_stack`), started once and kept to the end."""
    if "shared_stack" in getattr(item, "fixturenames", ()):
        return 2
    return 1 if item.get_closest_marker("own_stack") else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER") and any("test_openapi_conformance" in item.nodeid for item in items):
        # Under xdist schemathesis collapses each test's operations into one item and most operations never
        # run, silently (seen: 8 of 84). `make test-fast` runs the file in a session of its own.
        raise pytest.UsageError("run tests/api/test_openapi_conformance.py without pytest-xdist (-n)")
    for item in items:
        if _phase(item) == 2:
            item.add_marker(pytest.mark.pipeline)
    items.sort(key=_phase)  # stable: within a phase, files keep their order


# --- service tests: one connection, one outer transaction rolled back after each test ----------------------


@pytest.fixture
def db_connection(service_urls: dict[str, str]) -> Iterator[Connection]:
    """One connection of the application's engine (so it logs in as `asora_app_login` under row-level security)
    inside an outer transaction that is rolled back after the test: nothing a service test writes is ever
    committed, whatever the code under test calls."""
    from shared.db import get_engine

    with get_engine().connect() as connection:
        outer = connection.begin()
        try:
            yield connection
        finally:
            outer.rollback()


@pytest.fixture
def db_session(db_connection: Connection) -> Iterator[Session]:
    """A session on `db_connection`. It joins the outer transaction with a savepoint, so `session.commit()` and
    a service's `session.begin_nested()` release savepoints instead of committing (warehouse's
    `tests/conftest.py`). It starts unscoped, so it sees no tenant's rows: create a tenant with
    `tests.factories.tenant` (which scopes the session to it), or call `shared.db.scope_session`."""
    session = Session(bind=db_connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def db_units(db_connection: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `shared.db.unit_of_work` opened during the test (key lookups, the tenant check of an operator's
    X-Tenant-ID) runs on the test's connection, as a savepoint inside its outer transaction: it sees what the
    test wrote in `db_session`, and its commit is rolled back with everything else. The tenant scope it sets is
    put back when it ends, so it never leaks into `db_session`."""
    from shared import db

    real_unit_of_work = db.unit_of_work

    @contextmanager
    def unit_of_work(tenant_id: str | db.SystemScope | None = None) -> Iterator[Session]:
        if isinstance(tenant_id, db.SystemScope):  # the system login is another connection: a real, committed unit
            with real_unit_of_work(tenant_id) as system:
                yield system
            return
        with (
            Session(bind=db_connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as session,
            session.begin(),
        ):
            previous = session.scalar(text("SELECT current_setting('asora.tenant_id', true)"))
            if tenant_id is not None:
                db.set_tenant(session, tenant_id)
            yield session
            db.set_tenant(session, previous or "")

    monkeypatch.setattr(db, "unit_of_work", unit_of_work)


@pytest.fixture
def db_tenant(db_session: Session) -> str:
    """A new enterprise tenant (standard role model) in `db_session`, which is left scoped to it."""
    from tests import factories

    return factories.tenant(db_session)
