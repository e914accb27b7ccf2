"""Starting and stopping the local stack for `asora up` and `asora demo`, and `asora migrate` and `asora down`.

Start-up either succeeds whole or leaves nothing behind: the API and Flower ports are checked before anything
starts; a child that exits while the stack comes up stops everything this command started (the embedded
PostgreSQL and Redis included, never servers that were running before it) and names the child and its log.
The operator key and the Flower login are generated once and kept in the data directory, readable only by
their owner; the CLI prints where they are, never the secrets themselves.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.cli.errors import CliError, ExitCode
from shared.cli.output import info, progress, success
from shared.cli.services import ensure_services
from shared.config import Settings, get_settings
from shared.embedded import ServiceUrls, stop_embedded
from shared.ports import port_holder, port_in_use
from shared.stack import Stack, StartupFailed, StartupTimedOut, service_env

HEALTH_TIMEOUT = 90.0
PROCESS_LABELS = {"api": "the API", "worker": "the worker", "relay": "the outbox relay", "flower": "Flower"}
LOG_LINES_SHOWN = 5


@dataclass(frozen=True)
class Running:
    stack: Stack
    urls: ServiceUrls
    data_dir: Path
    api_url: str
    flower_url: str
    operator_key: str
    flower_user: str
    flower_password_source: str  # the file that holds it, or the variable it came from


def check_ports(ports: dict[str, tuple[int, str]]) -> None:
    """Refuse at once, before starting anything, when a port we are asked to serve on is taken."""
    if len({port for port, _ in ports.values()}) < len(ports):
        raise CliError(f"the ports must differ: {', '.join(f'{o} {p}' for p, o in ports.values())}", ExitCode.USAGE)
    for label, (port, option) in ports.items():
        if port_in_use(port):
            holder = port_holder(port)
            raise CliError(
                f"port {port} ({label}) is already in use{f' by {holder}' if holder else ''}; nothing was started",
                lines=[f"stop what holds it, or choose another port with {option}"],
            )


def _secret_file(path: Path, make: Callable[[], str]) -> str:
    """The secret kept in `path`, made and written (mode 0600 from the first byte) when the file is missing."""
    if path.exists():
        return path.read_text().strip()
    value = make()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def operator_key(settings: Settings) -> str:
    if settings.bootstrap_operator_key:
        return settings.bootstrap_operator_key.get_secret_value()
    return _secret_file(settings.data_dir / "operator.key", lambda: "asora_" + secrets.token_urlsafe(32))


def flower_login(settings: Settings) -> tuple[str, str]:
    """(user:password, where the password is kept): ASORA_FLOWER_BASIC_AUTH, or `flower.auth`."""
    if settings.flower_basic_auth:
        return settings.flower_basic_auth.get_secret_value(), "ASORA_FLOWER_BASIC_AUTH"
    path = settings.data_dir / "flower.auth"
    auth = _secret_file(path, lambda: f"admin:{secrets.token_urlsafe(18)}")
    if ":" not in auth:
        raise CliError(f"{path} must hold user:password (delete it to have a new login made)", ExitCode.USAGE)
    return auth, str(path)


def _log_tail(path: Path) -> list[str]:
    try:
        lines = [line.rstrip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return []
    return [_readable(line) for line in lines[-LOG_LINES_SHOWN:]]


def _readable(line: str) -> str:
    """A JSON log line (shared/logs.py) as a person reads it: its level and event, and an exception's last
    line rather than its traceback."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict) or "event" not in entry:
        return line
    exception = str(entry.get("exception") or "").strip().splitlines()
    return f"{entry.get('level', 'info')}: {entry['event']}" + (f" ({exception[-1]})" if exception else "")


def _stop(stack: Stack | None, urls: ServiceUrls, data_dir: Path) -> list[str]:
    if stack is not None:
        stack.stop_all()
    return stop_embedded(data_dir, only=urls.started) if urls.started else []


