"""Receiver URLs: what is accepted, how it is shown, and where a delivery may go.

- Only `http` and `https` URLs with a host are accepted, at most 2,048 characters, without fragments.
- A URL's user-info and query values are credentials (`https://user:token@host/hook?key=...`): the URL is
  stored encrypted, and everywhere after creation it is shown as `https://***@host/hook?key=***`.
- Private, loopback, link-local and other non-global addresses are refused unless
  `ASORA_INTEGRATIONS_ALLOW_PRIVATE` is on (it is by default in development and tests, never by default in
  production). A hostname is checked when the integration is saved and again at every dispatch, after DNS
  resolution, and the delivery is sent to the address that was checked (the host name still goes in the Host
  header and TLS SNI), so a DNS answer that changes in between cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from shared.base import text_limit
from shared.config import get_settings
from shared.errors import ValidationFailed
from shared.integrations.models import Integration

MAX_URL_LENGTH = text_limit(Integration, "url_redacted")  # the redacted URL is never longer than the URL
HIDDEN = "***"


def _bad_url(message: str) -> ValidationFailed:
    return ValidationFailed(
        f"the receiver URL {message}", reason="BAD_URL", details=[{"field": "url", "message": message}]
    )


@dataclass(frozen=True)
class ReceiverUrl:
    url: str  # as given, with its credentials (stored encrypted)
    redacted: str
    scheme: str
    host: str
    port: int


def parse(url: str, *, check_address: bool = True) -> ReceiverUrl:
    """Check the URL's form and (unless told not to) the addresses its host has now."""
    if len(url) > MAX_URL_LENGTH:
        raise _bad_url(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise _bad_url("contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _bad_url("is not a valid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise _bad_url("must be an http or https URL")
    if not parts.hostname:
        raise _bad_url("has no host")
    if parts.fragment:
        raise _bad_url("must not have a fragment")
    receiver = ReceiverUrl(
        url=url,
        redacted=redact(url),
        scheme=parts.scheme,
        host=parts.hostname,
        port=port or (443 if parts.scheme == "https" else 80),
    )
    if check_address:
        resolve(receiver)
    return receiver


def redact(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username or parts.password:
        netloc = f"{HIDDEN}@{netloc}"
    query = urlencode([(key, HIDDEN) for key, _ in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _allowed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global or get_settings().allow_private_receivers


def resolve(receiver: ReceiverUrl) -> str:
    """The address to deliver to: the host's first address, once every address it resolves to is allowed."""
    try:
        infos = socket.getaddrinfo(receiver.host, receiver.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise _bad_url(f"names a host that does not resolve ({receiver.host})") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    refused = [a for a in addresses if not _allowed(a)]
    if refused or not addresses:
        raise _bad_url(f"resolves to a private or reserved address ({refused[0] if refused else 'none'})")
    return str(addresses[0])
