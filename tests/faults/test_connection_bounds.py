"""Every application connection carries the bounds the fault scenarios rely on (no stack needed): lock waits,
idle transactions, TCP keepalives on the server's side, and an application_name naming the process."""

from __future__ import annotations

import os

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
