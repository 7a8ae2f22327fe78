"""Registered OAuth clients: vendor platforms (a secret hash or a public JWK set) and SSO apps.

A confidential client authenticates with ``client_secret_basic`` or ``private_key_jwt``; a public
client (a browser or mobile app, which can keep no secret) authenticates with ``none`` and is
only ever allowed the authorization code flow with PKCE. Redirect URIs are compared as exact
strings by the authorization endpoint, so they are checked strictly here: absolute ``https``
(plain ``http`` only on a loopback host, RFC 8252 §7.3), no fragment, no wildcard.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

from sqlalchemy import RowMapping, Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hub.db._identity_common import (
    UNIQUE_ATTEMPTS,
    Store,
    check_label,
    check_scopes,
    hash_secret,
    insert_ignore,
)
from hub.db.identity_tables import OAuthClientRow
from hub.errors import Conflict, HubError, InvalidRequest, NotFound

__all__ = [
    "GRANT_TYPES",
    "MAX_REDIRECT_URIS",
    "MAX_REDIRECT_URI_LENGTH",
    "AuthMethod",
    "ClientStore",
    "ClientType",
    "OAuthClient",
    "check_redirect_uris",
]

AuthMethod = Literal["client_secret_basic", "private_key_jwt", "none"]
ClientType = Literal["confidential", "public"]

#: The grants a client may be registered for.
GRANT_TYPES: Final = ("client_credentials", "authorization_code", "refresh_token")
MAX_REDIRECT_URIS: Final = 10
MAX_REDIRECT_URI_LENGTH: Final = 512
# RFC 8252 §7.3: native apps listen on a loopback port; nowhere else is plain http acceptable.
_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})

# JWK members that only a private key has: a client registering one has leaked its key.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_CLIENTS = cast(Table, OAuthClientRow.__table__)


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthClient:
    """A registered OAuth client; ``secret_hash`` or ``jwks`` depending on ``auth_method``."""

    client_id: str
    name: str
    owner: str
    auth_method: AuthMethod
    secret_hash: str | None
    jwks: dict[str, Any] | None
    scopes: tuple[str, ...]
    grant_types: tuple[str, ...]
    created_at: datetime
    disabled_at: datetime | None
    client_type: ClientType = "confidential"
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    #: The hub's own applications: the person is not asked to consent.
    first_party: bool = False


def _client(row: RowMapping) -> OAuthClient:
    return OAuthClient(
        client_id=row["client_id"],
        name=row["name"],
        owner=row["owner"],
        auth_method=cast(AuthMethod, row["auth_method"]),
        secret_hash=row["secret_hash"],
        jwks=None if row["jwks"] is None else dict(row["jwks"]),
        scopes=tuple(row["scopes"]),
        grant_types=tuple(row["grant_types"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
        client_type=cast(ClientType, row["client_type"]),
        redirect_uris=tuple(row["redirect_uris"]),
        post_logout_redirect_uris=tuple(row["post_logout_redirect_uris"]),
        first_party=bool(row["first_party"]),
    )


def check_redirect_uris(uris: Sequence[str], name: str = "redirect_uris") -> list[str]:
    """The URIs, deduplicated in order; InvalidRequest for any that cannot be registered."""
    if isinstance(uris, str):
        raise InvalidRequest(f"{name} must be a list of URIs, not one string")
    checked = list(dict.fromkeys(uris))
    if len(checked) > MAX_REDIRECT_URIS:
        raise InvalidRequest(f"{name} may hold at most {MAX_REDIRECT_URIS} URIs")
    for uri in checked:
        if not isinstance(uri, str) or not uri:
            raise InvalidRequest(f"{name} must hold non-empty strings")
        if len(uri) > MAX_REDIRECT_URI_LENGTH:
            raise InvalidRequest(
                f"{name}: a URI is longer than {MAX_REDIRECT_URI_LENGTH} characters"
            )
        if "*" in uri:
            raise InvalidRequest(f"{name}: wildcards are not allowed: {uri!r}")
        if any(char.isspace() or ord(char) < 0x20 for char in uri):
            raise InvalidRequest(f"{name}: a URI holds whitespace or control characters: {uri!r}")
        try:
            parts = urlsplit(uri)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError as exc:
            raise InvalidRequest(f"{name}: not a valid URI: {uri!r}") from exc
        if "#" in uri:
            raise InvalidRequest(f"{name}: a URI may not have a fragment: {uri!r}")
        if not host or parts.scheme not in ("https", "http"):
            raise InvalidRequest(f"{name}: not an absolute http(s) URI: {uri!r}")
        if parts.scheme == "http" and host not in _LOOPBACK_HOSTS:
            raise InvalidRequest(f"{name}: http is allowed only for loopback hosts: {uri!r}")
        if parts.username is not None or parts.password is not None:
            raise InvalidRequest(f"{name}: a URI may not carry credentials: {uri!r}")
    return checked


def _check_grants(
    client_type: str, grant_types: Sequence[str], redirect_uris: Sequence[str]
) -> list[str]:
    if isinstance(grant_types, str):
        raise InvalidRequest("grant_types must be a list of grant types, not one string")
    grants = list(dict.fromkeys(grant_types))
    unknown = [grant for grant in grants if grant not in GRANT_TYPES]
    if unknown:
        raise InvalidRequest(
            f"unsupported grant types {unknown!r}; choose from {', '.join(GRANT_TYPES)}"
        )
    if client_type == "public" and "client_credentials" in grants:
        raise InvalidRequest("a public client may not use the client_credentials grant")
    if "authorization_code" in grants and not redirect_uris:
        raise InvalidRequest("the authorization_code grant needs at least one redirect URI")
    return grants


def _check_public_jwks(jwks: Mapping[str, Any]) -> None:
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise InvalidRequest("jwks must be a JWK set with at least one key")
    for key in keys:
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            raise InvalidRequest("every key of the jwks must be a JWK object with a kty")
        if _PRIVATE_JWK_MEMBERS & key.keys():
            raise InvalidRequest(
                "the jwks holds private or symmetric key material; send public keys only"
            )


class ClientStore(Store):
    """Registered OAuth clients."""

    async def create(
        self,
        name: str,
        owner: str,
        auth_method: AuthMethod,
        scopes: Sequence[str],
        jwks: dict[str, Any] | None = None,
        *,
        grant_types: Sequence[str] | None = None,
        client_type: ClientType = "confidential",
        redirect_uris: Sequence[str] = (),
        post_logout_redirect_uris: Sequence[str] = (),
        first_party: bool = False,
    ) -> tuple[OAuthClient, str | None]:
        """Register a client; returns it and, with ``client_secret_basic``, its one-time secret.

        ``grant_types`` defaults to ``client_credentials`` for a confidential client and to
        ``authorization_code`` and ``refresh_token`` for a public one.
        """
        if client_type not in ("confidential", "public"):
            raise InvalidRequest(f"client_type must be confidential or public, not {client_type!r}")
        if not isinstance(first_party, bool):
            raise InvalidRequest("first_party must be true or false")
        if client_type == "public":
            if auth_method != "none":
                raise InvalidRequest("a public client authenticates with auth_method none")
            if not redirect_uris:
                raise InvalidRequest("a public client must register at least one redirect URI")
        elif auth_method == "none":
            raise InvalidRequest("a confidential client must authenticate; none is for public ones")
        if grant_types is None:
            grant_types = (
                ("authorization_code", "refresh_token")
                if client_type == "public"
                else ("client_credentials",)
            )
        uris = check_redirect_uris(redirect_uris)
        logout_uris = check_redirect_uris(post_logout_redirect_uris, "post_logout_redirect_uris")
        grants = _check_grants(client_type, grant_types, uris)
        secret: str | None = None
        if auth_method == "none":
            if jwks is not None:
                raise InvalidRequest("a public client registers no jwks")
        elif auth_method == "client_secret_basic":
            if jwks is not None:
                raise InvalidRequest("a client_secret_basic client registers no jwks")
            secret = secrets.token_urlsafe(32)
        elif auth_method == "private_key_jwt":
            if jwks is None:
                raise InvalidRequest("a private_key_jwt client must register its public jwks")
            _check_public_jwks(jwks)
        else:
            raise InvalidRequest(f"unsupported client authentication method: {auth_method!r}")
        values = {
            "name": check_label(name, "name"),
            "owner": check_label(owner, "owner"),
            "auth_method": auth_method,
            "secret_hash": None if secret is None else hash_secret(secret),
            "jwks": jwks,
            "scopes": check_scopes(scopes),
            "grant_types": grants,
            "created_at": self._clock(),
            "disabled_at": None,
            "client_type": client_type,
            "redirect_uris": uris,
            "post_logout_redirect_uris": logout_uris,
            "first_party": first_party,
        }
        async with self._write() as conn:
            for _ in range(UNIQUE_ATTEMPTS):
                client_id = "cli_" + secrets.token_hex(8)
                inserted = await conn.execute(
                    insert_ignore(conn, _CLIENTS)
                    .values(client_id=client_id, **values)
                    .returning(*_CLIENTS.columns)
                )
                row = inserted.mappings().first()
                if row is not None:
                    return _client(row), secret
        raise HubError("could not allocate a unique client id")

    async def get(self, client_id: str) -> OAuthClient | None:
        """The client ``client_id``, disabled or not, or ``None``."""
        statement = select(_CLIENTS).where(OAuthClientRow.client_id == client_id)
        async with self._read() as conn:
            row = (await conn.execute(statement)).mappings().first()
        return None if row is None else _client(row)

    async def list(self) -> list[OAuthClient]:
        """Every client, oldest first."""
        statement = select(_CLIENTS).order_by(OAuthClientRow.created_at, OAuthClientRow.client_id)
        async with self._read() as conn:
            rows = (await conn.execute(statement)).mappings().all()
        return [_client(row) for row in rows]

    async def update_redirect_uris(
        self,
        client_id: str,
        redirect_uris: Sequence[str] | None = None,
        post_logout_redirect_uris: Sequence[str] | None = None,
    ) -> OAuthClient:
        """Replace a client's redirect URIs and/or post-logout ones (``None`` keeps them)."""
        async with self._write() as conn:
            client = await self._locked(conn, client_id)
            uris = (
                list(client.redirect_uris)
                if redirect_uris is None
                else check_redirect_uris(redirect_uris)
            )
            logout_uris = (
                list(client.post_logout_redirect_uris)
                if post_logout_redirect_uris is None
                else check_redirect_uris(post_logout_redirect_uris, "post_logout_redirect_uris")
            )
            if client.client_type == "public" and not uris:
                raise InvalidRequest("a public client must keep at least one redirect URI")
            _check_grants(client.client_type, client.grant_types, uris)
            row = (
                (
                    await conn.execute(
                        update(OAuthClientRow)
                        .where(OAuthClientRow.client_id == client_id)
                        .values(redirect_uris=uris, post_logout_redirect_uris=logout_uris)
                        .returning(*_CLIENTS.columns)
                    )
                )
                .mappings()
                .one()
            )
        return _client(row)

    async def rotate_secret(self, client_id: str) -> str:
        """Replace the secret of a ``client_secret_basic`` client; the old one stops at once."""
        secret = secrets.token_urlsafe(32)
        async with self._write() as conn:
            client = await self._locked(conn, client_id)
            if client.auth_method != "client_secret_basic":
                raise Conflict(f"client {client_id!r} authenticates with {client.auth_method}")
            if client.disabled_at is not None:
                raise Conflict(f"client {client_id!r} is disabled")
            await conn.execute(
                update(OAuthClientRow)
                .where(OAuthClientRow.client_id == client_id)
                .values(secret_hash=hash_secret(secret))
            )
        return secret

    async def disable(self, client_id: str) -> None:
        """Disable the client for good; disabling it again keeps the first date."""
        async with self._write() as conn:
            client = await self._locked(conn, client_id)
            if client.disabled_at is None:
                await conn.execute(
                    update(OAuthClientRow)
                    .where(OAuthClientRow.client_id == client_id)
                    .values(disabled_at=self._clock())
                )

    @staticmethod
    async def _locked(conn: AsyncConnection, client_id: str) -> OAuthClient:
        statement = select(_CLIENTS).where(OAuthClientRow.client_id == client_id).with_for_update()
        row = (await conn.execute(statement)).mappings().first()
        if row is None:
            raise NotFound(f"client {client_id!r} does not exist")
        return _client(row)
