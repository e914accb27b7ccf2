"""`asora up` runs the whole stack in the foreground and stops everything it started on SIGTERM; it fails
fast on a busy port, stops what it started when a child dies during start-up, and every command finds the
same embedded servers from any working directory."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from shared.stack import free_port, wait_http
from tests.conftest import OPERATOR_KEY

pytestmark = pytest.mark.own_stack


def asora(env, *args, cwd=None, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "shared.cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def embedded_env(data_dir: Path | None, **extra: str) -> dict[str, str]:
    """No database or Redis configured, so the CLI starts embedded servers under `data_dir` (or under the
    default data dir when None: then set XDG_DATA_HOME or HOME in `extra`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ASORA_DATABASE_URL", "ASORA_REDIS_URL", "ASORA_DATA_DIR")}
    if data_dir is not None:
        env["ASORA_DATA_DIR"] = str(data_dir)
    return env | extra


def embedded_servers(data_dir: Path) -> list[psutil.Process]:
    """PostgreSQL and Redis processes working in `data_dir` (both run with their data directory as cwd)."""
    found = []
    for proc in psutil.process_iter(["name", "cwd"]):
        name, cwd = proc.info["name"] or "", proc.info["cwd"] or ""
        if ("postgres" in name or "redis" in name) and cwd.startswith(str(data_dir.resolve())):
            found.append(proc)
    return found


def stack_processes(*ports: int) -> list[psutil.Process]:
    """Our API or Flower processes serving on one of `ports`."""
    wanted = {str(p) for p in ports} | {f"--port={p}" for p in ports}
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if wanted & set(proc.info["cmdline"] or ()):
            found.append(proc)
    return found


def test_up_serves_until_sigterm_then_stops_its_processes(service_urls, tmp_path):
    api_port, flower_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "ASORA_FLOWER_BASIC_AUTH"} | {"ASORA_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli.main", "up", "--api-port", str(api_port), "--flower-port", str(flower_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        assert wait_http(f"http://127.0.0.1:{api_port}/health", timeout=90), "the API never answered"
        assert wait_http(f"http://127.0.0.1:{api_port}/health", timeout=60), "the stack never became healthy"
        health = httpx.get(f"http://127.0.0.1:{api_port}/health", timeout=10).json()
        assert health["checks"] == dict.fromkeys(("database", "redis", "broker", "workers", "migrations"), "ok")
        assert wait_http(f"http://127.0.0.1:{flower_port}/healthcheck", timeout=60)
        assert httpx.get(f"http://127.0.0.1:{flower_port}/", timeout=5).status_code == 401
        # The Flower login was generated once, kept 0600 in the data dir, and it is the one Flower wants.
        auth_file = tmp_path / "flower.auth"
        assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
        user, password = auth_file.read_text().strip().split(":", 1)
        assert user == "admin" and len(password) >= 16
        flower = httpx.get(f"http://127.0.0.1:{flower_port}/", timeout=5, auth=(user, password))
        assert flower.status_code == 200
        runs = httpx.get(
            f"http://127.0.0.1:{api_port}/api/v1/runs", timeout=10, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}
        )
        assert runs.status_code == 403  # an operator must name a tenant: the bootstrap key works

        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 4
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=90)[0].decode()
        assert proc.returncode == 0, output
        assert "stopping" in output
        assert f"user admin, password in {auth_file}" in output
        assert password not in output
        # Flower ran in persistent mode under the data dir, and saved its task history when it stopped.
        assert list(tmp_path.glob("flower.db*")), "Flower kept no task history in the data dir"
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("busy", ["--api-port", "--flower-port"])
def test_a_busy_port_fails_within_seconds_and_starts_nothing(tmp_path, busy):
    data_dir = tmp_path / "data"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        ports = {"--api-port": free_port(), "--flower-port": free_port()} | {busy: taken}
        # Fast by construction, not by a clock: the ports are checked before anything starts or is waited for,
        # so the refusal comes before the data dir, an embedded server or a log exists (the timeout only
        # guards against a hang; the 90 s health wait would leave logs and servers behind).
        result = asora(embedded_env(data_dir), "up", *(str(x) for pair in ports.items() for x in pair), timeout=60)
    assert result.returncode == 1, result.stderr
    assert not data_dir.exists(), "up got past the port check before refusing"
    assert f"port {taken} " in result.stderr
    assert "nothing was started" in result.stderr
    assert busy in result.stderr
    assert embedded_servers(data_dir) == []
    assert not (data_dir / "pg").exists()


def test_a_child_that_exits_during_start_up_stops_everything_up_started(tmp_path):
    """The API refuses to start (uvicorn reads UVICORN_* options from the environment): `up` says which
    process failed and where its log is, and stops the worker, relay, Flower and the embedded servers."""
    data_dir = tmp_path / "data"
    api_port, flower_port = free_port(), free_port()
    env = embedded_env(data_dir, UVICORN_LOOP="no-such-loop")
    result = asora(env, "up", "--api-port", str(api_port), "--flower-port", str(flower_port))
    assert result.returncode == 1, result.stderr
    assert "the API exited with code" in result.stderr
    assert f"its log: {data_dir / 'logs' / 'api.log'}" in result.stderr
    assert "embedded redis and postgresql included" in result.stderr
    assert "Traceback" not in result.stderr
    assert embedded_servers(data_dir) == []
    assert stack_processes(api_port, flower_port) == []


def test_every_command_finds_the_same_embedded_servers_from_any_directory(tmp_path):
    """Nothing configured but XDG_DATA_HOME: `migrate` in one directory starts the embedded servers, `up` in
    another uses them (and, failing, leaves them running: they are not its own), `down` in a third stops
    them. No directory gets a stray `.asora`."""
    xdg = tmp_path / "xdg"
    data_dir = xdg / "asora"
    env = embedded_env(None, XDG_DATA_HOME=str(xdg))
    dirs = [tmp_path / name for name in ("a", "b", "c")]
    for d in dirs:
        d.mkdir()
    try:
        migrated = asora(env, "migrate", cwd=dirs[0])
        assert migrated.returncode == 0, migrated.stderr
        servers = {p.pid for p in embedded_servers(data_dir)}
        assert servers, "migrate started no embedded server under the default data dir"

        failed = asora(env | {"UVICORN_LOOP": "no-such-loop"}, "up", "--api-port", str(free_port()), cwd=dirs[1])
        assert failed.returncode == 1, failed.stderr
        assert "embedded" not in failed.stderr.split("exited", 1)[1].splitlines()[0]
        assert {p.pid for p in embedded_servers(data_dir)} == servers

        stopped = asora(env, "down", cwd=dirs[2])
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped: redis, postgresql" in stopped.stderr
        assert str(data_dir) in stopped.stderr
        assert embedded_servers(data_dir) == []
        assert not any((d / ".asora").exists() for d in dirs)
    finally:
        asora(env, "down")
