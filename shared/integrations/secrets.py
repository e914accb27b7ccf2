"""Integration secrets: Standard Webhooks signing secrets (generated, or checked when given), their
encryption at rest, and the signatures each delivery carries.

- A signing secret is `whsec_` + base64 of 24 to 64 random bytes (32 when Asora generates it). It is shown
  once, at creation or rotation, and stored only encrypted.
- Encryption is Fernet (the `cryptography` package) with a key derived from `ASORA_SECRET_KEY` by HKDF.
  `ASORA_PREVIOUS_SECRET_KEYS` (comma-separated) keeps values written under earlier application keys
  readable (MultiFernet): rotate the application key by moving the old one there; new values are always
  written under the current key.
- Signatures: the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`: `v1,`
  + base64 HMAC-SHA256 of `id.timestamp.body` keyed with the secret's decoded bytes, made by the
  `standardwebhooks` package), and the contract's `X-Asora-Timestamp` and `X-Asora-Signature` (hex
  HMAC-SHA256 of `timestamp.body` keyed with the secret's UTF-8 text). While a rotated-out secret is in its
  grace period, each header carries one signature per secret (space-separated for Standard Webhooks,
  comma-separated for X-Asora-Signature); a receiver accepts the delivery if any matches.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from standardwebhooks.webhooks import Webhook

from shared.config import get_settings
from shared.errors import ValidationFailed

SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 24, 64


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_secret(secret: str) -> None:
    """A given secret must be in the Standard Webhooks form; the message never repeats it."""
    problem = None
    if not secret.startswith(SECRET_PREFIX):
        problem = f"must start with '{SECRET_PREFIX}'"
    else:
        try:
            raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raw = b""
            problem = f"must be '{SECRET_PREFIX}' followed by standard base64"
        if problem is None and not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
            problem = f"must encode {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes"
    if problem is not None:
        raise ValidationFailed(
            f"the secret {problem}", reason="BAD_SECRET", details=[{"field": "secret", "message": problem}]
        )


def _fernet(application_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"asora:integrations:v1").derive(
        application_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


@lru_cache(maxsize=1)
def _cipher() -> MultiFernet:
    settings = get_settings()
    previous = [k.strip() for k in (settings.previous_secret_keys.get_secret_value() or "").split(",") if k.strip()]
    return MultiFernet([_fernet(settings.secret_key.get_secret_value()), *(_fernet(k) for k in previous)])


def encrypt(text: str) -> bytes:
    return _cipher().encrypt(text.encode())


def decrypt(token: bytes) -> str:
    return _cipher().decrypt(bytes(token)).decode()


def reset_cipher() -> None:
    """Forget the cached keys (after the settings changed)."""
    _cipher.cache_clear()


def signature_headers(event_id: str, body: bytes, signing_secrets: Sequence[str], now: datetime) -> dict[str, str]:
    """Every signature header of one delivery; `signing_secrets` is the current secret first."""
    timestamp = int(now.timestamp())
    at = datetime.fromtimestamp(timestamp, UTC)
    text = body.decode()
    standard = " ".join(Webhook(secret).sign(event_id, at, text) for secret in signing_secrets)
    asora = ",".join(
        hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        for secret in signing_secrets
    )
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard,
        "X-Asora-Timestamp": str(timestamp),
        "X-Asora-Signature": asora,
    }
