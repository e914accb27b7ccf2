"""A scratch database for a benchmark: on the configured servers, or on embedded ones started for it; the
environment points the application at it while the block runs, and everything is dropped afterwards."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import make_url


@contextmanager
def scratch_database() -> Iterator[str]:
    from shared.embedded import ensure_services, stop_embedded

    data_dir = Path(tempfile.mkdtemp(prefix="asora-bench-"))
    urls = ensure_services(os.environ.get("ASORA_DATABASE_URL"), os.environ.get("ASORA_REDIS_URL"), data_dir)
    name = f"asora_bench_{secrets.token_hex(4)}"
    admin = urls.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    database_url = make_url(urls.database_url).set(database=name).render_as_string(False)
    os.environ["ASORA_DATABASE_URL"] = database_url
    os.environ["ASORA_REDIS_URL"] = urls.redis_url
    try:
        yield database_url
    finally:
        from shared.db import get_engine

        get_engine().dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)  # an embedded cluster keeps gigabytes of WAL


def write_results(name: str, figures: dict[str, Any]) -> Path:
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    path = out / name
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path
