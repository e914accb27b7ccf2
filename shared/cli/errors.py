"""How `asora` fails: its exit codes, the one exception commands raise to explain a failure, and the command
group that turns every other exception into a readable sentence and the right exit code.

No command prints a traceback, a Python dict or `None`: a failure is one line that says what went wrong and,
when something was unreachable, which URL; API error details follow as indented lines. `ASORA_DEBUG=1`
re-raises unexpected exceptions for a developer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum
from typing import Any

import typer
from typer.core import TyperGroup

from shared.cli.output import err, escape


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the operation failed: a failed job or run, a refusal from the API, a check that did not pass
    USAGE = 2  # a bad option or argument, a missing setting (click uses 2 for its own usage errors)
    UNREACHABLE = 3  # the API, the database or Redis could not be reached (or answered 503)
    TIMED_OUT = 4  # waiting for a job (or for the stack to become healthy) took longer than allowed
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 the operation failed (a failed job or run, a refusal from the API, a check that did "
    "not pass); 2 usage error (bad option, argument or setting); 3 cannot reach the API, database or Redis; "
    "4 timed out waiting; 130 interrupted. See docs/cli.md."
)


class CliError(Exception):
    """A failure the CLI explains: a sentence, optional detail lines, and the exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED, lines: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message, self.code, self.lines = message, code, list(lines)


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_scalar(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_scalar(v) for v in value)
    return "" if value is None else str(value)


def detail_line(detail: Any) -> str:
    """One error detail as a line: `row 3, field quantity_sold: must be positive`; `limit items, max 100`."""
    if not isinstance(detail, Mapping):
        return _scalar(detail)
    message = detail.get("message")
    where = ", ".join(f"{k} {_scalar(v)}" for k, v in detail.items() if k != "message" and v not in (None, ""))
    if message and where:
        return f"{where}: {_scalar(message)}"
    return where or _scalar(message)


def error_sentence(error: Mapping[str, Any]) -> str:
    """`VALIDATION_FAILED (INSUFFICIENT_STOCK): not enough stock` from a `{code, reason, message}` envelope."""
    code, reason, message = error.get("code") or "", error.get("reason") or "", error.get("message") or ""
    label = f"{code} ({reason})" if reason and reason != code else code
    return f"{label}: {message}" if label and message else (label or message or "unknown error")


def error_lines(error: Mapping[str, Any], limit: int = 20) -> list[str]:
    details = error.get("details") or []
    if not isinstance(details, list):
        details = [details]
    lines = [detail_line(d) for d in details[:limit]]
    if len(details) > limit:
        lines.append(f"... and {len(details) - limit} more")
    return [line for line in lines if line]


def report(message: str, lines: Iterable[str] = ()) -> None:
    console = err()
    console.print(f"[red]{escape(message)}[/red]")
    for line in lines:
        console.print(f"  {escape(line)}")


def _safe_url(url: str | None) -> str:
    if not url:
        return "(not configured)"
    from sqlalchemy import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL we cannot parse is still shown, without its credentials part
        return url.split("@")[-1]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def explain(exc: Exception) -> CliError | None:
    """A CliError for the exceptions a command may meet when the world is not as it expects, or None.

    Libraries are looked up in sys.modules: an exception of a library that was never imported cannot occur,
    and importing SQLAlchemy or Redis only to classify an error would slow every command down."""
    if isinstance(exc, CliError):
        return exc
    from shared.errors import DomainError

    if isinstance(exc, DomainError):
        code = ExitCode.UNREACHABLE if exc.code == "UNAVAILABLE" else ExitCode.FAILED
        return CliError(error_sentence(exc.as_dict()), code, error_lines(exc.as_dict()))
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is not None and isinstance(exc, pydantic_core.ValidationError) and exc.title == "Settings":
        lines = [f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        return CliError("the configuration (ASORA_* environment variables) is invalid", ExitCode.USAGE, lines)
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        sqlstate = getattr(exc.orig, "sqlstate", None)
        # No SQLSTATE: the server never answered. Class 08 and 57P0x: the connection failed or was refused.
        if sqlstate is None or sqlstate.startswith(("08", "57P0")):
            url = _safe_url(os.environ.get("ASORA_DATABASE_URL"))
            return CliError(f"cannot reach the database at {url}: {_first_line(exc.orig)}", ExitCode.UNREACHABLE)
        return CliError(f"the database refused: {_first_line(exc.orig)}")
    redis_exc = sys.modules.get("redis.exceptions")
    if redis_exc is not None and isinstance(exc, redis_exc.ConnectionError | redis_exc.TimeoutError):
        url = _safe_url(os.environ.get("ASORA_REDIS_URL"))
        return CliError(f"cannot reach Redis at {url}: {_first_line(exc)}", ExitCode.UNREACHABLE)
    kombu_exc = sys.modules.get("kombu.exceptions")
    if kombu_exc is not None and isinstance(exc, kombu_exc.OperationalError):
        url = _safe_url(os.environ.get("ASORA_REDIS_URL"))
        return CliError(f"cannot reach the broker (Redis) at {url}: {_first_line(exc)}", ExitCode.UNREACHABLE)
    httpx = sys.modules.get("httpx")
    if httpx is not None and isinstance(exc, httpx.RequestError):
        return http_failure(exc)
    return None


def http_failure(exc: Any) -> CliError:
    """An httpx.RequestError as a sentence naming the URL: unreachable (3), or a read that timed out (4)."""
    import httpx

    try:
        url = str(exc.request.url)
    except RuntimeError:  # raised outside a request: no URL to name
        url = "the API"
    reason = _first_line(exc)
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return CliError(f"timed out waiting for an answer from {url}: {reason}", ExitCode.TIMED_OUT)
    return CliError(f"cannot reach {url}: {reason}", ExitCode.UNREACHABLE)


class AsoraGroup(TyperGroup):
    """The root command group: every subcommand runs inside `invoke`, so its exceptions are rendered here."""

    def invoke(self, ctx: Any) -> Any:  # Any: the context class is typer's (vendored click), not public
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # exit codes and usage errors, typer's own
            raise
        except KeyboardInterrupt:
            report("interrupted")
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except Exception as exc:
            explained = explain(exc)
            if explained is None:
                if os.environ.get("ASORA_DEBUG"):
                    raise
                explained = CliError(
                    f"unexpected error: {exc.__class__.__name__}: {_first_line(exc)} "
                    "(set ASORA_DEBUG=1 to see where it came from)"
                )
            report(explained.message, explained.lines)
            raise typer.Exit(explained.code) from None
