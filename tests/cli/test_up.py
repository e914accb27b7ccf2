"""`asora up` runs the whole stack in the foreground and stops everything it started on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import psutil
import pytest

from shared.stack import free_port, wait_http
from tests.conftest import OPERATOR_KEY

pytestmark = pytest.mark.own_stack


def test_up_serves_until_sigterm_then_stops_its_processes(service_urls, tmp_path):
    api_port, flower_port = free_port(), free_port()
    env = {**os.environ, "ASORA_DATA_DIR": str(tmp_path), "ASORA_FLOWER_BASIC_AUTH": "ops:up-test"}
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
        _, alive = psutil.wait_procs(children, timeout=30)
        assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
