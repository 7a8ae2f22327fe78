"""Admin API for credentials: OAuth clients (vendor platforms and SSO apps) and API keys.

Secrets (a client secret, an API key) appear in exactly one answer, the one that created or
rotated them, marked ``Cache-Control: no-store``; lists and reads never carry them, nor their
hashes, and the audit log names ids and public prefixes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import structlog
from litestar import Controller, Request, get, patch, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from hub.admin.guard import admin_guard
from hub.db.identity_store import ApiKeyRecord, AuthMethod, ClientType, OAuthClient
from hub.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from hub.runtime import IdentityStores, Runtime

__all__ = [
    "AdminCredentialsController",
    "ApiKeyCreate",
    "ApiKeyIssued",
    "ApiKeyView",
    "ClientCreate",
    "ClientCreated",
    "ClientSecret",
    "ClientUpdate",
    "ClientView",
]

log = structlog.get_logger("hub.admin")

RuntimeDep: TypeAlias = NamedDependency[Runtime]

# Answers that carry a secret must not be kept by any cache on the way.
_NO_STORE = CacheControlHeader(no_store=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCreate:
    """An OAuth client to register: a vendor platform, or an application signing people in.

    ``grant_types`` defaults to ``client_credentials`` for a confidential client and to
    ``authorization_code`` and ``refresh_token`` for a public one.
    """

    name: str
    owner: str
    scopes: tuple[str, ...]
    auth_method: AuthMethod
    jwks: dict[str, Any] | None = None
    client_type: ClientType = "confidential"
    grant_types: tuple[str, ...] | None = None
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    first_party: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientUpdate:
    """New redirect URIs of a client; a field left out keeps its value."""

    redirect_uris: tuple[str, ...] | None = None
    post_logout_redirect_uris: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientView:
    """A registered client, without any secret."""

    client_id: str
    name: str
    owner: str
    auth_method: AuthMethod
    scopes: tuple[str, ...]
    grant_types: tuple[str, ...]
    jwks: dict[str, Any] | None
    created_at: datetime
    disabled_at: datetime | None
    client_type: ClientType
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    first_party: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientCreated(ClientView):
    """A new client with its secret (``client_secret_basic`` only), shown this once."""

    client_secret: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSecret:
    """A client's new secret, shown this once."""

    client_id: str
    client_secret: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyCreate:
    """An API key to issue, optionally bound to a client and expiring."""

    name: str
    scopes: tuple[str, ...]
    client_id: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyView:
    """An API key record: its public prefix, never the key or its hash."""

    id: str
    prefix: str
    name: str
    scopes: tuple[str, ...]
    client_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyIssued(ApiKeyView):
    """A new or rotated API key with the key itself, shown this once."""

    api_key: str


def _client_fields(client: OAuthClient) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "owner": client.owner,
        "auth_method": client.auth_method,
        "scopes": client.scopes,
        "grant_types": client.grant_types,
        "jwks": client.jwks,
        "created_at": client.created_at,
        "disabled_at": client.disabled_at,
        "client_type": client.client_type,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "first_party": client.first_party,
    }


def _key_fields(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "prefix": record.prefix,
        "name": record.name,
        "scopes": record.scopes,
        "client_id": record.client_id,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
    }


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _stores(runtime: Runtime) -> IdentityStores:
    if runtime.identity is None:
        raise ServiceUnavailable("the identity stores are not started")
    return runtime.identity


