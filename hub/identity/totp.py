"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP) and MFA recovery codes.

Secrets are base32 text, as authenticator apps expect them. A verified code yields its time
step; the caller stores it and passes it back, so no code (nor any older one) is accepted
twice (RFC 6238 §5.2). Guessing is bounded by the login throttle, not here.

Recovery codes are ten single-use ``xxxx-xxxx`` codes over a 31-symbol alphabet (~39.6 bits
each), stored as unsalted SHA-256. That is ample against online guessing (throttled), but a
leaked table of them could be brute-forced offline; acceptable because a recovery code only
stands in for the second factor, never for the argon2-hashed password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import time
from collections.abc import Callable, Sequence
from typing import Literal
from urllib.parse import quote, urlencode

__all__ = [
    "DIGITS",
    "PERIOD",
    "TotpVerifier",
    "code_at",
    "hash_recovery_code",
    "hotp",
    "new_recovery_codes",
    "new_secret",
    "otpauth_uri",
    "use_recovery_code",
]

DIGITS = 6
PERIOD = 30
_SECRET_BYTES = 20  # 160 bits, the RFC 4226 recommendation for SHA-1
_MAX_WINDOW = 10

Digest = Literal["sha1", "sha256", "sha512"]


def new_secret() -> str:
    """A fresh random 160-bit secret as unpadded base32 (32 characters)."""
    return base64.b32encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii").rstrip("=")


def _decode_secret(secret: str) -> bytes:
    text = secret.replace(" ", "").replace("-", "").upper()
    try:
        key = base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("TOTP secret is not valid base32") from exc
    if not key:
        raise ValueError("TOTP secret is empty")
    return key


def otpauth_uri(secret: str, *, account: str, issuer: str = "Hub") -> str:
    """The ``otpauth://totp/...`` enrolment URI an authenticator app reads from a QR code."""
    # Apps split the label on the first colon (literal or %3A), so neither part may hold one.
    if ":" in account or ":" in issuer:
        raise ValueError("account and issuer must not contain ':'")
    _decode_secret(secret)
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    query = urlencode(
        {
            "secret": secret.replace(" ", "").upper().rstrip("="),
            "issuer": issuer,
            "algorithm": "SHA1",
            "digits": DIGITS,
            "period": PERIOD,
        },
        quote_via=quote,  # %20 for spaces: several apps do not read '+'
    )
    return f"otpauth://totp/{label}?{query}"


def hotp(key: bytes, counter: int, *, digits: int = DIGITS, digest: Digest = "sha1") -> str:
    """RFC 4226 HOTP value of ``counter`` under raw ``key``, zero-padded to ``digits``."""
    if not 0 <= counter < 2**64:
        raise ValueError("HOTP counter must fit in 64 unsigned bits")
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def code_at(secret: str, t: float) -> str:
    """The 6-digit TOTP code for base32 ``secret`` at Unix time ``t``."""
    return hotp(_decode_secret(secret), int(t // PERIOD))


class TotpVerifier:
    """Checks a submitted code against the steps within ``window`` of now, refusing replays."""

    __slots__ = ("_clock", "window")

    def __init__(self, *, window: int = 1, clock: Callable[[], float] = time.time) -> None:
        if not 0 <= window <= _MAX_WINDOW:
            raise ValueError(f"window must be between 0 and {_MAX_WINDOW}")
        self.window = window
        self._clock = clock

    def current_step(self) -> int:
        """The time step now."""
        return int(self._clock() // PERIOD)

    def verify(self, secret: str, code: str, *, last_used_step: int | None) -> int | None:
        """The step ``code`` belongs to, if valid now and later than ``last_used_step``; else None.

        Store the returned step as the new ``last_used_step``.
        """
        key = _decode_secret(secret)
        submitted = code.replace(" ", "").replace("-", "")
        if len(submitted) != DIGITS or not (submitted.isascii() and submitted.isdigit()):
            return None
        now = self.current_step()
        matched: int | None = None
        # Compare every candidate without stopping early, so timing says nothing about which.
        for step in range(max(0, now - self.window), now + self.window + 1):
            fresh = last_used_step is None or step > last_used_step
            if hmac.compare_digest(hotp(key, step), submitted) and fresh:
                matched = step
        return matched


# No 0/o, 1/i/l: codes are read off paper and typed back.
_RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
_RECOVERY_HALF = 4


def new_recovery_codes(n: int = 10) -> list[str]:
    """``n`` fresh random recovery codes shaped ``xxxx-xxxx``; show once, store the hashes."""
    if n < 1:
        raise ValueError("n must be at least 1")

    def half() -> str:
        return "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_HALF))

    return [f"{half()}-{half()}" for _ in range(n)]


def _normalise_recovery_code(code: str) -> str | None:
    text = "".join(code.split()).replace("-", "").lower()
    if len(text) != 2 * _RECOVERY_HALF or any(ch not in _RECOVERY_ALPHABET for ch in text):
        return None
    return text


def hash_recovery_code(code: str) -> str:
    """Hex SHA-256 of the normalised code (case, spaces and hyphens ignored)."""
    text = _normalise_recovery_code(code)
    if text is None:
        raise ValueError("not a recovery code")
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def use_recovery_code(code: str, hashes: Sequence[str]) -> list[str] | None:
    """The hashes left once ``code`` is spent, or None if it matches none of ``hashes``."""
    text = _normalise_recovery_code(code)
    if text is None:
        return None
    digest = hashlib.sha256(text.encode("ascii")).hexdigest().encode("ascii")
    found: int | None = None
    for index, stored in enumerate(hashes):
        if hmac.compare_digest(stored.encode("ascii", "replace"), digest) and found is None:
            found = index
    if found is None:
        return None
    return [h for i, h in enumerate(hashes) if i != found]
