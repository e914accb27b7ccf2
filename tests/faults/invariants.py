"""The invariants every fault scenario checks against the database once its fault is over.

`check(tenants)` returns the violations it found (an empty list when every invariant holds); each is one line
naming the invariant and the rows concerned. The invariants:
- `terminal`: no accepted job lost: every job of the tenants reached a terminal state (completed or failed);
- `not-exhausted`: no valid job failed for want of attempts (ATTEMPTS_EXHAUSTED or INTERRUPTED), except the
  jobs a scenario names as poison;
- `no-partial`: every ledger event belongs to a completed job (none for a failed, queued or running one), and
  every job-outcome audit row matches its job's final status;
- `once`: each finished job has exactly one outcome audit row, its ledger events form one contiguous block
  (one commit), and no event is written twice (same job, type, lot, reference and reversed seq);
- `gapless`: per tenant the ledger's `seq` runs 1..n with no gap and so do the jobs' `seq`;
- `chain`: the hash chain verifies (shared/ledger/verify.py, the code behind `asora ledger verify`);
- `derived`: the derived tables (lot balances and statuses, run and sale totals) equal a rebuild from the
  ledger (the same verifier's derived checks);
- `not-stalled`: a fresh job given to each tenant after the fault completes (`probe`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from tests.support import FACTORY_JOB, query, sale, submit_run_direct, wait_for

INVARIANTS = ("terminal", "not-exhausted", "no-partial", "once", "gapless", "chain", "derived", "not-stalled")
PROBE_SKU = "F-PROBE"
EXHAUSTED = ("ATTEMPTS_EXHAUSTED", "INTERRUPTED")


def _rows(sql: str, tenants: Sequence[str]) -> list[Any]:
    return query(sql, {"t": list(tenants)})


def pending(tenants: Sequence[str]) -> int:
    rows = _rows("SELECT count(*) FROM jobs WHERE tenant_id = ANY(:t) AND status IN ('queued', 'running')", tenants)
    return int(rows[0][0])


def settle(tenants: Sequence[str], timeout: float = 180) -> bool:
    """Wait (bounded) until no job of the tenants is pending; returns whether that happened."""
    try:
        wait_for(lambda: pending(tenants) == 0, timeout, "jobs still pending")
    except AssertionError:
        return False
    return True


def _terminal(tenants: Sequence[str], may_fail: Collection[str]) -> list[str]:
    out = [
        f"terminal: job {r.id} (tenant {r.tenant_id}, seq {r.seq}) is still {r.status}"
        for r in _rows(
            "SELECT id, tenant_id, seq, status FROM jobs WHERE tenant_id = ANY(:t) AND status IN ('queued', 'running')",
            tenants,
        )
    ]
    for r in _rows(
        "SELECT id, error->>'reason' AS reason FROM jobs WHERE tenant_id = ANY(:t) AND status = 'failed'", tenants
    ):
        if r.reason in EXHAUSTED and r.id not in may_fail:
            out.append(f"not-exhausted: valid job {r.id} failed {r.reason}")
    return out


def _partial(tenants: Sequence[str]) -> list[str]:
    out = [
        f"no-partial: {r.n} ledger event(s) of job {r.job_id} whose status is {r.status}"
        for r in _rows(
            """SELECT e.job_id, coalesce(j.status, 'missing') AS status, count(*) AS n
               FROM ledger_events e LEFT JOIN jobs j ON j.id = e.job_id
               WHERE e.tenant_id = ANY(:t) AND e.job_id <> '"""
            + FACTORY_JOB
            + """' AND (j.id IS NULL OR j.status <> 'completed')
               GROUP BY e.job_id, j.status""",
            tenants,
        )
    ]
    out += [
        f"no-partial: audit says job {r.job_id} {r.outcome} but it is {r.status}"
        for r in _rows(
            """SELECT a.job_id, a.outcome, j.status FROM audit_events a JOIN jobs j ON j.id = a.job_id
               WHERE a.tenant_id = ANY(:t) AND a.action = 'job.' || j.kind AND a.outcome <> j.status""",
            tenants,
        )
    ]
    return out


