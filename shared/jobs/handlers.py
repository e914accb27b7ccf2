"""What each job kind does. Domains register a handler; the runner calls it inside the tenant's fenced
transaction. Handlers raise DomainError for a deterministic failure and never commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.orm import Session

from shared.errors import DomainError
from shared.jobs.models import Job


class JobHandler(Protocol):
    def execute(self, session: Session, job: Job) -> dict[str, Any] | None:
        """Do the work; runs in the same transaction that marks the job completed."""

    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        """Mirror a queued/running/failed job status onto the domain row (e.g. the run)."""


_HANDLERS: dict[str, JobHandler] = {}


def register(kind: str) -> Callable[[type[Any]], type[Any]]:
    def decorate(cls: type[Any]) -> type[Any]:
        _HANDLERS[kind] = cls()
        return cls

    return decorate


def handler_for(kind: str) -> JobHandler:
    if not _HANDLERS:
        load_handlers()
    return _HANDLERS[kind]


def load_handlers() -> None:
    """Import the modules that register handlers (kept lazy to avoid import cycles)."""
    import shared.exports.handlers
    import shared.inventory.handlers
    import shared.runs.handlers  # noqa: F401
