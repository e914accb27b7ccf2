"""A stream's Redis lease (the cheap pre-filter) and the key of its PostgreSQL advisory-lock fence."""

from __future__ import annotations

import secrets
import zlib

import redis

LEDGER_STREAM = "ledger"


def fence_key(tenant_id: str, stream: str = LEDGER_STREAM) -> int:
    """The advisory-lock key of a stream's fence: every job transaction of the stream takes it first, and so
    does anything that must not run beside the stream's jobs (`asora ledger verify --repair`)."""
    suffix = "" if stream == LEDGER_STREAM else f":{stream}"
    return zlib.crc32(f"asora:tenant:{tenant_id}{suffix}".encode())


_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class TenantLock:
    def __init__(self, client: redis.Redis, tenant_id: str, lease_seconds: int) -> None:
        self.client = client
        self.key = f"asora:tenant-lock:{tenant_id}"
        self.token = secrets.token_hex(16)
        self.lease_ms = lease_seconds * 1000

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.lease_ms))

    def extend(self) -> bool:
        return bool(self.client.eval(_EXTEND, 1, self.key, self.token, self.lease_ms))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.token)


def begin_drain(client: redis.Redis, wake_key: str, queued_keys: list[str], lease_seconds: int) -> None:
    """A drain's first step, in one round trip: the stream's queued wake-ups are now being served (their marks
    go, worker/publisher.py), and the lease holder, if there is one, is told to look again when it ends."""
    pipe = client.pipeline(transaction=False)
    pipe.delete(*queued_keys)
    pipe.set(wake_key, 1, ex=max(lease_seconds * 2, 60))
    pipe.execute()
