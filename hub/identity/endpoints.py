"""The hub's OAuth 2.0 / OpenID Connect endpoints, as a Litestar router.

``GET /.well-known/openid-configuration`` and ``GET /.well-known/jwks.json`` publish what a
client or relying party needs; ``POST /oauth2/token``, ``/oauth2/introspect`` and
``/oauth2/revoke`` hand a checked form to :class:`~hub.identity.oauth.HubAuthorizationServer`.
The browser-facing SSO endpoints live in their own modules: ``/oauth2/authorize``
(:mod:`hub.identity.authorize`), ``/oauth2/userinfo`` (:mod:`hub.identity.userinfo`) and
``/oauth2/logout`` (:mod:`hub.identity.logout`).

The token-side handlers take their collaborators from ``request.app.state``:

- ``settings``: :class:`~hub.settings.Settings` (``issuer``, ``audience``, token lifetimes);
- ``keyring``: :class:`~hub.identity.keys.KeyRing`, loaded;
- ``identity``: the identity stores (:class:`~hub.identity.oauth.IdentityStores`);
- ``runtime`` (optional): its ``ephemeral`` store holds the authorization codes.

The authorization server built from them is kept in ``app.state.identity_oauth_server`` and
rebuilt if any of them is replaced.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.enums import MediaType

from hub.backends.ephemeral.base import EphemeralStore
from hub.errors import ServiceUnavailable
from hub.identity._forms import MalformedForm, printable, read_form
from hub.identity.acr import ACR_LEVELS
from hub.identity.authorize import AUTHORIZE_PATH, authorize
from hub.identity.client_auth import ASSERTION_ALGORITHMS, CLIENT_AUTH_METHODS
from hub.identity.codes import AuthorizationCodes
from hub.identity.directory import Directory
from hub.identity.grants import PKCE_METHOD
from hub.identity.id_tokens import CLAIMS_SUPPORTED, OIDC_SCOPES
from hub.identity.keys import KeyRing
from hub.identity.logout import LOGOUT_PATH, logout, logout_confirmed
from hub.identity.oauth import (
    GRANT_TYPES,
    INTROSPECTION_PATH,
    REVOCATION_PATH,
    TOKEN_PATH,
    FormRequest,
    HubAuthorizationServer,
    IdentityStores,
    oauth_error_response,
)
from hub.identity.tokens import ACCESS_TOKEN_ALGORITHM, TokenIssuer
from hub.identity.userinfo import USERINFO_PATH, userinfo
from hub.problems import REQUEST_ID_STATE_KEY
from hub.settings import Settings

__all__ = [
    "DISCOVERY_PATH",
    "JWKS_PATH",
    "MAX_FORM_BYTES",
    "discovery_document",
    "identity_router",
]

DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
JWKS_PATH: Final = "/.well-known/jwks.json"
#: Far above any legitimate token request (a client assertion is a few kilobytes).
MAX_FORM_BYTES: Final = 64 * 1024
_MAX_FORM_FIELDS: Final = 32
# Relying parties may cache both documents briefly; keys are published well before they sign.
_PUBLIC_CACHE: Final = {"Cache-Control": "public, max-age=60"}
_SERVER_STATE_KEY: Final = "identity_oauth_server"


def discovery_document(
    settings: Settings, *, scopes_supported: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The OpenID Provider / RFC 8414 metadata of the hub.

    ``scopes_supported`` adds API scopes to the OpenID Connect ones.
    """
    issuer = settings.issuer
    auth_methods = list(CLIENT_AUTH_METHODS)
    signing_algs = list(ASSERTION_ALGORITHMS)
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + AUTHORIZE_PATH,
        "token_endpoint": issuer + TOKEN_PATH,
        "userinfo_endpoint": issuer + USERINFO_PATH,
        "end_session_endpoint": issuer + LOGOUT_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "introspection_endpoint": issuer + INTROSPECTION_PATH,
        "revocation_endpoint": issuer + REVOCATION_PATH,
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": [PKCE_METHOD],
        "scopes_supported": list(dict.fromkeys((*OIDC_SCOPES, *scopes_supported))),
        "claims_supported": list(CLAIMS_SUPPORTED),
        "acr_values_supported": list(ACR_LEVELS),
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ACCESS_TOKEN_ALGORITHM],
        "token_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "token_endpoint_auth_signing_alg_values_supported": signing_algs,
        "introspection_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": signing_algs,
        "revocation_endpoint_auth_methods_supported": [*auth_methods, "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
        "authorization_response_iss_parameter_supported": True,
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }


def _state(request: Request[Any, Any, Any], name: str) -> Any:
    value = request.app.state.get(name)
    if value is None:
        raise ServiceUnavailable(f"the identity endpoints are not ready: no app.state.{name}")
    return value


