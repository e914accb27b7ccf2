"""Accepting jobs (numbered per tenant, recorded as outbox rows) and idempotent intake.

The tenant's job counter is the one per-tenant critical section of intake: numbering a job locks the tenant's
`tenant_counters` row until the transaction commits, so every other intake of that tenant waits that long. So
`accept_job` does not number the job when it is called: it notes it on the session, and the session numbers
and records it in one statement (the counter's UPDATE and the job's INSERT together) as the last thing before
COMMIT. The lock is held for that statement and the commit, nothing else. The job's own rows (its run,
uploaded files, export, audit event) are written before it, which the foreign keys to `jobs` allow by being
checked at commit (migration 0007). A job noted inside a savepoint that is rolled back is forgotten with it.

A hot intake (a run) goes further and hands its own rows to `accept_job` as `db.Insert`s, its companions: the
numbering statement itself writes them, as data-modifying CTEs before the counter's UPDATE, so the whole accept
is one statement after the intake's read of its terms, and the counter is held no longer than before.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared import db
from shared.auth import Principal
from shared.base import Base, new_id, table_of, text_limit, utcnow
from shared.errors import NotFound, ValidationFailed
from shared.jobs import outbox
from shared.jobs.kinds import LEDGER_STREAM, PENDING, JobKind, JobStatus
from shared.jobs.models import IdempotencyKey, Job, JobBlob
from shared.metrics import COUNTER_HOLD
from shared.pagination import page


def new_job_id() -> str:
    return new_id("job")


@dataclass(slots=True)
class AcceptedJob:
    """A job accepted in this transaction (what intake answers with); `seq` is known once it is numbered,
    at commit or by `number_pending`. The row is `Job`."""

    id: str
    tenant_id: str
    kind: JobKind
    stream: str
    seq: int | None = None
    status: JobStatus = JobStatus.QUEUED


# created_at is the moment of numbering (clock_timestamp), so it follows seq, unlike now() (the transaction's
# start). Sent as driver SQL: intake's statements skip SQLAlchemy's compilation (docs/performance.md).
_NUMBER_AND_RECORD = """
    WITH counter AS (
        UPDATE tenant_counters SET job_seq = job_seq + 1 WHERE tenant_id = %(tenant_id)s RETURNING job_seq
    )
    INSERT INTO jobs (id, tenant_id, seq, kind, stream, status, attempts, lost_attempts, payload,
                      actor_key_id, actor_role, published_at, created_at)
    SELECT %(id)s, %(tenant_id)s, counter.job_seq, %(kind)s, %(stream)s, 'queued', 0, 0, %(payload)s::jsonb,
           %(actor_key_id)s, %(actor_role)s, %(published_at)s, clock_timestamp()
    FROM counter
    RETURNING seq"""


@dataclass(slots=True)
class _Pending:
    job: AcceptedJob
    params: dict[str, Any]
    transaction: Any  # the (nested) transaction it was accepted in
    companions: tuple[db.Insert, ...] = ()

    def statement(self) -> tuple[str, dict[str, Any]]:
        """The numbering statement with the companions' INSERTs in front of the counter's UPDATE."""
        if not self.companions:
            return _NUMBER_AND_RECORD, self.params
        ctes, params = [], dict(self.params)
        for n, companion in enumerate(self.companions):
            prefix = f"c{n}_"
            ctes.append(f"c{n} AS ({companion.text(prefix)})")
            params |= companion.prefixed(prefix)
        return "WITH " + ", ".join(ctes) + "," + _NUMBER_AND_RECORD.removeprefix("\n    WITH"), params


_PENDING = "asora.jobs_to_number"
COMPANION_BYTES = 64 * 1024  # a companion larger than this is written at once, not in the numbering statement
_HOLDING_SINCE = "asora.counter_held_since"  # perf_counter() when the numbering statement began


def accept_job(
    session: Session,
    *,
    tenant_id: str,
    kind: JobKind,
    payload: dict[str, Any],
    actor: Principal | None,
    job_id: str | None = None,
    stream: str = LEDGER_STREAM,
    number_now: bool = False,
    companions: tuple[db.Insert, ...] = (),
) -> AcceptedJob:
    """Accept a job: it is numbered with the tenant's next gapless `seq` and recorded just before the session
    commits, and its wake-up is published after (`shared/jobs/outbox.py`). `number_now` numbers it at once,
    for the rare intake that must know its place before answering (a count's cost-basis check); the
    tenant's counter row is then locked from here to the commit. `companions` are the intake's own rows, written
    by the numbering statement (see the module's docstring)."""
    job = AcceptedJob(job_id or new_job_id(), tenant_id, kind, stream)
    params = {
        "id": job.id,
        "tenant_id": tenant_id,
        "kind": str(kind),
        "stream": stream,
        "payload": db.json_text(payload),
        "actor_key_id": actor.key_id if actor else None,
        "actor_role": actor.role if actor else None,
        "published_at": utcnow() if outbox.publishing() else None,
    }
    # PostgreSQL runs a CTE the main query does not read after it, with the counter locked: a large companion
    # (a big upload) is written now instead, so that it never lengthens the critical section.
    inline = tuple(c for c in companions if c.size() <= COMPANION_BYTES)
    for large in (c for c in companions if c.size() > COMPANION_BYTES):
        db.execute_insert(session, large)
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_PENDING, []).append(_Pending(job, params, transaction, inline))
    outbox.publish_after_commit(session, outbox.Wakeup(job.id, tenant_id, kind, stream))
    if number_now:
        number_pending(session)
    return job


def earlier_pending(session: Session, tenant_id: str, seq: int) -> bool:
    """Whether a job of the tenant numbered before `seq` is still pending: an intake that numbered its job at
    once (`number_now`) knows, when none is, that the state its job will meet is the state it sees."""
    found = session.scalar(
        select(Job.id).where(Job.tenant_id == tenant_id, Job.seq < seq, Job.status.in_(PENDING)).limit(1)
    )
    return found is not None


def pending_with(session: Session, tenant_id: str, kind: JobKind, key: str, value: str) -> bool:
    """Whether a pending job of `kind` whose payload has `key` = `value` is queued for the tenant: the one check
    that refuses a second rollback of the same run or repost while the first is still waiting."""
    found = session.scalar(
        select(Job.id)
        .where(
            Job.tenant_id == tenant_id,
            Job.kind == kind,
            Job.status.in_(PENDING),
            Job.payload[key].astext == value,
        )
        .limit(1)
    )
    return found is not None


def number_pending(session: Session) -> None:
    """Number and record the jobs accepted in this transaction and not yet recorded, in acceptance order."""
    pending: list[_Pending] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # the jobs' own rows first: runs, files, exports, counts, audit events
    for entry in pending:
        seq = session.connection().exec_driver_sql(*entry.statement()).scalar()
        session.info.setdefault(_HOLDING_SINCE, time.perf_counter())  # the lock is ours from here to COMMIT
        if seq is None:
            raise NotFound(f"tenant '{entry.job.tenant_id}' not found")
        entry.job.seq = int(seq)


@event.listens_for(Session, "before_commit")
def _number_before_commit(session: Session) -> None:
    number_pending(session)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _counter_released(session: Session) -> None:
    since = session.info.pop(_HOLDING_SINCE, None)
    if since is not None:
        COUNTER_HOLD.observe(time.perf_counter() - since)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous_transaction: Any) -> None:
    """A rolled-back savepoint (or the whole transaction) takes the jobs accepted inside it along."""
    pending: list[_Pending] = session.info.get(_PENDING, [])
    if not pending:
        return

    def inside(transaction: Any) -> bool:
        while transaction is not None:
            if transaction is previous_transaction:
                return True
            transaction = transaction.parent
        return False

    session.info[_PENDING] = [entry for entry in pending if not inside(entry.transaction)]


