"""Jobs on the service: each tenant numbers its jobs 1, 2, 3 ... with no gap even when an intake rolls back;
every kind travels on its queue; idempotency keys replay the stored answer and refuse a different request;
job lists page newest first, and a cursor that no page gave out is a 422."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.base import utcnow
from shared.errors import NotFound, ValidationFailed
from shared.jobs import service as jobs
from shared.jobs.kinds import LEDGER_STREAM, JobKind, JobStatus, Queue, integration_stream
from shared.jobs.models import IdempotencyKey, Job
from shared.pagination import MAX_INT_KEY
from shared.registry import queue_for
from tests import factories

CLERK = factories.principal("any", "clerk")


def _accept(session: Session, tenant_id: str, kind: JobKind = JobKind.RECEIPT, stream: str = LEDGER_STREAM) -> Job:
    """Accept a job and number it at once, as a commit would."""
    accepted = jobs.accept_job(session, tenant_id=tenant_id, kind=kind, payload={"n": 1}, actor=CLERK, stream=stream)
    jobs.number_pending(session)
    job = session.get(Job, accepted.id)
    assert job is not None and job.seq == accepted.seq
    return job


@pytest.mark.parametrize("kind", list(JobKind))
def test_a_job_is_recorded_queued_on_its_kinds_queue(db_session: Session, db_tenant: str, kind: JobKind) -> None:
    job = _accept(db_session, db_tenant, kind)
    stored = db_session.scalar(select(Job).where(Job.id == job.id).execution_options(populate_existing=True))
    assert stored is not None
    assert (stored.kind, stored.status, stored.stream) == (kind, "queued", "ledger")
    assert (stored.attempts, stored.payload, stored.actor_key_id, stored.actor_role) == (
        0,
        {"n": 1},
        CLERK.key_id,
        "clerk",
    )
    assert stored.published_at is None  # no publisher in this process: the relay will send it


def test_seq_is_gapless_per_tenant_even_across_a_rolled_back_intake(db_session: Session) -> None:
    b = factories.tenant(db_session)
    assert _accept(db_session, b).seq == 1
    a = factories.tenant(db_session)  # the session now acts for `a`
    assert [_accept(db_session, a).seq for _ in range(3)] == [1, 2, 3]
    with pytest.raises(RuntimeError), db_session.begin_nested():  # an intake refused after numbering its job
        _give_up_after(_accept(db_session, a))
    assert _accept(db_session, a).seq == 4
    assert [j.seq for j in db_session.scalars(select(Job).where(Job.tenant_id == a).order_by(Job.seq))] == [1, 2, 3, 4]


def _give_up_after(job: Job) -> None:
    raise RuntimeError(f"refused after numbering job {job.seq}")


def test_an_integrations_jobs_run_in_a_stream_of_their_own(db_session: Session, db_tenant: str) -> None:
    job = _accept(db_session, db_tenant, JobKind.DISPATCH, stream=integration_stream("int_1"))
    assert (job.stream, queue_for(job.kind)) == ("integration:int_1", Queue.DISPATCH)
    assert _accept(db_session, db_tenant).stream == LEDGER_STREAM
    assert job.seq == 1  # numbered in the tenant's one sequence, whatever the stream


def test_get_job_is_scoped_to_its_tenant(db_session: Session, db_tenant: str) -> None:
    job = _accept(db_session, db_tenant)
    assert jobs.get_job(db_session, db_tenant, job.id) is job
    other = factories.tenant(db_session)
    with pytest.raises(NotFound):
        jobs.get_job(db_session, other, job.id)


# --- idempotency ------------------------------------------------------------------------------------------


def test_a_key_is_claimed_once_then_replays_the_stored_answer(db_session: Session, db_tenant: str) -> None:
    fingerprint = jobs.request_fingerprint("receipt", {"a": 1})
    assert jobs.replay(db_session, db_tenant, "key-1", fingerprint) is None
    assert jobs.claim_key(db_session, db_tenant, "key-1", fingerprint) is None
    jobs.store_answer(db_session, db_tenant, "key-1", 202, {"job_id": "job_1"})
    assert jobs.claim_key(db_session, db_tenant, "key-1", fingerprint) == (202, {"job_id": "job_1"})
    assert jobs.replay(db_session, db_tenant, "key-1", fingerprint) == (202, {"job_id": "job_1"})
    assert db_session.scalars(select(IdempotencyKey.key).where(IdempotencyKey.tenant_id == db_tenant)).all() == [
        "key-1"
    ]


def test_a_key_reused_for_a_different_request_is_refused(db_session: Session, db_tenant: str) -> None:
    jobs.claim_key(db_session, db_tenant, "key-1", jobs.request_fingerprint("receipt", {"a": 1}))
    jobs.store_answer(db_session, db_tenant, "key-1", 202, {"job_id": "job_1"})
    for different in (jobs.request_fingerprint("receipt", {"a": 2}), jobs.request_fingerprint("count", {"a": 1})):
        for call in (jobs.claim_key, jobs.replay):
            with pytest.raises(ValidationFailed) as refused:
                call(db_session, db_tenant, "key-1", different)
            assert (refused.value.status_code, refused.value.reason) == (422, "IDEMPOTENCY_KEY_REUSED")


def test_keys_belong_to_their_tenant(db_session: Session, db_tenant: str) -> None:
    fingerprint = jobs.request_fingerprint("receipt", {"a": 1})
    jobs.claim_key(db_session, db_tenant, "shared-key", fingerprint)
    jobs.store_answer(db_session, db_tenant, "shared-key", 202, {"job_id": "job_a"})
    other = factories.tenant(db_session)
    assert jobs.claim_key(db_session, other, "shared-key", jobs.request_fingerprint("count", {})) is None


def test_a_fingerprint_sees_values_not_spelling_and_keeps_parts_apart() -> None:
    fp = jobs.request_fingerprint
    assert fp("receipt", {"a": 1, "b": [1, 2]}) == fp("receipt", {"b": [1, 2], "a": 1})
    assert fp("receipt", {"a": 1}) != fp("receipt", {"a": "1"})
    assert fp("ab", "c") != fp("a", "bc")
    assert fp(b"ab", b"c") != fp(b"a", b"bc")
    assert fp("receipt", b"\x00") != fp("receipt", b"")


def test_purging_removes_only_keys_older_than_the_retention(service_urls: dict[str, str]) -> None:
    """The purge spans tenants, so it runs on the system login (`asora_sys_purge_idempotency_keys`) and sees
    committed rows only: this test commits, in the run's scratch database."""
    from shared import db
    from tests.support import create_tenant_direct

    tenant_id, now = create_tenant_direct("purge"), utcnow()
    with db.unit_of_work(tenant_id) as session:
        for key, age in (("old", timedelta(days=7, seconds=1)), ("young", timedelta(days=6, hours=23))):
            session.add(
                IdempotencyKey(
                    tenant_id=tenant_id, key=key, request_hash="h", status_code=202, response={}, created_at=now - age
                )
            )
    with db.unit_of_work(db.SYSTEM_SCOPE) as system:
        assert jobs.purge_idempotency_keys(system, retention_days=7) >= 1
    with db.unit_of_work(tenant_id) as session:
        assert session.scalars(select(IdempotencyKey.key)).all() == ["young"]


