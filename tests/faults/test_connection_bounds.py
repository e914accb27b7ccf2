"""Every application connection carries the bounds the fault scenarios rely on (no stack needed): lock waits,
idle transactions, TCP keepalives on the server's side, and an application_name naming the process."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text


def test_a_connection_bounds_lock_waits_idle_transactions_and_dead_peers(service_urls: dict[str, str]) -> None:
    from shared import db
    from shared.config import get_settings

    settings = get_settings()
    with db.unit_of_work() as session:
        shown = {
            name: session.execute(text(f"SELECT current_setting('{name}')")).scalar_one()
            for name in (
                "lock_timeout",
                "idle_in_transaction_session_timeout",
                "tcp_keepalives_idle",
                "tcp_keepalives_interval",
                "tcp_keepalives_count",
                "tcp_user_timeout",
                "application_name",
            )
        }
    assert shown["lock_timeout"] in (f"{settings.db_lock_timeout_ms}ms", f"{settings.db_lock_timeout_ms // 1000}s")
    assert shown["idle_in_transaction_session_timeout"] != "0"
    # Over TCP the server keeps these for the session (on a Unix socket it shows 0: nothing to partition).
    if "host=" not in service_urls["database_url"]:
        assert (shown["tcp_keepalives_idle"], shown["tcp_keepalives_count"]) == ("30", "3")
        assert shown["tcp_user_timeout"] == "60000"
    assert shown["application_name"].startswith("asora:")
    assert shown["application_name"].endswith(f":{os.getpid()}")


def test_a_fence_holder_frozen_mid_copy_is_ended_by_the_reaper(service_urls: dict[str, str]) -> None:
    """A worker frozen in the middle of a COPY (SIGSTOP, a partition) holds its stream's fence in an *active*
    statement that waits on the client: `idle_in_transaction_session_timeout` never applies and keepalives pass.
    The reaper ends that backend once the running job's heartbeat is stale, and reaps the job on its next look.
    A holder merely idle in its transaction is left to PostgreSQL's timeout."""
    import psycopg
    from sqlalchemy import func, select
    from sqlalchemy.exc import OperationalError

    from shared import db, registry
    from shared.config import get_settings
    from shared.jobs import runner
    from shared.locks import fence_key
    from tests.support import create_tenant_direct, lot, owner_connection, sale, submit_run_direct, wait_for

    settings = get_settings()
    tenant_id = create_tenant_direct("frz")
    _, job_id = submit_run_direct(
        tenant_id, [sale("S1", "F-1", "2024-01-02", "1")], [lot("L1", "F-1", "2024-01-01", "5", "2")]
    )
    with owner_connection(service_urls) as owner:
        owner.execute(
            "UPDATE jobs SET status = 'running', attempts = 1, worker = 'frozen@test',"
            " heartbeat_at = now() - interval '1 hour' WHERE id = %s",
            (job_id,),
        )

    def end_holder() -> int:
        with db.unit_of_work(db.SYSTEM_SCOPE) as system:
            return int(system.scalar(text("SELECT asora_sys_end_frozen_fence_holder(:k)"), {"k": fence_key(tenant_id)}))

    def reaped(action: str) -> bool:
        return any(
            o["job_id"] == job_id and o["action"] == action for o in runner.reap_stale_jobs(settings, registry.TABLE)
        )

    def freeze_mid_copy() -> None:
        with db.unit_of_work(tenant_id) as session:
            session.execute(select(func.pg_advisory_xact_lock(fence_key(tenant_id))))
            session.execute(text("CREATE TEMP TABLE tmp_frozen (n integer) ON COMMIT DROP"))
            assert end_holder() == 0, "a holder idle in its transaction is PostgreSQL's timeout's to end"
            raw = session.connection().connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur, cur.copy("COPY tmp_frozen (n) FROM STDIN") as copy:
                copy.write_row([1])
                # The holder now waits on its client, as a frozen worker's would; the job's heartbeat is stale.
                assert wait_for(lambda: reaped("holder_ended"), 20, "the reaper never ended the frozen holder")
                wait_for(lambda: reaped("requeued"), 20, "the job was not reaped once its fence was free")
                copy.write_row([2])

    with pytest.raises((psycopg.OperationalError, OperationalError)):
        freeze_mid_copy()  # the holder's connection was ended under it
    with owner_connection(service_urls) as owner:
        row = owner.execute("SELECT status, lost_attempts FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row == ("queued", 1), row
