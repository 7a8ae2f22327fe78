"""Password hashing (argon2id) and the password policy for people signing in to the hub.

Passwords are normalised to Unicode NFKC before hashing (NIST SP 800-63B §5.1.1.2), so the
same password typed on systems that compose characters differently still verifies. Hashing
costs ~64 MiB and tens of milliseconds of CPU: the async variants run it in a worker thread,
at most ``max_concurrency`` at a time, so the event loop never stalls and a burst of logins
cannot exhaust memory.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import string
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import anyio
import anyio.to_thread
import argon2
from argon2.exceptions import Argon2Error

from hub.errors import HubError

__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "Argon2Parameters",
    "PasswordHasher",
    "check_policy",
]

#: Policy bounds, in characters after NFKC normalisation.
MIN_LENGTH = 12
MAX_LENGTH = 128
_MIN_DISTINCT = 5
#: Longer input cannot be a valid password; refusing it early bounds the work an attacker buys.
_MAX_INPUT_CHARS = 1024
#: Stored hashes asking for more than this are treated as malformed, not attempted.
_MAX_STORED_MEMORY_KIB = 1024 * 1024
_MAX_STORED_TIME_COST = 64
_MAX_STORED_PARALLELISM = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class Argon2Parameters:
    """Argon2id cost parameters; the defaults follow OWASP and RFC 9106 (t=3, 64 MiB, p=1)."""

    time_cost: int = 3
    memory_cost_kib: int = 64 * 1024
    parallelism: int = 1
    hash_len: int = 32
    salt_len: int = 16

    def __post_init__(self) -> None:
        if self.time_cost < 1 or self.parallelism < 1:
            raise ValueError("time_cost and parallelism must be at least 1")
        if self.memory_cost_kib < 8 * self.parallelism:
            raise ValueError("memory_cost_kib must be at least 8 x parallelism")
        if self.hash_len < 16 or self.salt_len < 16:
            raise ValueError("hash_len and salt_len must be at least 16 bytes")


def _normalise(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


class PasswordHasher:
    """Hashes and verifies passwords with argon2id; never lets an argon2 exception escape."""

    __slots__ = ("_dummy_hash", "_dummy_lock", "_hasher", "_limiter", "parameters")

    def __init__(
        self,
        parameters: Argon2Parameters | None = None,
        *,
        max_concurrency: int | None = None,
    ) -> None:
        self.parameters = parameters or Argon2Parameters()
        p = self.parameters
        self._hasher = argon2.PasswordHasher(
            time_cost=p.time_cost,
            memory_cost=p.memory_cost_kib,
            parallelism=p.parallelism,
            hash_len=p.hash_len,
            salt_len=p.salt_len,
            type=argon2.Type.ID,
        )
        # More concurrent hashes than cores adds memory, not throughput.
        self._limiter = anyio.CapacityLimiter(max_concurrency or os.cpu_count() or 1)
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    def hash(self, password: str) -> str:
        """Return the PHC-format argon2id hash of ``password`` (fresh random salt)."""
        try:
            return self._hasher.hash(_normalise(password))
        except (Argon2Error, UnicodeError) as exc:
            raise HubError("password hashing failed") from exc

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; ``None`` (no such account) costs the same."""
        if stored is None:
            return self.dummy_verify(password)
        if len(password) > _MAX_INPUT_CHARS or not self._plausible(stored):
            return False
        try:
            return self._hasher.verify(stored, _normalise(password))
        except (Argon2Error, ValueError):
            # Mismatch, malformed hash, or a password that cannot be encoded.
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` is malformed or made with other parameters, so hash again."""
        try:
            return self._hasher.check_needs_rehash(stored)
        except (Argon2Error, ValueError):
            return True

    def dummy_verify(self, password: str = "") -> bool:
        """Spend the time of a real verification and return False, when there is no account."""
        with contextlib.suppress(Argon2Error, ValueError):
            self._hasher.verify(self._get_dummy_hash(), _normalise(password[:_MAX_INPUT_CHARS]))
        return False

    async def ahash(self, password: str) -> str:
        """:meth:`hash` in a worker thread."""
        return await anyio.to_thread.run_sync(self.hash, password, limiter=self._limiter)

    async def averify(self, stored: str | None, password: str) -> bool:
        """:meth:`verify` in a worker thread."""
        return await anyio.to_thread.run_sync(self.verify, stored, password, limiter=self._limiter)

    async def adummy_verify(self, password: str = "") -> bool:
        """:meth:`dummy_verify` in a worker thread."""
        return await anyio.to_thread.run_sync(self.dummy_verify, password, limiter=self._limiter)

    def _get_dummy_hash(self) -> str:
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))
            return self._dummy_hash

    @staticmethod
    def _plausible(stored: str) -> bool:
        # A corrupt or hostile row must not make us allocate gigabytes.
        try:
            p = argon2.extract_parameters(stored)
        except (Argon2Error, ValueError):
            return False
        return (
            p.memory_cost <= _MAX_STORED_MEMORY_KIB
            and p.time_cost <= _MAX_STORED_TIME_COST
            and p.parallelism <= _MAX_STORED_PARALLELISM
        )


# The most common leaked passwords and the base words people decorate with digits and symbols.
_COMMON_TEXT = """
    123456 123456789 12345678 12345 1234567 1234567890 123123 111111 000000 654321 666666
    987654321 123321 121212 7777777 112233 password password1 password12 password123
    password1234 passw0rd p@ssw0rd p@ssword qwerty qwerty123 qwerty123456 qwertyuiop
    qwertyuiop123 qwertyuiopasdfghjkl asdfghjkl asdf1234 zxcvbnm zxcvbnm123 1q2w3e 1q2w3e4r
    1q2w3e4r5t 1q2w3e4r5t6y 1qaz2wsx 1qaz2wsx3edc zaq12wsx zaq1zaq1 qazwsx 123qweasdzxc
    abc123 abcd1234 abcdefghijkl iloveyou letmein welcome monkey dragon football baseball
    sunshine princess master shadow superman batman trustno1 admin admin123 administrator
    login secret changeme default access freedom whatever starwars hello charlie michael
    jennifer ashley mustang pass1234 passwordpassword 123456789012 1234567890123 111111111111
    aaaaaaaaaaaa correcthorsebatterystaple qwerty1234567 welcome123 letmein123 iloveyou123
    """
_COMMON = frozenset(_COMMON_TEXT.split())
_AFFIXES = string.digits + string.punctuation + string.whitespace
_LEET = str.maketrans({"@": "a", "4": "a", "3": "e", "1": "i", "!": "i", "0": "o", "$": "s"})
_NAME_SPLIT = re.compile(r"[\W_]+")
_MIN_NAME_PART = 3


def _is_common(folded: str) -> bool:
    core = folded.strip(_AFFIXES)
    squashed = folded.replace(" ", "")
    candidates = {folded, squashed, core, folded.translate(_LEET), core.translate(_LEET)}
    return any(c in _COMMON for c in candidates if c)


def check_policy(password: str, *, identifier: str, names: Iterable[str] = ()) -> list[str]:
    """Reasons ``password`` is not acceptable for this person, as sentences; empty when it is."""
    text = _normalise(password)
    folded = text.casefold()
    reasons: list[str] = []
    if len(text) < MIN_LENGTH:
        reasons.append(f"Use at least {MIN_LENGTH} characters.")
    if len(text) > MAX_LENGTH:
        reasons.append(f"Use at most {MAX_LENGTH} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        reasons.append("Do not use control characters.")
    if len(set(folded)) < _MIN_DISTINCT:
        reasons.append(f"Use at least {_MIN_DISTINCT} different characters.")
    ident = _normalise(identifier).strip().casefold()
    if len(ident) >= _MIN_NAME_PART and ident in folded:
        reasons.append("Do not include your identifier.")
    parts = {
        part
        for name in names
        for part in _NAME_SPLIT.split(_normalise(name).casefold())
        if len(part) >= _MIN_NAME_PART
    }
    if any(part in folded for part in parts):
        reasons.append("Do not include your name.")
    if _is_common(folded):
        reasons.append("This password is too common; choose one that is harder to guess.")
    return reasons