# --- lists --------------------------------------------------------------------------------------------------


def _walk(
    session: Session, tenant_id: str, limit: int, kind: JobKind | None = None, status: JobStatus | None = None
) -> list[list[int]]:
    pages, cursor = [], None
    while True:
        rows, cursor = jobs.list_jobs(session, tenant_id, kind=kind, status=status, cursor=cursor, limit=limit)
        pages.append([j.seq for j in rows])
        if cursor is None:
            return pages


def test_job_lists_page_newest_first_with_filters(db_session: Session, db_tenant: str) -> None:
    for kind in (JobKind.RECEIPT, JobKind.COUNT, JobKind.RECEIPT, JobKind.EXPORT, JobKind.RECEIPT):
        _accept(db_session, db_tenant, kind)
    finished = _accept(db_session, db_tenant)
    finished.status = JobStatus.COMPLETED
    db_session.flush()
    assert _walk(db_session, db_tenant, 2) == [[6, 5], [4, 3], [2, 1]]
    assert _walk(db_session, db_tenant, 6) == [[6, 5, 4, 3, 2, 1]]
    assert _walk(db_session, db_tenant, 2, kind=JobKind.RECEIPT) == [[6, 5], [3, 1]]
    assert _walk(db_session, db_tenant, 10, kind=JobKind.RECEIPT, status=JobStatus.QUEUED) == [[5, 3, 1]]
    other = factories.tenant(db_session)
    assert _walk(db_session, other, 10) == [[]]


@pytest.mark.parametrize(
    "cursor", ["abc", "-1", "1.5", "1e3", " 1", "\uff11", "\u00b2", str(MAX_INT_KEY + 1), str(2**64), "9" * 400]
)
def test_an_integer_cursor_that_no_page_gave_out_is_422_bad_cursor(
    db_session: Session, db_tenant: str, cursor: str
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        jobs.list_jobs(db_session, db_tenant, kind=None, status=None, cursor=cursor, limit=10)
    assert (refused.value.status_code, refused.value.reason) == (422, "BAD_CURSOR")
    assert refused.value.details[0]["field"] == "cursor"


@pytest.mark.parametrize(("cursor", "seqs"), [(str(MAX_INT_KEY), [2, 1]), ("2", [1]), ("1", []), ("0", [])])
def test_the_largest_integer_cursor_is_a_key_like_any_other(
    db_session: Session, db_tenant: str, cursor: str, seqs: list[int]
) -> None:
    _accept(db_session, db_tenant)
    _accept(db_session, db_tenant)
    rows, next_cursor = jobs.list_jobs(db_session, db_tenant, kind=None, status=None, cursor=cursor, limit=10)
    assert ([j.seq for j in rows], next_cursor) == (seqs, None)
