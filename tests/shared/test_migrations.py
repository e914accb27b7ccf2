"""Migrations: an empty database upgrades to head and downgrades to base; models match migrations."""

from __future__ import annotations

import secrets

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, make_url

from shared.db import make_engine
from shared.migrate import downgrade, upgrade
from shared.models import Base


def _scratch_database(admin_url: str) -> tuple[str, str]:
    name = f"asora_mig_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name, make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def test_upgrade_to_head_then_downgrade_to_base(service_urls):
    name, url = _scratch_database(service_urls["admin_url"])
    engine = make_engine(url)
    try:
        upgrade(url)
        tables = set(inspect(engine).get_table_names())
        assert {"tenants", "api_keys", "jobs", "runs", "lots", "ledger_events", "audit_events"} <= tables
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        downgrade(url)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(url)  # and back up again: downgrades leave nothing behind that blocks a re-run
    finally:
        engine.dispose()
        with psycopg.connect(
            service_urls["admin_url"].replace("postgresql+psycopg://", "postgresql://"), autocommit=True
        ) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
