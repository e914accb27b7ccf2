"""The operations runbook's daily health check and weekly metrics, as functions returning structured
results (the CLI renders them as a table or JSON). Thresholds are the runbook's:
- more than 5 failed runs in the last 24 hours: a warning ("high error rate, investigation required");
- more than 3 failed runs in the last hour: an alert ("failed runs spike").
A dependency that is down, or an alert, makes the system unhealthy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.health import SEVERITY, Check

FAILED_24H_WARNING = 5
FAILED_1H_ALERT = 3


@dataclass
class HealthReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def status(self) -> str:
        worst = max((SEVERITY[c.status] for c in self.checks), default=0)
        return {0: "ok", 1: "warning", 2: "unhealthy"}[worst]

    @property
    def healthy(self) -> bool:
        return self.status != "unhealthy"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "healthy": self.healthy, "checks": [asdict(c) for c in self.checks]}


def run_activity(session: Session) -> dict[str, int]:
    """Runs of every tenant in the last 24 hours, failures in the last 24 hours and hour, and runs refused for
    their input (reported apart). A run refused for its input (VALIDATION_FAILED: bad rows, insufficient
    stock...) is the system working; only runs that failed for another reason (INTERNAL, ATTEMPTS_EXHAUSTED,
    or no recorded code) count as failures. These counts span tenants: the session is the system login's
    (`unit_of_work(SYSTEM_SCOPE)`), through `asora_sys_run_activity` (migration 0013)."""
    row = session.execute(text("SELECT * FROM asora_sys_run_activity()")).one()
    return {
        "runs_24h": int(row.runs_24h),
        "failed_24h": int(row.failed_24h),
        "failed_1h": int(row.failed_1h),
        "refused_24h": int(row.refused_24h),
    }


def activity_checks(activity: dict[str, int]) -> list[Check]:
    failed_24h, failed_1h = activity["failed_24h"], activity["failed_1h"]
    return [
        Check("runs_24h", "ok", activity["runs_24h"], "COGS runs created in the last 24 hours"),
        Check(
            "refused_runs_24h",
            "ok",
            activity.get("refused_24h", 0),
            "runs refused for their input (VALIDATION_FAILED): not a system fault",
        ),
        Check(
            "failed_runs_24h",
            "warning" if failed_24h > FAILED_24H_WARNING else "ok",
            failed_24h,
            f"high error rate (more than {FAILED_24H_WARNING}): investigation required"
            if failed_24h > FAILED_24H_WARNING
            else f"threshold: more than {FAILED_24H_WARNING} is a warning",
        ),
        Check(
            "failed_runs_1h",
            "alert" if failed_1h > FAILED_1H_ALERT else "ok",
            failed_1h,
            f"failed runs spike (more than {FAILED_1H_ALERT} in an hour)"
            if failed_1h > FAILED_1H_ALERT
            else f"threshold: more than {FAILED_1H_ALERT} is an alert",
        ),
    ]


def check_activity(session_factory: Callable[[], Any]) -> list[Check]:
    try:
        with session_factory() as session:
            return activity_checks(run_activity(session))
    except Exception as exc:
        return [Check("runs", "down", None, f"{exc.__class__.__name__}: {str(exc)[:200]}")]


def weekly_metrics(session: Session) -> dict[str, Any]:
    """The runbook's weekly figures (runs of the last 7 days, all tenants) and every table's total size.
    The session is the system login's (`asora_sys_weekly_runs`, migration 0013)."""
    row = session.execute(text("SELECT * FROM asora_sys_weekly_runs()")).one()
    tables = session.execute(
        text("""
        SELECT tablename AS table, pg_total_relation_size(format('%I.%I', schemaname, tablename)::regclass) AS bytes
        FROM pg_tables WHERE schemaname = 'public'
        ORDER BY bytes DESC, tablename""")
    ).all()
    return {
        "active_tenants_7d": int(row.active_tenants),
        "total_runs_7d": int(row.total_runs),
        "rollbacks_7d": int(row.rollbacks),
        "failed_runs_7d": int(row.failures),
        "table_sizes": [{"table": t.table, "bytes": int(t.bytes), "size": pretty_size(int(t.bytes))} for t in tables],
    }


def pretty_size(size: int) -> str:
    """Like pg_size_pretty: bytes, kB, MB, GB, TB (powers of 1024, rounded, below 10240 of each unit)."""
    for power, unit in enumerate(("bytes", "kB", "MB", "GB", "TB")):
        divisor = 1 << (10 * power)
        scaled = (size + divisor // 2) // divisor if power else size
        if scaled < 10 * 1024 or unit == "TB":
            return f"{scaled} {unit}"
    raise AssertionError("unreachable")
