"""Receiver URLs, signing secrets and signatures, without a stack: what is accepted and refused, how URLs are
shown, what is encrypted, and that both signatures verify as a receiver would check them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from cryptography.fernet import InvalidToken
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from shared.config import get_settings
from shared.errors import ValidationFailed
from shared.integrations import dispatch, secrets, urls
from shared.integrations.models import DeliveryStatus


@pytest.fixture
def no_private(monkeypatch):
    monkeypatch.setenv("ASORA_INTEGRATIONS_ALLOW_PRIVATE", "false")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.example/in", "https://hooks.example/in"),
        ("https://u:p@hooks.example:8443/in?token=abc&x=", "https://***@hooks.example:8443/in?token=***&x=***"),
        ("http://only-user@127.0.0.1/x", "http://***@127.0.0.1/x"),
        ("http://[::1]:9000/x?a=1", "http://[::1]:9000/x?a=***"),
    ],
)
def test_credentials_in_a_url_are_never_shown(url, shown):
    assert urls.redact(url) == shown


@pytest.mark.parametrize(
    "url",
    ["ftp://example.org/x", "file:///etc/passwd", "javascript:alert(1)", "https://", "https://h.example/x#frag",
     "http://h.example/a b", "https://h.example:99999/", "http://" + "a" * 2100],
)  # fmt: skip
def test_only_plain_http_urls_are_accepted(url):
    with pytest.raises(ValidationFailed) as refused:
        urls.parse(url, check_address=False)
    assert refused.value.reason == "BAD_URL"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.1.2.3", "192.168.0.10", "169.254.169.254", "[::1]", "[fe80::1]", "0.0.0.0"]
)
def test_private_and_reserved_addresses_are_refused_in_production(no_private, host):
    with pytest.raises(ValidationFailed) as refused:
        urls.parse(f"http://{host}/hook")
    assert "private or reserved" in refused.value.message


def test_a_global_address_is_accepted_and_delivery_checks_again_after_resolution(no_private):
    assert urls.parse("https://93.184.216.34/hook").host == "93.184.216.34"
    # At dispatch a loopback receiver is refused before anything is sent.
    outcome = dispatch.deliver("http://127.0.0.1:9/hook", b"{}", {})
    assert (outcome.status, outcome.error) == (DeliveryStatus.FAILED, "BAD_URL")


def test_generated_secrets_are_standard_webhooks_secrets():
    secret = secrets.generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    secrets.check_secret(secret)
    assert secrets.generate_secret() != secret


@pytest.mark.parametrize(
    "bad", ["not-a-whsec-value", "whsec_", "whsec_%%%", "whsec_" + base64.b64encode(b"x" * 16).decode(),
            "whsec_" + base64.b64encode(b"x" * 65).decode(), "WHSEC_" + base64.b64encode(b"x" * 32).decode()],
)  # fmt: skip
def test_a_given_secret_must_be_in_the_standard_form(bad):
    with pytest.raises(ValidationFailed) as refused:
        secrets.check_secret(bad)
    assert refused.value.reason == "BAD_SECRET"
    assert bad not in refused.value.message


def test_secrets_are_encrypted_and_earlier_application_keys_stay_readable(monkeypatch):
    secret = secrets.generate_secret()
    monkeypatch.setenv("ASORA_SECRET_KEY", "first-application-key")
    get_settings.cache_clear()
    secrets.reset_cipher()
    token = secrets.encrypt(secret)
    assert secret.encode() not in token and secrets.decrypt(token) == secret
    monkeypatch.setenv("ASORA_SECRET_KEY", "second-application-key")
    get_settings.cache_clear()
    secrets.reset_cipher()
    with pytest.raises(InvalidToken):
        secrets.decrypt(token)  # the old key is gone: unreadable
    monkeypatch.setenv("ASORA_PREVIOUS_SECRET_KEYS", "first-application-key")
    get_settings.cache_clear()
    secrets.reset_cipher()
    assert secrets.decrypt(token) == secret  # MultiFernet: the previous key still reads it
    get_settings.cache_clear()
    secrets.reset_cipher()


def test_both_signatures_verify_for_each_active_secret():
    new, old = secrets.generate_secret(), secrets.generate_secret()
    body = b'{"event_id":"evt_1","type":"receipt.posted"}'
    now = datetime.now(UTC)
    headers = secrets.signature_headers("evt_1", body, [new, old], now)
    for secret in (new, old):
        Webhook(secret).verify(body, headers)  # the standardwebhooks package accepts either
        expected = hmac.new(secret.encode(), f"{headers['X-Asora-Timestamp']}.".encode() + body, hashlib.sha256)
        assert expected.hexdigest() in headers["X-Asora-Signature"].split(",")
    with pytest.raises(WebhookVerificationError):
        Webhook(secrets.generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + b" ", headers)
    single = secrets.signature_headers("evt_1", body, [new], now)
    assert "," not in single["X-Asora-Signature"] and " " not in single["webhook-signature"]