def _server(request: Request[Any, Any, Any]) -> HubAuthorizationServer:
    settings: Settings = _state(request, "settings")
    keyring: KeyRing = _state(request, "keyring")
    identity: IdentityStores = _state(request, "identity")
    state: State = request.app.state
    ephemeral: EphemeralStore | None = getattr(state.get("runtime"), "ephemeral", None)
    # Optional: without it person tokens carry no roles and no client acts for an establishment.
    directory: Directory | None = state.get("directory")
    server = state.get(_SERVER_STATE_KEY)
    if (
        isinstance(server, HubAuthorizationServer)
        and server.settings is settings
        and server.stores is identity
        and server.tokens.keyring is keyring
        and server.directory is directory
        and (None if server.codes is None else server.codes.store) is ephemeral
    ):
        return server
    # Two first requests racing build two equivalent servers; either one serves.
    codes = (
        None
        if ephemeral is None
        else AuthorizationCodes(ephemeral, lifetime=settings.auth_code_seconds)
    )
    server = HubAuthorizationServer(
        settings=settings,
        stores=identity,
        tokens=TokenIssuer(keyring, settings),
        codes=codes,
        directory=directory,
    )
    state[_SERVER_STATE_KEY] = server
    return server


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    value = request.scope.get("state", {}).get(REQUEST_ID_STATE_KEY)
    return value if isinstance(value, str) else None


async def _read_form(request: Request[Any, Any, Any]) -> FormRequest:
    authorizations = request.headers.getall("authorization", [])
    if len(authorizations) > 1:
        raise MalformedForm("more than one Authorization header")
    form = await read_form(request, max_bytes=MAX_FORM_BYTES, max_fields=_MAX_FORM_FIELDS)
    if not all(printable(name) and printable(value) for name, value in form.items()):
        raise MalformedForm("form parameters must be printable ASCII")
    return FormRequest(
        uri=_state(request, "settings").issuer + request.url.path,
        form=form,
        authorization=authorizations[0] if authorizations else None,
        request_id=_request_id(request),
    )


async def _form_or_error(
    request: Request[Any, Any, Any],
) -> FormRequest | Response[dict[str, Any]]:
    try:
        return await _read_form(request)
    except MalformedForm as exc:
        return oauth_error_response("invalid_request", str(exc), request_id=_request_id(request))


@get(DISCOVERY_PATH, sync_to_thread=False, tags=["identity"])
def openid_configuration(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """OpenID Provider metadata (also valid RFC 8414 authorization server metadata)."""
    document = discovery_document(_state(request, "settings"))
    return Response(document, headers=_PUBLIC_CACHE, media_type=MediaType.JSON)


@get(JWKS_PATH, sync_to_thread=False, tags=["identity"])
def jwks(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """The public keys that verify the hub's tokens: about to sign, signing, or recently retired."""
    keyring: KeyRing = _state(request, "keyring")
    return Response(keyring.jwks(), headers=_PUBLIC_CACHE, media_type=MediaType.JSON)


@post(TOKEN_PATH, status_code=200, tags=["identity"])
async def token(request: Request[Any, Any, Any]) -> Response[Any]:
    """The token endpoint: ``authorization_code``, ``refresh_token``, ``client_credentials``."""
    server = _server(request)
    form = await _form_or_error(request)
    if isinstance(form, Response):
        return form
    if not form.form.get("grant_type"):
        return oauth_error_response(
            "invalid_request", "the grant_type parameter is required", request_id=form.request_id
        )
    return await server.token_response(form)


@post(INTROSPECTION_PATH, status_code=200, tags=["identity"])
async def introspect(request: Request[Any, Any, Any]) -> Response[Any]:
    """Token introspection (RFC 7662), for an authenticated client."""
    server = _server(request)
    form = await _form_or_error(request)
    if isinstance(form, Response):
        return form
    return await server.introspection_response(form)


@post(REVOCATION_PATH, status_code=200, tags=["identity"])
async def revoke(request: Request[Any, Any, Any]) -> Response[Any]:
    """Token revocation (RFC 7009): a client revokes one of its own tokens."""
    server = _server(request)
    form = await _form_or_error(request)
    if isinstance(form, Response):
        return form
    return await server.revocation_response(form)


def identity_router() -> Router:
    """The identity endpoints, mounted at the root of the hub's Litestar app."""
    return Router(
        path="/",
        route_handlers=[
            openid_configuration,
            jwks,
            authorize,
            token,
            userinfo,
            introspect,
            revoke,
            logout,
            logout_confirmed,
        ],
    )
