"""A small HTTP client for the CLI's API-facing commands, with upload progress."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from shared.config import get_settings

console = Console(stderr=True)
TERMINAL = ("completed", "failed", "validated", "rolled_back")


class ApiClient:
    def __init__(self, tenant_id: str | None = None, api_url: str | None = None, api_key: str | None = None) -> None:
        settings = get_settings()
        key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
        if not key:
            console.print("[red]ASORA_API_KEY is not set (a tenant key, or an operator key with --tenant-id)[/red]")
            raise typer.Exit(2)
        headers = {"Authorization": f"Bearer {key}"}
        if tenant_id:
            headers["X-Tenant-ID"] = tenant_id
        self.http = httpx.Client(
            base_url=(api_url or settings.api_url).rstrip("/") + "/api/v1",
            headers=headers,
            timeout=httpx.Timeout(60.0, read=600.0),
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            console.print(f"[red]cannot reach the API: {exc.__class__.__name__}[/red]")
            raise typer.Exit(3) from exc
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                console.print(
                    f"[red]{response.status_code} {error['code']} {error.get('reason') or ''}: {error['message']}[/red]"
                )
                for detail in error.get("details", [])[:20]:
                    console.print(f"  {detail}")
            except (ValueError, KeyError):
                console.print(f"[red]{response.status_code}: {response.text[:500]}[/red]")
            raise typer.Exit(1)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def wait_job(self, job_id: str, label: str, timeout: float = 3600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
        ) as progress:
            task = progress.add_task(label)
            while time.monotonic() < deadline:
                job: dict[str, Any] = self.json("GET", f"/jobs/{job_id}")
                progress.update(task, description=f"{label}: {job['status']}")
                if job["status"] in ("completed", "failed"):
                    return job
                time.sleep(0.5)
        console.print("[red]timed out waiting for the job[/red]")
        raise typer.Exit(4)


class ProgressReader:
    """A file wrapper that advances a progress bar as httpx reads it for the multipart body."""

    def __init__(self, path: Path, progress: Progress, task_id: Any) -> None:
        self.handle = path.open("rb")
        self.name = path.name
        self.progress, self.task_id = progress, task_id

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.progress.advance(self.task_id, len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def close(self) -> None:
        self.handle.close()


def upload_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
