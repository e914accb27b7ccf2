"""The CLI's HTTP client for the commands that act for a tenant: authentication from ASORA_API_KEY, API
errors rendered as sentences (never the raw envelope), waiting for a job, and uploads and downloads with
progress."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
from rich.progress import Progress, TaskID

from shared.cli.errors import CliError, ExitCode, error_lines, error_sentence, http_failure
from shared.cli.output import Written, output_file, progress
from shared.config import get_settings

TERMINAL_JOB = ("completed", "failed")
DEFAULT_TIMEOUT = 3600.0


class ApiClient:
    def __init__(self, tenant_id: str | None = None, api_url: str | None = None, api_key: str | None = None) -> None:
        settings = get_settings()
        self.url = (api_url or settings.api_url).rstrip("/")
        key = api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
        if not key:
            raise CliError(
                "ASORA_API_KEY is not set: export a tenant key (`asora keys create`), or an operator key and "
                "pass --tenant-id",
                ExitCode.USAGE,
            )
        headers = {"Authorization": f"Bearer {key}"}
        if tenant_id:
            headers["X-Tenant-ID"] = tenant_id
        self.http = httpx.Client(
            base_url=f"{self.url}/api/v1", headers=headers, timeout=httpx.Timeout(60.0, read=600.0)
        )

    def _unreachable(self, exc: httpx.RequestError) -> CliError:
        failure = http_failure(exc)
        if failure.code == ExitCode.UNREACHABLE:
            failure.lines.append(f"is the stack running (`asora up`)? ASORA_API_URL is {self.url}")
        return failure

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.RequestError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise refusal(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def wait_job(self, job_id: str, label: str, timeout: float = DEFAULT_TIMEOUT, hint: str = "") -> dict[str, Any]:
        """Poll the job until it completes or fails; exit code 4 after `timeout` seconds (the job goes on)."""
        deadline = time.monotonic() + timeout
        with progress() as bar:
            task = bar.add_task(label)
            while True:
                job: dict[str, Any] = self.json("GET", f"/jobs/{job_id}")
                bar.update(task, description=f"{label}: {job['status']}")
                if job["status"] in TERMINAL_JOB:
                    return job
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
        raise CliError(
            f"timed out after {timeout:g} s waiting for job {job_id} (still {job['status']}); it goes on without us",
            ExitCode.TIMED_OUT,
            [hint] if hint else [],
        )

    def download(self, path: str, dest: Path | None, params: dict[str, Any] | None = None) -> tuple[Written, str]:
        """Stream `path` to `dest` (`-`: stdout; None: the server's filename in the current directory).
        Returns what was written and the server's filename."""
        try:
            with self.http.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise refusal(response)
                filename = attachment_name(response.headers.get("content-disposition", "")) or Path(path).name
                total = int(response.headers.get("content-length") or 0) or None
                with output_file(dest or Path(filename)) as (stream, written), progress(bytes_total=True) as bar:
                    task = bar.add_task(f"downloading {filename}", total=total)
                    for chunk in response.iter_bytes():
                        stream.write(chunk)
                        written.update(chunk)
                        bar.advance(task, len(chunk))
        except httpx.RequestError as exc:
            raise self._unreachable(exc) from exc
        return written, filename


def raise_if_failed(job: dict[str, Any], failed: str) -> None:
    """A waited-for job that ended failed, as `failed` ("the export failed") and its error's sentence and lines."""
    if job["status"] == "failed":
        error = job.get("error") or {}
        raise CliError(f"{failed}: {error_sentence(error)}", lines=error_lines(error))


def refusal(response: httpx.Response) -> CliError:
    """An error answer as a sentence and readable detail lines; 503 (a dependency down) exits 3."""
    code = ExitCode.UNREACHABLE if response.status_code == 503 else ExitCode.FAILED
    where = f"{response.request.method} {response.request.url}"
    try:
        error = response.json()["error"]
        sentence = error_sentence(error)
    except (ValueError, KeyError, TypeError, AttributeError):
        text = " ".join(response.text.split())[:300]
        return CliError(f"{where} answered {response.status_code}: {text or response.reason_phrase}", code)
    lines = error_lines(error)
    if response.status_code == 401:
        lines.append("check ASORA_API_KEY: the API does not know this key, or it was revoked")
    if error.get("request_id") or response.headers.get("x-request-id"):
        lines.append(f"request id {error.get('request_id') or response.headers['x-request-id']}")
    return CliError(f"{response.status_code} {sentence}", code, lines)


def attachment_name(content_disposition: str) -> str | None:
    """The filename of a `Content-Disposition: attachment; filename="..."` header, without any directory."""
    found = re.search(r'filename="?([^";]+)"?', content_disposition)
    return Path(found.group(1)).name if found else None


class ProgressReader:
    """A file wrapper that advances a progress bar as httpx reads it for the multipart body."""

    def __init__(self, path: Path, bar: Progress, task_id: TaskID) -> None:
        self.handle = path.open("rb")
        self.name = path.name
        self.bar, self.task_id = bar, task_id

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.bar.advance(self.task_id, len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()

    def close(self) -> None:
        self.handle.close()