def _once(tenants: Sequence[str]) -> list[str]:
    out = [
        f"once: job {r.id} ({r.status}) has {r.n} outcome audit rows"
        for r in _rows(
            """SELECT j.id, j.status, count(a.id) AS n FROM jobs j
               LEFT JOIN audit_events a ON a.job_id = j.id AND a.action = 'job.' || j.kind
                                         AND a.outcome IN ('completed', 'failed')
               WHERE j.tenant_id = ANY(:t) AND j.status IN ('completed', 'failed')
               GROUP BY j.id, j.status HAVING count(a.id) <> 1""",
            tenants,
        )
    ]
    out += [
        f"once: job {r.job_id}'s {r.n} ledger events span seq {r.lo}..{r.hi} (more than one commit)"
        for r in _rows(
            """SELECT job_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM ledger_events
               WHERE tenant_id = ANY(:t) AND job_id <> '"""
            + FACTORY_JOB
            + """' GROUP BY tenant_id, job_id HAVING max(seq) - min(seq) + 1 <> count(*)""",
            tenants,
        )
    ]
    out += [
        f"once: job {r.job_id} wrote {r.event_type} {r.lot_id}/{r.reference} {r.n} times"
        for r in _rows(
            """SELECT job_id, event_type, lot_id, reference, count(*) AS n FROM ledger_events
               WHERE tenant_id = ANY(:t)
               GROUP BY tenant_id, job_id, event_type, lot_id, reference, reverses_seq HAVING count(*) > 1""",
            tenants,
        )
    ]
    return out


def _gapless(tenants: Sequence[str]) -> list[str]:
    out = []
    for table in ("ledger_events", "jobs"):
        out += [
            f"gapless: tenant {r.tenant_id}'s {table} seq has {r.n} rows but runs {r.lo}..{r.hi}"
            for r in _rows(
                f"""SELECT tenant_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM {table}
                    WHERE tenant_id = ANY(:t) GROUP BY tenant_id
                    HAVING min(seq) <> 1 OR max(seq) <> count(*) OR count(DISTINCT seq) <> count(*)""",
                tenants,
            )
        ]
    return out


def _verified(tenants: Sequence[str]) -> list[str]:
    from shared.ledger.verify import snapshot, verify_ledger

    out = []
    for tenant_id in tenants:
        with snapshot(tenant_id) as session:
            result = verify_ledger(session, tenant_id)
        for d in result.remaining:
            name = "chain" if d.check.startswith("ledger") else "derived"
            out.append(f"{name}: tenant {tenant_id} {d.check} {d.key}: ledger says {d.expected}, stored {d.actual}")
        if result.chain_findings_omitted:
            out.append(f"chain: tenant {tenant_id} has {result.chain_findings_omitted} more chain findings")
    return out


def probe(tenants: Sequence[str], timeout: float = 120) -> list[str]:
    """`not-stalled`: give each tenant a fresh (dry) run, recorded as the API records one and delivered by the
    relay, and wait for each to complete."""
    jobs = {}
    for tenant_id in tenants:
        sales = [sale("PROBE-S", PROBE_SKU, "2030-01-02", "1")]
        lots = [
            {
                "lot_id": "PROBE-L",
                "sku": PROBE_SKU,
                "received_date": "2030-01-01",
                "original_quantity": "1",
                "remaining_quantity": "1",
                "unit_price": "1",
            }
        ]
        jobs[tenant_id] = submit_run_direct(tenant_id, sales, lots, dry_run=True)[1]

    def done() -> bool:
        rows = query(
            "SELECT count(*) FROM jobs WHERE id = ANY(:j) AND status = 'completed'", {"j": list(jobs.values())}
        )
        return int(rows[0][0]) == len(jobs)

    try:
        wait_for(done, timeout, "probe")
    except AssertionError:
        rows = query("SELECT tenant_id, status FROM jobs WHERE id = ANY(:j)", {"j": list(jobs.values())})
        return [f"not-stalled: tenant {r.tenant_id}'s probe job is {r.status}" for r in rows if r.status != "completed"]
    return []


def check(
    tenants: Sequence[str], *, may_fail: Collection[str] = (), with_probe: bool = True, timeout: float = 180
) -> list[str]:
    """Every invariant over the tenants' rows, after waiting (bounded) for their jobs to settle."""
    settle(tenants, timeout)
    violations = probe(tenants) if with_probe else []
    settle(tenants, 30)
    violations += _terminal(tenants, may_fail)
    violations += _partial(tenants)
    violations += _once(tenants)
    violations += _gapless(tenants)
    violations += _verified(tenants)
    return violations