_INSERT_BLOBS = "INSERT INTO job_blobs (job_id, name, tenant_id, content, size) VALUES "
_BLOB_ROW = "(%({p}job_id)s, %({p}name{n})s, %({p}tenant_id)s, %({p}content{n})s, %({p}size{n})s)"


def blobs_insert(tenant_id: str, job_id: str, blobs: dict[str, bytes]) -> db.Insert:
    """The uploaded inputs of a job about to be accepted, as one INSERT."""
    params: dict[str, Any] = {"job_id": job_id, "tenant_id": tenant_id}
    for n, (name, content) in enumerate(blobs.items()):
        params |= {f"name{n}": name, f"content{n}": content, f"size{n}": len(content)}
    rows = ", ".join(_BLOB_ROW.replace("{n}", str(n)) for n in range(len(blobs)))
    return db.Insert(_INSERT_BLOBS + rows, params)


def attach_blobs(session: Session, tenant_id: str, job_id: str, blobs: dict[str, bytes]) -> None:
    """The uploaded inputs of a job about to be accepted (written before the job is numbered), in one INSERT."""
    db.execute_insert(session, blobs_insert(tenant_id, job_id, blobs))


def read_blob(session: Session, job_id: str, name: str) -> bytes | None:
    return session.scalar(select(JobBlob.content).where(JobBlob.job_id == job_id, JobBlob.name == name))


