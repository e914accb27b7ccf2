"""Process configuration: one pydantic-settings object read from `ASORA_*` environment variables."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_SECRET = "asora-development-secret-not-for-production"  # noqa: S105 - refused outside development


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/asora`, else `~/.local/share/asora`: one place per user, so every command finds the same
    embedded servers and keys whatever its working directory. A relative XDG_DATA_HOME is ignored, as the XDG
    base directory specification asks."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "asora"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASORA_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    # The owner's URL (migrations). The processes log in as the narrow roles derived from it (shared/dblogin.py)
    # unless an operator gives their URLs.
    database_url: str | None = None
    app_database_url: str | None = None
    ops_database_url: str | None = None
    redis_url: str | None = None
    # The embedded servers, their logs, the generated operator key and Flower login (docs/cli.md).
    data_dir: Path = Field(default_factory=default_data_dir)
    secret_key: SecretStr = SecretStr(DEVELOPMENT_SECRET)
    # Earlier values of ASORA_SECRET_KEY (comma-separated): what was encrypted under them stays readable.
    previous_secret_keys: SecretStr = SecretStr("")
    bootstrap_operator_key: SecretStr | None = None
    flower_basic_auth: SecretStr | None = None
    # `json` (one object per line) or `console` (readable); unset: console in development, json elsewhere.
    # `asora up` sets json for the processes it starts (their logs under the data dir). See shared/logs.py.
    log_format: Literal["json", "console"] | None = None

    # How long an API process trusts a key it has looked up: a revoked key stops working within this time.
    api_key_cache_seconds: float = Field(default=2.0, ge=0, le=5)

    api_url: str = "http://127.0.0.1:8000"
    api_key: SecretStr | None = None

    # Job execution: a worker's lease on a tenant must outlive a heartbeat interval several times over,
    # and the broker's visibility timeout must outlive the task time limit so a slow job is not redelivered.
    tenant_lock_lease_seconds: int = 60
    heartbeat_seconds: int = 10
    job_stale_after_seconds: int = 120
    # Attempts that raised (a bug, a poison input) and attempts whose worker died without a word are capped
    # apart; a lost worker's job is retried after a back-off that doubles from this.
    job_max_attempts: int = 3
    job_max_lost_attempts: int = 5
    job_retry_backoff_seconds: float = 5.0
    # One job's time budget (Celery's limits are derived from it), and how long one drain keeps claiming
    # new jobs before it hands the stream to a fresh task.
    task_time_limit_seconds: int = 1800
    drain_budget_seconds: float = 60.0
    relay_interval_seconds: float = 1.0
    # A queued job whose message may have been lost (a Redis restart, a wake-up dropped while another
    # worker held the tenant's lease) is published again after this long.
    relay_republish_after_seconds: int = 30
    # How often the relay looks for running jobs whose worker stopped heartbeating (the reaper).
    relay_reap_interval_seconds: float = 15.0
    # The relay touches this file on every turn of its loop (the k8s liveness probe checks its age).
    relay_alive_file: Path | None = None
    # Redis redelivers an unacknowledged message after this long; 0 derives it from the task time limit (the
    # fault tests set it shorter than a job to force duplicate delivery while the first copy still runs).
    broker_visibility_timeout_seconds: int = 0
    idempotency_retention_days: int = 7
    # Every lock wait is bounded: a request or job that waits longer than this for a row lock, the tenant's
    # counter or its fence gives up (503 for a request, a retry for a job) instead of queueing forever.
    db_lock_timeout_ms: int = 5000
    # A transaction left idle this long (a frozen or partitioned process) is ended by PostgreSQL, which
    # releases its locks and the tenant's fence.
    db_idle_in_transaction_timeout_ms: int = 60_000
    # Threads per API process for routes and database work (each holds at most one database connection).
    api_threads: int = Field(default=8, ge=1, le=200)
    # API statements only (reports, intake): a query that runs longer answers 503 instead of holding a thread.
    api_statement_timeout_ms: int = 30_000
    max_upload_bytes: int = Field(default=512 * 1024 * 1024)
    max_json_bytes: int = Field(default=128 * 1024 * 1024)
    # Integrations. Receivers on private or loopback addresses are refused unless this is on (it is, unless
    # set, in development and tests; off in production). The check is made again at dispatch, after DNS.
    integrations_allow_private: bool | None = None
    integrations_connect_timeout_seconds: float = 5.0
    integrations_read_timeout_seconds: float = 10.0
    # After rotate-secret, deliveries are also signed with the previous secret for this long.
    integrations_rotation_grace_seconds: int = 24 * 3600

    # Fault injection for the crash and concurrency tests: hold every job's transaction open this long
    # after its work is written and before it commits. Refused in production.
    debug_job_delay_seconds: float = 0.0

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        # Made absolute once, here: a relative ASORA_DATA_DIR means the same directory to every child process
        # and to every later command, wherever they run.
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Settings:
        if self.environment == "production" and self.secret_key.get_secret_value() == DEVELOPMENT_SECRET:
            raise ValueError("ASORA_SECRET_KEY must be set in production")
        if self.environment == "production" and self.debug_job_delay_seconds:
            raise ValueError("ASORA_DEBUG_JOB_DELAY_SECONDS is a test setting and is refused in production")
        return self

    @property
    def resolved_log_format(self) -> Literal["json", "console"]:
        if self.log_format is not None:
            return self.log_format
        return "console" if self.environment == "development" else "json"

    @property
    def allow_private_receivers(self) -> bool:
        if self.integrations_allow_private is not None:
            return self.integrations_allow_private
        return self.environment != "production"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