def start(api_port: int, flower_port: int, health_timeout: float = HEALTH_TIMEOUT) -> Running:
    """Start the stack and wait until `GET /health` answers 200, or stop what was started and raise."""
    from shared.migrate import upgrade

    check_ports({"the API": (api_port, "--api-port"), "Flower": (flower_port, "--flower-port")})
    settings = get_settings()
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    stack: Stack | None = None
    with progress() as bar:
        task = bar.add_task("starting PostgreSQL and Redis")
        urls = ensure_services()
        try:
            bar.update(task, description="migrating the database")
            upgrade(urls.database_url)
            key = operator_key(settings)
            flower_auth, flower_source = flower_login(settings)
            env = service_env(
                urls,
                {
                    "ASORA_BOOTSTRAP_OPERATOR_KEY": key,
                    "FLOWER_BASIC_AUTH": flower_auth,
                    "FLOWER_UNAUTHENTICATED_API": "false",
                },
            )
            stack = Stack(env=env, log_dir=settings.data_dir / "logs")
            bar.update(task, description="starting the API, the workers, the relay and Flower")
            stack.start_api(api_port)
            stack.start_workers()
            stack.start_relay()
            stack.start_flower(flower_port, state_file=settings.data_dir / "flower.db")
            bar.update(task, description="waiting until every dependency answers")
            stack.wait_healthy(f"http://127.0.0.1:{api_port}/health", timeout=health_timeout)
        except StartupFailed as exc:
            stopped = _stop(stack, urls, settings.data_dir)
            raise CliError(
                f"{PROCESS_LABELS.get(exc.name, exc.name)} exited with code {exc.returncode} during start-up; "
                f"everything this command started was stopped{_also(stopped)}",
                lines=[f"its log: {exc.log}", *_log_tail(exc.log)],
            ) from None
        except StartupTimedOut as exc:
            stopped = _stop(stack, urls, settings.data_dir)
            checks = (exc.last or {}).get("checks") or {}
            down = ", ".join(f"{name} {state}" for name, state in checks.items() if state != "ok")
            raise CliError(
                f"the stack did not become healthy within {exc.timeout:.0f} s; everything this command started "
                f"was stopped{_also(stopped)}",
                ExitCode.TIMED_OUT,
                [*([f"/health said: {down}"] if down else []), f"logs in {settings.data_dir / 'logs'}"],
            ) from None
        except BaseException:
            _stop(stack, urls, settings.data_dir)
            raise
    flower_user = flower_auth.split(":", 1)[0]
    return Running(
        stack,
        urls,
        settings.data_dir,
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{flower_port}",
        key,
        flower_user,
        flower_source,
    )


def _also(stopped: list[str]) -> str:
    return f" (embedded {' and '.join(stopped)} included)" if stopped else ""


def announce(running: Running) -> None:
    """Where everything is: URLs, the Flower login and the operator key's file (never the secrets)."""
    success(f"API     {running.api_url}  (OpenAPI docs at {running.api_url}/docs)")
    success(f"Flower  {running.flower_url}  user {running.flower_user}, password in {running.flower_password_source}")
    key_file = running.data_dir / "operator.key"
    if get_settings().bootstrap_operator_key:
        info("operator key: the one in ASORA_BOOTSTRAP_OPERATOR_KEY")
    else:
        info(f"operator key in {key_file}  (ASORA_API_KEY=$(cat {key_file}) for the CLI's API commands)")
    info(f"data, logs and Flower's task history (flower.db) in {running.data_dir}")
    embedded = {"postgresql"} if running.urls.embedded_database else set()
    left = sorted((embedded | ({"redis"} if running.urls.embedded_redis else set())) - running.urls.started)
    if left:
        info(f"embedded {' and '.join(left)} were running before and keep running after this; `asora down` stops them")
    elif running.urls.started:
        info("the embedded servers stop with this command; should they ever be left running, `asora down` stops them")


def stop(running: Running) -> None:
    stopped = _stop(running.stack, running.urls, running.data_dir)
    info(f"stopped the API, worker, relay and Flower{_also(stopped)}")


def migrate() -> None:
    from shared.migrate import upgrade

    urls = ensure_services()
    upgrade(urls.database_url)
    success("the database is at the newest revision")
    if urls.started:
        info(f"embedded {' and '.join(sorted(urls.started))} keep running; `asora down` stops them")


def down() -> None:
    data_dir = get_settings().data_dir
    stopped = stop_embedded(data_dir)
    info(f"stopped: {', '.join(stopped)} (under {data_dir})" if stopped else f"nothing was running under {data_dir}")