def read_blobs(session: Session, job_id: str, names: Sequence[str]) -> dict[str, bytes]:
    """Several inputs of one job in one round trip: name -> bytes (a name without a blob is left out)."""
    rows = session.execute(
        select(JobBlob.name, JobBlob.content).where(JobBlob.job_id == job_id, JobBlob.name.in_(names))
    )
    return dict(rows.tuples().all())


def find_posted(
    session: Session, tenant_id: str, document: type[Base], lines: type[Base], parent: str, document_id: str, noun: str
) -> tuple[Any, Job, list[Any]]:
    """A document a job posts (a return, a landed cost): its row, its job and its lines in `line` order; 404 for
    an id that cannot be one (longer than the column, or with a NUL) or is not the tenant's."""
    missing = NotFound(f"{noun} '{document_id}' not found")
    if len(document_id) > text_limit(document, "id") or "\x00" in document_id:
        raise missing
    doc, line_table = table_of(document), table_of(lines)
    row = session.execute(
        select(document, Job)
        .join(Job, Job.id == doc.c.job_id)
        .where(doc.c.id == document_id, doc.c.tenant_id == tenant_id)
    ).first()
    if row is None:
        raise missing
    found = session.scalars(
        select(lines)
        .where(line_table.c[parent] == document_id, line_table.c.tenant_id == tenant_id)
        .order_by(line_table.c.line)
    ).all()
    return row[0], row[1], list(found)


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    job = session.scalar(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id))
    if job is None:
        raise NotFound(f"job '{job_id}' not found")
    return job


def list_jobs(
    session: Session,
    tenant_id: str,
    *,
    kind: JobKind | None,
    status: JobStatus | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Job], str | None]:
    query = select(Job).where(Job.tenant_id == tenant_id)
    if kind:
        query = query.where(Job.kind == kind)
    if status:
        query = query.where(Job.status == status)
    return page(session, query, Job.seq, limit=limit, cursor=cursor, descending=True)


# --- idempotency -----------------------------------------------------------------------------------------


def request_fingerprint(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def replay(session: Session, tenant_id: str, key: str, fingerprint: str) -> tuple[int, dict[str, Any]] | None:
    """The stored answer for a repeated key with the same request, or None when the key is new.
    A concurrent request with the same key waits on the row lock and then sees the first answer."""
    row = session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key).with_for_update()
    )
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise ValidationFailed(
            "this Idempotency-Key was already used with a different request",
            reason="IDEMPOTENCY_KEY_REUSED",
            details=[{"field": "Idempotency-Key", "message": "use a new key for a different request"}],
        )
    return row.status_code, row.response


def claim_key(session: Session, tenant_id: str, key: str, fingerprint: str) -> tuple[int, dict[str, Any]] | None:
    """Insert the key (blocking a concurrent twin until we commit) or return the earlier answer."""
    inserted = session.execute(
        insert(IdempotencyKey)
        .values(tenant_id=tenant_id, key=key, request_hash=fingerprint, status_code=0, response={})
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    ).first()
    if inserted is not None:
        return None
    return replay(session, tenant_id, key, fingerprint)


def store_answer(session: Session, tenant_id: str, key: str, status_code: int, response: dict[str, Any]) -> None:
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key)
        .values(status_code=status_code, response=response)
    )


def purge_idempotency_keys(session: Session, retention_days: int) -> int:
    """Every tenant's idempotency keys past retention. Cross-tenant: `session` is the system login's
    (`unit_of_work(SYSTEM_SCOPE)`), through `asora_sys_purge_idempotency_keys` (migration 0013)."""
    cutoff = utcnow() - timedelta(days=retention_days)
    return int(session.scalar(text("SELECT asora_sys_purge_idempotency_keys(:cutoff)"), {"cutoff": cutoff}) or 0)