class AdminCredentialsController(Controller):
    """OAuth clients and API keys of vendor platforms: register, list, rotate, disable, revoke."""

    path = "/admin/api"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False)}

    # --- OAuth clients ---------------------------------------------------------------------

    @post("/clients", status_code=HTTP_201_CREATED, cache_control=_NO_STORE)
    async def create_client(
        self, runtime: RuntimeDep, data: JSONBody[ClientCreate]
    ) -> ClientCreated:
        """Register a client; a ``client_secret_basic`` client's secret is in this answer only."""
        client, secret = await _stores(runtime).clients.create(
            name=data.name,
            owner=data.owner,
            auth_method=data.auth_method,
            scopes=data.scopes,
            jwks=data.jwks,
            grant_types=data.grant_types,
            client_type=data.client_type,
            redirect_uris=data.redirect_uris,
            post_logout_redirect_uris=data.post_logout_redirect_uris,
            first_party=data.first_party,
        )
        log.info(
            "admin.client_created",
            client_id=client.client_id,
            method=client.auth_method,
            client_type=client.client_type,
        )
        return ClientCreated(**_client_fields(client), client_secret=secret)

    @get("/clients")
    async def list_clients(self, runtime: RuntimeDep) -> list[ClientView]:
        """Every client, oldest first, without secrets."""
        clients = await _stores(runtime).clients.list()
        return [ClientView(**_client_fields(client)) for client in clients]

    @get("/clients/{client_id:str}")
    async def get_client(self, runtime: RuntimeDep, client_id: FromPath[str]) -> ClientView:
        """One client, without its secret."""
        client = await _stores(runtime).clients.get(client_id)
        if client is None:
            raise NotFound(f"client {client_id!r} does not exist")
        return ClientView(**_client_fields(client))

    @patch("/clients/{client_id:str}", status_code=HTTP_200_OK)
    async def update_client(
        self, runtime: RuntimeDep, client_id: FromPath[str], data: JSONBody[ClientUpdate]
    ) -> ClientView:
        """Replace a client's redirect URIs and/or post-logout redirect URIs."""
        client = await _stores(runtime).clients.update_redirect_uris(
            client_id,
            redirect_uris=data.redirect_uris,
            post_logout_redirect_uris=data.post_logout_redirect_uris,
        )
        log.info("admin.client_updated", client_id=client_id)
        return ClientView(**_client_fields(client))

    @post(
        "/clients/{client_id:str}/rotate-secret", status_code=HTTP_200_OK, cache_control=_NO_STORE
    )
    async def rotate_client_secret(
        self, runtime: RuntimeDep, client_id: FromPath[str]
    ) -> ClientSecret:
        """Give a ``client_secret_basic`` client a new secret; the old one stops at once."""
        secret = await _stores(runtime).clients.rotate_secret(client_id)
        log.info("admin.client_secret_rotated", client_id=client_id)
        return ClientSecret(client_id=client_id, client_secret=secret)

    @post("/clients/{client_id:str}/disable", status_code=HTTP_200_OK)
    async def disable_client(self, runtime: RuntimeDep, client_id: FromPath[str]) -> ClientView:
        """Disable a client for good: it gets no more tokens (idempotent)."""
        clients = _stores(runtime).clients
        await clients.disable(client_id)
        client = await clients.get(client_id)
        if client is None:  # pragma: no cover - clients are never deleted
            raise NotFound(f"client {client_id!r} does not exist")
        log.info("admin.client_disabled", client_id=client_id)
        return ClientView(**_client_fields(client))

    # --- API keys --------------------------------------------------------------------------

    @post("/apikeys", status_code=HTTP_201_CREATED, cache_control=_NO_STORE)
    async def create_api_key(
        self, runtime: RuntimeDep, data: JSONBody[ApiKeyCreate]
    ) -> ApiKeyIssued:
        """Issue an API key; the key is in this answer only, the hub keeps its hash."""
        stores = _stores(runtime)
        if data.expires_at is not None:
            if data.expires_at.tzinfo is None:
                raise InvalidRequest("expires_at must be a timezone-aware datetime")
            if data.expires_at <= datetime.now(UTC):
                raise InvalidRequest("expires_at must be in the future")
        if data.client_id is not None:
            client = await stores.clients.get(data.client_id)
            if client is None:
                raise NotFound(f"client {data.client_id!r} does not exist")
            if client.disabled_at is not None:
                raise Conflict(f"client {data.client_id!r} is disabled")
        record, plaintext = await stores.api_keys.create(
            name=data.name,
            scopes=data.scopes,
            client_id=data.client_id,
            expires_at=data.expires_at,
        )
        log.info("admin.apikey_created", key_id=record.id, prefix=record.prefix)
        return ApiKeyIssued(**_key_fields(record), api_key=plaintext)

    @get("/apikeys")
    async def list_api_keys(self, runtime: RuntimeDep) -> list[ApiKeyView]:
        """Every API key record, oldest first, by prefix: never the keys."""
        records = await _stores(runtime).api_keys.list()
        return [ApiKeyView(**_key_fields(record)) for record in records]

    @get("/apikeys/{key_id:str}")
    async def get_api_key(self, runtime: RuntimeDep, key_id: FromPath[str]) -> ApiKeyView:
        """One API key record, never the key."""
        record = await _stores(runtime).api_keys.get(key_id)
        if record is None:
            raise NotFound(f"API key {key_id!r} does not exist")
        return ApiKeyView(**_key_fields(record))

    @post("/apikeys/{key_id:str}/revoke", status_code=HTTP_200_OK)
    async def revoke_api_key(self, runtime: RuntimeDep, key_id: FromPath[str]) -> ApiKeyView:
        """Revoke a key for good (idempotent); this replica refuses it from the next request."""
        api_keys = _stores(runtime).api_keys
        await api_keys.revoke(key_id)
        record = await api_keys.get(key_id)
        if record is None:  # pragma: no cover - keys are never deleted
            raise NotFound(f"API key {key_id!r} does not exist")
        # A revoked key is never rotated again, so this prefix is its last one.
        runtime.forget_api_key(record.prefix)
        log.info("admin.apikey_revoked", key_id=key_id, prefix=record.prefix)
        return ApiKeyView(**_key_fields(record))

    @post("/apikeys/{key_id:str}/rotate", status_code=HTTP_200_OK, cache_control=_NO_STORE)
    async def rotate_api_key(self, runtime: RuntimeDep, key_id: FromPath[str]) -> ApiKeyIssued:
        """Give a key a new prefix and secret, keeping its id; the old key stops at once."""
        api_keys = _stores(runtime).api_keys
        old = await api_keys.get(key_id)
        if old is None:
            raise NotFound(f"API key {key_id!r} does not exist")
        record, plaintext = await api_keys.rotate(key_id)
        runtime.forget_api_key(old.prefix)
        log.info("admin.apikey_rotated", key_id=key_id, prefix=record.prefix, old=old.prefix)
        return ApiKeyIssued(**_key_fields(record), api_key=plaintext)
