"""Dispatching an integration's queued payloads, in order, when an operator asks.

A dispatch is a job in the integration's own stream (`integration:<id>`), so it runs one at a time per
integration and never waits behind, or holds up, the tenant's receipts, counts and runs. It runs outside a
single transaction, because it waits on a receiver: for each payload, in outbox order, it

1. claims it (status `sending`, the dispatch's id) and commits the claim before any HTTP call;
2. POSTs it, signed, with bounded connect and read timeouts, to the address the receiver's host resolved to
   and that was checked (shared/integrations/urls.py), never following redirects;
3. records the outcome in a second transaction that is fenced like any job's: `delivered` (status and time),
   `failed` (the status code or the error class; a receiver's response body is never stored), or
   `outcome_unknown` (the request went out and no answer came back).

It stops at the first payload that is not delivered; the payloads after it stay queued. It never retries:
a dispatch job is not re-run after a crash, and a payload left `sending` by a worker that died is marked
`outcome_unknown` (`abandoned`), so a redelivered or re-fired dispatch task sends nothing twice. Sending it
again is the operator's explicit requeue. Dispatch never touches inventory; a failure writes an audit event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.audit import service as audit
from shared.base import utcnow
from shared.config import get_settings
from shared.errors import DomainError, Unavailable, ValidationFailed
from shared.integrations import service as integrations
from shared.integrations import urls
from shared.integrations.models import DeliveryStatus, Dispatch, DispatchStatus, Integration, OutboxEntry
from shared.jobs.kinds import JobStatus
from shared.jobs.models import Job

USER_AGENT = "asora-webhooks/1.0"
MAX_PAYLOADS = 1000  # per dispatch; the rest stay queued for the next one


@dataclass(frozen=True)
class Delivery:
    status: DeliveryStatus
    response_status: int | None = None
    error: str | None = None

    def describe(self, event_id: str) -> str:
        what = f"HTTP {self.response_status}" if self.response_status is not None else self.error
        return f"{event_id}: {self.status} ({what})"


def _pinned(url: str, address: str) -> tuple[str, dict[str, str], dict[str, Any], tuple[str, str] | None]:
    """The request aimed at the checked address: (url, headers, extensions, basic auth)."""
    parts = urlsplit(url)
    host = f"[{address}]" if ":" in address else address
    netloc = f"{host}:{parts.port}" if parts.port else host
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.hostname or ""
    if parts.port:
        host_header = f"{host_header}:{parts.port}"
    extensions: dict[str, Any] = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    auth = (parts.username or "", parts.password or "") if parts.username or parts.password else None
    return pinned, {"Host": host_header}, extensions, auth


def deliver(url: str, body: bytes, headers: dict[str, str]) -> Delivery:
    """POST one payload. Refused before sending (DNS, a private address, no connection): `failed`; sent but
    unanswered or cut off: `outcome_unknown`; answered: `delivered` for 2xx, `failed` otherwise."""
    settings = get_settings()
    try:
        address = urls.resolve(urls.parse(url, check_address=False))
    except ValidationFailed as exc:
        return Delivery(DeliveryStatus.FAILED, error=(exc.reason or "BAD_URL"))
    pinned, host, extensions, auth = _pinned(url, address)
    timeout = httpx.Timeout(
        connect=settings.integrations_connect_timeout_seconds,
        read=settings.integrations_read_timeout_seconds,
        write=settings.integrations_read_timeout_seconds,
        pool=settings.integrations_connect_timeout_seconds,
    )
    request_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **host, **headers}
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            request = client.build_request("POST", pinned, content=body, headers=request_headers, extensions=extensions)
            response = client.send(request, auth=auth)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as exc:
        return Delivery(DeliveryStatus.FAILED, error=exc.__class__.__name__)
    except httpx.HTTPError as exc:  # read/write timeouts, a dropped connection: the request may have arrived
        return Delivery(DeliveryStatus.OUTCOME_UNKNOWN, error=exc.__class__.__name__)
    if 200 <= response.status_code < 300:
        return Delivery(DeliveryStatus.DELIVERED, response_status=response.status_code)
    return Delivery(DeliveryStatus.FAILED, response_status=response.status_code)


@dataclass(frozen=True)
class _Claimed:
    event_id: str
    position: int
    body: bytes
    url: str
    headers: dict[str, str]


def _body(entry: OutboxEntry) -> bytes:
    return json.dumps(entry.payload, separators=(",", ":"), sort_keys=True).encode()


def _dispatch_of(session: Session, job: Job) -> Dispatch:
    dispatch = session.get(Dispatch, job.id)
    assert dispatch is not None, f"job {job.id} has no dispatch"
    return dispatch


class DispatchJob:
    """The dispatch job's handler: it commits its own transactions (`run`) through the runner's fence."""

    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        dispatch = _dispatch_of(session, job)
        if job.status == JobStatus.RUNNING:
            dispatch.status, dispatch.started_at = DispatchStatus.RUNNING, dispatch.started_at or utcnow()
        elif job.status == JobStatus.FAILED:
            dispatch.status, dispatch.finished_at = DispatchStatus.FAILED, utcnow()
            dispatch.outcome = ((job.error or {}).get("message") or "failed")[:300]
        elif job.status == JobStatus.COMPLETED:
            dispatch.status, dispatch.finished_at = DispatchStatus.COMPLETED, utcnow()

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        raise AssertionError("a dispatch runs its own transactions (run), never inside one")

    def abandoned(self, session: Session, job: Job) -> None:
        """The dispatch's worker died: whatever it had claimed may have been sent. Mark it so."""
        session.execute(
            update(OutboxEntry)
            .where(
                OutboxEntry.tenant_id == job.tenant_id,
                OutboxEntry.dispatch_id == job.id,
                OutboxEntry.status == DeliveryStatus.SENDING,
            )
            .values(status=DeliveryStatus.OUTCOME_UNKNOWN, error="the dispatch was interrupted", finished_at=utcnow())
        )

    def run(self, attempt: Any) -> dict[str, Any]:
        sent = delivered = 0
        while sent < MAX_PAYLOADS:
            with attempt.fenced() as (session, job):
                claimed = self._claim_next(session, job)
            if claimed is None:
                break
            outcome = deliver(claimed.url, claimed.body, claimed.headers)
            sent += 1
            ok = outcome.status == DeliveryStatus.DELIVERED
            with attempt.fenced() as (session, job):
                self._record(session, job, claimed, outcome, sent, delivered + ok)
            if not ok:
                raise Unavailable(
                    f"dispatch stopped at {outcome.describe(claimed.event_id)}; {sent - 1} delivered before it, the "
                    "payloads after it stay queued",
                    reason="DELIVERY_FAILED",
                    details=[{"event_id": claimed.event_id, "status": str(outcome.status), "response_status":
                              outcome.response_status, "error": outcome.error}],
                )  # fmt: skip
            delivered += 1
        with attempt.fenced() as (session, job):
            integration_id = str(job.payload["integration_id"])
            dispatch = _dispatch_of(session, job)
            dispatch.sent, dispatch.delivered = sent, delivered
            dispatch.outcome = f"delivered {delivered} payload(s)"
        return {"integration_id": integration_id, "sent": sent, "delivered": delivered}

    def _claim_next(self, session: Session, job: Job) -> _Claimed | None:
        integration = session.get(Integration, job.payload["integration_id"])
        assert integration is not None
        if not integration.enabled:
            raise ValidationFailed(
                f"integration '{integration.id}' was disabled before the dispatch ran",
                reason="INTEGRATION_DISABLED",
            )
        # A payload left `sending` by an earlier dispatch whose worker died (before the reaper saw it).
        self.abandoned_by_others(session, job)
        entry = session.scalar(
            select(OutboxEntry)
            .where(
                OutboxEntry.tenant_id == job.tenant_id,
                OutboxEntry.integration_id == integration.id,
                OutboxEntry.status == DeliveryStatus.QUEUED,
            )
            .order_by(OutboxEntry.position)
            .limit(1)
            .with_for_update()
        )
        if entry is None:
            return None
        now = utcnow()
        entry.status, entry.dispatch_id, entry.sends, entry.sent_at = (
            DeliveryStatus.SENDING,
            job.id,
            entry.sends + 1,
            now,
        )
        body = _body(entry)
        headers = integrations.signature_headers_for(integration, entry.event_id, body, now)
        return _Claimed(entry.event_id, entry.position, body, integrations.receiver_url(integration), headers)

    def abandoned_by_others(self, session: Session, job: Job) -> None:
        session.execute(
            update(OutboxEntry)
            .where(
                OutboxEntry.tenant_id == job.tenant_id,
                OutboxEntry.integration_id == job.payload["integration_id"],
                OutboxEntry.status == DeliveryStatus.SENDING,
                OutboxEntry.dispatch_id != job.id,
            )
            .values(status=DeliveryStatus.OUTCOME_UNKNOWN, error="the dispatch was interrupted", finished_at=utcnow())
        )

    def _record(
        self, session: Session, job: Job, claimed: _Claimed, outcome: Delivery, sent: int, delivered: int
    ) -> None:
        entry = session.scalar(
            select(OutboxEntry)
            .where(
                OutboxEntry.integration_id == job.payload["integration_id"], OutboxEntry.position == claimed.position
            )
            .with_for_update()
        )
        assert entry is not None
        assert entry.dispatch_id == job.id
        entry.status, entry.finished_at = outcome.status, utcnow()
        entry.response_status, entry.error = outcome.response_status, outcome.error
        dispatch = _dispatch_of(session, job)
        dispatch.sent, dispatch.delivered = sent, delivered
        if outcome.status != DeliveryStatus.DELIVERED:
            dispatch.stopped_at_event_id = claimed.event_id
            audit.record(
                session,
                tenant_id=job.tenant_id,
                action="integration.dispatch_failed",
                outcome=str(outcome.status),
                target=str(job.payload["integration_id"]),
                reason="DELIVERY_FAILED",
                job_id=job.id,
                actor_key_id=job.actor_key_id,
                actor_role=job.actor_role,
                details={
                    "event_id": claimed.event_id,
                    "response_status": outcome.response_status,
                    "error": outcome.error,
                    "delivered_before": delivered,
                },
            )
