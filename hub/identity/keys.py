"""The hub's signing keys in memory: the active key per use, and the public JWK set.

Two uses: ``access`` keys (RS256, RSA 2048) sign access tokens that any relying party can
verify; ``internal`` keys (EdDSA, Ed25519: cheap to sign on every proxied request) sign the
principal tokens sent to upstream services. Rotation follows one rule: a key is published
before it signs, and stays published until every token it signed has expired. So a new key
activates ``key_publish_seconds`` after it is created (longer than relying parties cache the
JWKS), the key it replaces retires at that same instant, and a retired key stays in the JWKS
for the longest token lifetime after it retired.

A third use, ``signature`` (EdDSA), signs documents (:mod:`hub.signing`: a contract's hash,
who signed it and when). A signature must verify long after it was made, so a retired
signature key stays in the JWKS for good; it only stops signing.

Known limitation: private keys are stored in the database as unencrypted PKCS#8 PEM. Anyone
who can read the ``signing_keys`` table can mint tokens; wrapping them with a KMS or a
``HUB_KEY_ENCRYPTION_KEY`` is planned.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from hub.db.identity_store import AlgName, AsyncEngine, Clock, KeyStore, KeyUse, StoredKey
from hub.errors import HubError
from hub.settings import Settings

__all__ = [
    "KEY_ALGORITHMS",
    "KeyRing",
    "PrivateKey",
    "PublicKey",
    "generate_key",
    "rotate_keys",
]

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey

#: The algorithm each use signs with.
KEY_ALGORITHMS: dict[KeyUse, AlgName] = {
    "access": "RS256",
    "internal": "EdDSA",
    "signature": "EdDSA",
}
_USES: tuple[KeyUse, ...] = ("access", "internal", "signature")
#: Uses whose keys stay published after they retire: what they signed is checked for years.
_KEPT_PUBLISHED: frozenset[KeyUse] = frozenset({"signature"})
_RSA_BITS = 2048


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64url(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _public_members(public: PublicKey) -> dict[str, str]:
    # The members RFC 7638 hashes for the thumbprint, which are also all a verifier needs.
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {"e": _int_b64url(numbers.e), "kty": "RSA", "n": _int_b64url(numbers.n)}
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}


def _thumbprint(members: dict[str, str]) -> str:
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def generate_key(use: KeyUse, *, created_at: datetime, activates_at: datetime) -> StoredKey:
    """A new key pair for ``use``; its kid is the RFC 7638 thumbprint of the public key."""
    private: PrivateKey
    if use == "access":
        private = rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    members = _public_members(private.public_key())
    kid = _thumbprint(members)
    alg = KEY_ALGORITHMS[use]
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return StoredKey(
        kid=kid,
        use=use,
        alg=alg,
        private_pem=pem,
        public_jwk={**members, "kid": kid, "alg": alg, "use": "sig"},
        created_at=created_at,
        activates_at=activates_at,
        retired_at=None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Loaded:
    stored: StoredKey
    private: PrivateKey
    public: PublicKey


def _load(stored: StoredKey) -> _Loaded:
    private = serialization.load_pem_private_key(stored.private_pem.encode(), password=None)
    if not isinstance(private, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise HubError(f"signing key {stored.kid!r} is neither RSA nor Ed25519")
    return _Loaded(stored=stored, private=private, public=private.public_key())


class KeyRing:
    """Every stored signing key, parsed once, for signing and for the JWKS document."""

    def __init__(
        self, keys: Iterable[StoredKey], settings: Settings, *, clock: Clock = _utcnow
    ) -> None:
        self._settings = settings
        self._clock = clock
        # Tokens signed just before retirement live this long: the retired key stays published.
        self._retention = timedelta(
            seconds=max(settings.access_token_seconds, settings.internal_token_seconds)
        )
        self._loaded: tuple[_Loaded, ...] = ()
        self._replace(keys)

    @classmethod
    async def load(cls, store: KeyStore, settings: Settings, *, clock: Clock = _utcnow) -> KeyRing:
        """The ring of every stored key; on first start, create a key per use, active at once."""
        keys = await store.list()
        missing = [use for use in _USES if not any(key.use == use for key in keys)]
        if missing:
            now = clock()
            for use in missing:
                # add_first: a replica starting at the same moment may have created it already.
                await store.add_first(generate_key(use, created_at=now, activates_at=now))
            keys = await store.list()
        return cls(keys, settings, clock=clock)

    @property
    def keys(self) -> tuple[StoredKey, ...]:
        """Every key the ring holds, newest activation first."""
        return tuple(entry.stored for entry in self._loaded)

    def signing_key(self, use: KeyUse) -> tuple[str, PrivateKey, AlgName]:
        """``(kid, private key, alg)`` of the newest key of ``use`` that is active now."""
        now = self._clock()
        for entry in self._loaded:
            key = entry.stored
            if key.use != use or key.activates_at > now:
                continue
            if key.retired_at is None or key.retired_at > now:
                return key.kid, entry.private, key.alg
        raise HubError(f"no active {use} signing key: run `hub migrate` and restart, or rotate")

    def jwks(self) -> dict[str, Any]:
        """The public JWK set: keys about to sign, signing, or retired with live tokens."""
        now = self._clock()
        return {"keys": [dict(entry.stored.public_jwk) for entry in self._published(now)]}

    def public_key(self, kid: str) -> PublicKey | None:
        """The public key ``kid`` if it is published (see :meth:`jwks`), else ``None``."""
        for entry in self._published(self._clock()):
            if entry.stored.kid == kid:
                return entry.public
        return None

    async def rotate(self, store: KeyStore, use: KeyUse, now: datetime | None = None) -> StoredKey:
        """Create the next key of ``use``; it signs once published, and the current one retires."""
        created = self._clock() if now is None else now
        activates = created + timedelta(seconds=self._settings.key_publish_seconds)
        key = generate_key(use, created_at=created, activates_at=activates)
        await store.rotate(key)
        await self.refresh(store)
        return key

    async def refresh(self, store: KeyStore) -> None:
        """Reload the keys from the database (another replica may have rotated them)."""
        self._replace(await store.list())

    def _published(self, now: datetime) -> Iterable[_Loaded]:
        for entry in self._loaded:
            retired = entry.stored.retired_at
            if (
                retired is None
                or now < retired + self._retention
                or entry.stored.use in _KEPT_PUBLISHED
            ):
                yield entry

    def _replace(self, keys: Iterable[StoredKey]) -> None:
        # Parsing an RSA key costs milliseconds: reuse what is loaded, parse only new keys.
        known = {entry.stored.kid: entry for entry in self._loaded}
        loaded: list[_Loaded] = []
        for key in keys:
            entry = known.get(key.kid)
            if entry is None:
                entry = _load(key)
            elif entry.stored != key:
                entry = _Loaded(stored=key, private=entry.private, public=entry.public)
            loaded.append(entry)
        loaded.sort(key=lambda entry: (entry.stored.activates_at, entry.stored.created_at))
        loaded.reverse()
        self._loaded = tuple(loaded)


async def rotate_keys(engine: AsyncEngine, settings: Settings, use: KeyUse) -> StoredKey:
    """Rotate the ``use`` key in the database at ``engine`` (for ``hub keys rotate``)."""
    store = KeyStore(engine)
    ring = await KeyRing.load(store, settings)
    return await ring.rotate(store, use)
