"""What every `asora` command needs before it talks to the database: the service URLs (configured, or the
embedded servers under the data directory, started on demand) exported for child processes, and a
system-scope session for the administrator commands that span tenants."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from shared.config import get_settings
from shared.embedded import ServiceUrls


def ensure_services() -> ServiceUrls:
    """Configured URLs, or embedded servers under the data directory; exported for child processes."""
    from shared import db
    from shared.embedded import ensure_services as start

    settings = get_settings()
    urls = start(settings.database_url, settings.redis_url, settings.data_dir)
    os.environ["ASORA_DATABASE_URL"] = urls.database_url
    os.environ["ASORA_REDIS_URL"] = urls.redis_url
    os.environ["ASORA_DATA_DIR"] = str(settings.data_dir)
    get_settings.cache_clear()
    db.reset_engines()
    return urls


@contextmanager
def system_session() -> Iterator[Session]:
    from shared import db

    with db.unit_of_work(db.SYSTEM_SCOPE) as session:
        yield session
