"""Idempotent requests: the ``Idempotency-Key`` a caller sends and the hash its retry repeats.

A service remembers, per caller and operation, which key made which result and the hash of the
request that made it: a retry with the same key and the same request gets the earlier result,
the same key with another request is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Final

from hub.errors import IdempotencyKeyRequired, InvalidHeader

__all__ = ["KEY_HEADER", "check_key", "keyed_id", "request_hash"]

#: The header a caller names its request with (lower case, as ASGI gives headers).
KEY_HEADER: Final = "idempotency-key"
_KEY: Final = re.compile(r"[\x21-\x7e]{1,200}")


def request_hash(body: object) -> str:
    """The SHA-256 of a request body's canonical JSON (what a retry must repeat)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def keyed_id(prefix: str, scope: str, key: str) -> str:
    """The id of what the request keyed ``key`` in ``scope`` makes: its retries name it again."""
    return prefix + hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()[:24]


def check_key(value: str | None, *, what: str = "this request") -> str:
    """The key of an ``Idempotency-Key`` header; ``what`` names the request in the refusal."""
    if value is None:
        raise IdempotencyKeyRequired(f"{what} needs an Idempotency-Key header")
    if not _KEY.fullmatch(value):
        raise InvalidHeader("Idempotency-Key: 1 to 200 visible ASCII characters")
    return value
