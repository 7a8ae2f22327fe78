"""Standard Webhooks signatures (https://www.standardwebhooks.com), both ends of them.

The sender puts three headers on each delivery:

- ``webhook-id``: the message id (the event id: the same on every retry, so receivers dedupe);
- ``webhook-timestamp``: Unix seconds of this attempt;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, keyed with
  the base64-decoded part of the ``whsec_...`` secret. Several signatures may be listed,
  separated by spaces (during a secret rotation).

:func:`verify` is what a receiver runs: constant-time comparison, and a timestamp tolerance
against replays.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

__all__ = [
    "SECRET_PREFIX",
    "InvalidSignature",
    "new_secret",
    "sign",
    "signature_headers",
    "verify",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
_TOLERANCE_SECONDS = 5 * 60


class InvalidSignature(ValueError):
    """A delivery whose signature, timestamp or headers do not check out."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature("the secret is not whsec_ and base64") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: str, msg_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The three headers of a delivery signed now (or at ``timestamp``)."""
    at = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(at),
        "webhook-signature": sign(secret, msg_id, at, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = _TOLERANCE_SECONDS,
) -> str:
    """Check a delivery as a receiver does; returns its ``webhook-id``.

    ``headers`` must be case-insensitive or lower-cased. Raises :class:`InvalidSignature`.
    """
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    given = headers.get("webhook-signature")
    if not msg_id or not stamp or not given:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        at = int(stamp)
    except ValueError as exc:
        raise InvalidSignature("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if abs(current - at) > tolerance:
        raise InvalidSignature("webhook-timestamp is outside the tolerance")
    expected = sign(secret, msg_id, at, body).encode()
    for candidate in given.split(" "):
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            return msg_id
    raise InvalidSignature("no matching v1 signature")
