"""A reference Standard Webhooks verifier, written from the specification, not from the hub.

It mirrors the ``standardwebhooks`` reference library: the secret is ``whsec_`` + base64 key;
the signed content is ``{webhook-id}.{webhook-timestamp}.{body}``; ``webhook-signature`` is a
space-separated list of ``v1,<base64 HMAC-SHA256>``; timestamps more than five minutes off are
refused. Kept apart from ``hub.webhooks.signing`` so a bug there cannot hide here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

__all__ = ["WebhookVerificationError", "verify_webhook"]

_TOLERANCE = 5 * 60
_PREFIX = "whsec_"


class WebhookVerificationError(Exception):
    """The delivery does not verify."""


def verify_webhook(
    secret: str, headers: Mapping[str, str], payload: bytes, *, now: float | None = None
) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        msg_id = lowered["webhook-id"]
        msg_timestamp = lowered["webhook-timestamp"]
        msg_signature = lowered["webhook-signature"]
    except KeyError as exc:
        raise WebhookVerificationError("Missing required headers") from exc
    try:
        timestamp = int(msg_timestamp)
    except ValueError as exc:
        raise WebhookVerificationError("Invalid Signature Headers") from exc
    current = int(time.time() if now is None else now)
    if timestamp < current - _TOLERANCE:
        raise WebhookVerificationError("Message timestamp too old")
    if timestamp > current + _TOLERANCE:
        raise WebhookVerificationError("Message timestamp too new")
    key = base64.b64decode(secret[len(_PREFIX) :] if secret.startswith(_PREFIX) else secret)
    to_sign = f"{msg_id}.{timestamp}.{payload.decode()}".encode()
    expected = base64.b64encode(hmac.new(key, to_sign, hashlib.sha256).digest()).decode()
    for versioned in msg_signature.split(" "):
        version, _, signature = versioned.partition(",")
        if version == "v1" and hmac.compare_digest(expected, signature):
            return
    raise WebhookVerificationError("No matching signature found")
