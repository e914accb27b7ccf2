"""Logging for every Asora process: one structlog configuration behind the standard library's `logging`, so
both `structlog.get_logger()` and existing `logging.getLogger()` call sites write the same lines: JSON objects
one per line (`ASORA_LOG_FORMAT=json`), or a readable console format in development.

Every line passes `redact` last before it is rendered: values under secret-looking keys and any string that
looks like an Asora API key, a webhook signing secret or a bearer credential are replaced, wherever they sit.
Context bound with `structlog.contextvars` (a request's id, a job's id, kind, tenant and attempt) is merged
into every line written while it is bound, whichever logger writes it."""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import sys
from collections.abc import Mapping
from functools import lru_cache
from typing import IO, Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["json", "console"]
REDACTED = "[redacted]"

# Keys whose values are never written, at any depth: `authorization`, `x-api-key`, `secret_key`, `password`...
_SECRET_KEY = re.compile(r"authorization|secret|passw(or)?d|token|api[_-]?key|cookie|credential|^key$", re.I)
# Strings that are credentials whatever key they sit under, in one pattern (most strings match nothing, and
# are scanned once). An Asora key is `asora_` + 43 URL-safe characters (shared/tenants/service.py): 32 or more
# after the prefix keeps identifiers such as `asora_app` readable. Credentials known by what stands before
# them keep that prefix (`pre`) and lose the value.
_SECRET_TEXT = re.compile(
    r"(?P<pre>(?-i:Bearer|Basic) "  # an Authorization header's credential (Flower's login is Basic)
    r"|[?&](?:token|key|secret|signature|sig|password|api_key|access_token)="  # ... in a URL's query
    r"|://[^/\s:@]*:(?=[^/\s@]+@))"  # ... and a URL's user:password
    r"[^\s'\"&@,;]+"
    r"|asora_[A-Za-z0-9_-]{32,}"  # an API key
    r"|whsec_[A-Za-z0-9+/=]{8,}",  # a Standard Webhooks signing secret (shared/integrations/secrets.py)
    re.I,
)
_REPLACEMENT = rf"\g<pre>{REDACTED}"
_PLAIN = (int, float, bool, type(None))
_QUIETED = ("alembic", "httpx", "httpcore", "uvicorn.access")
_HANDLER_MARK = "_asora_handler"
_listener: logging.handlers.QueueListener | None = None
_CALLER_INFO = (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)


@lru_cache(maxsize=4096)
def _secret_key(key: object) -> bool:
    return _SECRET_KEY.search(str(key)) is not None  # few distinct keys: decided once each


def _redact_value(value: Any) -> Any:
    kind = type(value)
    if kind is str:  # searched first: most strings hold nothing, and a search is cheaper than a sub
        return _SECRET_TEXT.sub(_REPLACEMENT, value) if _SECRET_TEXT.search(value) else value
    if kind in _PLAIN:
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if _secret_key(k) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    if isinstance(value, int | float) and not isinstance(value, str):  # an IntEnum member stays a number
        return value
    return _redact_value(str(value))  # anything else is written as its text: a StrEnum, a Decimal, a path


def redact(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """The last processor before rendering: no key, secret or credential reaches a log line."""
    redacted: EventDict = _redact_value(event_dict)
    return redacted


def _service(name: str) -> Processor:
    def add_service(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", name)
        return event_dict

    return add_service


def _shared_processors(service: str) -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _service(service),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
    ]


def formatter(fmt: LogFormat, service: str, *, colors: bool = False) -> structlog.stdlib.ProcessorFormatter:
    """The formatter every handler uses: structlog's own lines and stdlib records alike end as one line each,
    redacted, in `fmt` (`colors`: the console format on a terminal)."""
    renderer: Processor = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=structlog.dev.plain_traceback)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(service),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redact, renderer],
    )


class _FormattingQueueHandler(logging.handlers.QueueHandler):
    """Formats in the caller (where the contextvars are bound) and leaves only the write to the listener's
    thread: an event loop that logs never waits on a file or a pipe."""


def _library_default() -> None:
    """Until a process configures logging, structlog's lines are plain standard-library records (a CLI that
    imports a module with a structlog logger keeps its stdout to itself; a test's caplog sees them)."""
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


if not structlog.is_configured():
    _library_default()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger over the standard library's `name` (configured or not, it never prints by itself)."""
    return structlog.stdlib.get_logger(name)


def _stop_listener() -> None:
    """Write what is still queued, then stop the writer thread (at exit, or before reconfiguring)."""
    global _listener  # noqa: PLW0603 - one listener per process
    if _listener is not None:
        _listener.stop()
        _listener = None


atexit.register(_stop_listener)


def configure_logging(
    service: str,
    fmt: LogFormat | None = None,
    *,
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
    background: bool = False,
) -> None:
    """Route every log line of this process through structlog. `fmt` defaults to the settings'
    (`ASORA_LOG_FORMAT`); `background` writes from a thread of the logging module's own (the API's event
    loop). Safe to call again (a Celery pool child, a test): it replaces only the handler it installed."""
    global _listener  # noqa: PLW0603 - one listener per process, replaced on reconfiguration
    if fmt is None:
        from shared.config import get_settings

        fmt = get_settings().resolved_log_format
    structlog.configure(
        processors=[*_shared_processors(service), structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    _stop_listener()
    target = logging.StreamHandler(stream or sys.stderr)
    colors = fmt == "console" and target.stream.isatty()
    handler: logging.Handler
    if background:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        handler = _FormattingQueueHandler(records)
        handler.setFormatter(formatter(fmt, service, colors=colors))
        target.setFormatter(logging.Formatter("%(message)s"))
        _listener = logging.handlers.QueueListener(records, target)
        _listener.start()
    else:
        handler = target
        handler.setFormatter(formatter(fmt, service, colors=colors))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # No line shows where it was written from, nor the thread or process name: not computing them (the
    # logging HOWTO's "Optimization") halves the cost of a line.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.captureWarnings(True)  # a library's warning is a line like any other, not raw text on stderr
    # Chatty libraries say only what matters: alembic's start-up notes (the health check reads the revision),
    # httpx's line per request (a receiver's URL is the tenant's configuration) and uvicorn's access line (the
    # raw path and query: the API writes its own, with the route's template) stay below INFO.
    for name in _QUIETED:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Servers that install handlers and levels of their own (uvicorn's --log-level) write through ours instead,
    # at our level.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
        if name not in _QUIETED:
            server_logger.setLevel(logging.NOTSET)


def reset_logging() -> None:
    """Undo `configure_logging` (tests that configure logging to a buffer put the process back this way)."""
    _stop_listener()
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    logging.captureWarnings(False)
    for name in _QUIETED:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = _CALLER_INFO
    _library_default()
    structlog.contextvars.clear_contextvars()
