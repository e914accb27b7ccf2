"""Alembic environment: runs as the database owner (not `asora_app`), one transaction per migration,
with lock and statement timeouts so a migration never queues behind live traffic for long."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from shared.db import make_engine
from shared.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by the caller"
    engine = make_engine(url, application_name="asora:migrate")
    with engine.connect() as connection:
        connection.execute(text("SET lock_timeout = '10s'"))
        connection.execute(text("SET statement_timeout = '10min'"))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            transaction_per_migration=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `asora migrate`")
run_migrations_online()
