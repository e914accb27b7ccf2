"""The benchmarks' own correctness checks must fail when the order they guard is broken."""

from __future__ import annotations

from tests.benchmarks.harness import AcceptedJob, order_violations, percentile


def job(job_id: str, seq: int, seen: int, tenant_id: str = "t-a", thread: int = 1) -> AcceptedJob:
    return AcceptedJob(job_id, tenant_id, seq, thread, seen)


def test_jobs_numbered_in_the_order_their_client_saw_them_accepted_pass() -> None:
    jobs = [job("j1", 1, 0), job("j2", 2, 1), job("j3", 3, 2)]
    cases, violations = order_violations(jobs, {1: ["j1", "j2", "j3"]})
    assert (cases, violations) == (2, [])


def test_a_job_numbered_before_one_already_accepted_is_a_violation() -> None:
    # j2 was written after the thread had received j3's 202 (and j1's), yet j2 has the lower seq
    jobs = [job("j1", 1, 0), job("j3", 3, 0), job("j2", 2, 2)]
    cases, violations = order_violations(jobs, {1: ["j3", "j1", "j2"]})
    assert cases == 1
    assert violations == ["j2 (t-a seq 2) after seq 3"]


def test_other_tenants_and_other_threads_impose_no_order() -> None:
    jobs = [
        job("a2", 2, 0, tenant_id="t-a"),
        job("b1", 1, 1, tenant_id="t-b"),  # another tenant: its seq is unrelated to a2's
        job("a1", 1, 0, tenant_id="t-a", thread=2),  # another thread: it never saw a2's answer
    ]
    cases, violations = order_violations(jobs, {1: ["a2", "b1"], 2: ["a1"]})
    assert (cases, violations) == (0, [])


def test_answers_other_than_202_are_skipped() -> None:
    jobs = [job("j1", 1, 0), job("j2", 2, 2)]
    cases, violations = order_violations(jobs, {1: ["j1", "", "j2"]})
    assert (cases, violations) == (1, [])


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
