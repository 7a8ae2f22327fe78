"""Callback signatures (webhooks, receipts): HMAC-SHA256 over ``<timestamp>.<body>``.

The timestamp has its own header; every attempt is signed afresh. A receiver recomputes the
HMAC with the shared secret and compares it in constant time, and refuses a timestamp outside
its tolerance, so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign", "signature_headers"]

TIMESTAMP_HEADER: Final = "X-Provider-Timestamp"
SIGNATURE_HEADER: Final = "X-Provider-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1=<hex>`` signature of ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signature_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The two headers of a signed delivery."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}
