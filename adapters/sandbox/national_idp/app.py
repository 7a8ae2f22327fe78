"""The sandbox national identity provider as a Litestar app: ``create_app(config)``.

Endpoints (paths relative to the issuer):

- ``GET /.well-known/openid-configuration``, ``GET /jwks.json``: metadata and the RS256 key;
- ``GET /authorize``: the sign-in page; ``POST /authorize``: the form it posts (the request
  again as hidden fields, ``national_id``, ``password``, ``action`` = ``sign_in``|``cancel``);
- ``POST /token``: ``authorization_code`` with ``client_secret_basic`` or ``client_secret_post``;
- ``GET /userinfo``: the person's claims for a bearer access token;
- sandbox only: ``POST /_sandbox/faults`` (JSON ``{"token_status": 500|null, "latency_ms":
  int}``; keys left out keep their value) and ``GET /_sandbox/health``.

The added latency delays every endpoint except ``/_sandbox/*``; ``token_status`` makes
``/token`` answer that status (with an RFC 6749 error body) without reading the request.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

import anyio
from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import MediaType

from adapters.sandbox.national_idp._pages import error_page, sign_in_page
from adapters.sandbox.national_idp.domain import (
    AUTHORIZE_PATH,
    JWKS_PATH,
    TOKEN_PATH,
    USERINFO_PATH,
    AuthorizationRequest,
    IdpConfig,
    LoginFailed,
    NationalIdp,
    OAuthError,
    PageError,
    RedirectError,
    discovery_document,
)

__all__ = ["FAULTS_PATH", "HEALTH_PATH", "IdpConfig", "create_app"]

FAULTS_PATH: Final = "/_sandbox/faults"
HEALTH_PATH: Final = "/_sandbox/health"
_STATE_KEY: Final = "national_idp"
_MAX_BODY: Final = 64 * 1024
_MAX_FIELDS: Final = 32
_MAX_LATENCY_MS: Final = 60_000
_FORM: Final = "application/x-www-form-urlencoded"
_PAGE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
}
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_REALM: Final = 'realm="national-idp-sandbox"'


class _Malformed(Exception):
    """A request body or query the sandbox refuses to read."""


def _idp(request: Request[Any, Any, Any]) -> NationalIdp:
    idp: NationalIdp = request.app.state[_STATE_KEY]
    return idp


def _single(pairs: list[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            # RFC 6749 §3.1: request parameters MUST NOT be included more than once.
            raise _Malformed(f"parameter {name[:40]!r} is repeated")
        params[name] = value
    return params


async def _read_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    media_type, _ = request.content_type
    if media_type.lower() != _FORM:
        raise _Malformed(f"the body must be {_FORM}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise _Malformed("the body is too large")
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except ValueError:
        raise _Malformed("the body is not a well-formed form") from None
    return _single(pairs)


def _html(content: str, status: int = 200) -> Response[str]:
    return Response(content, status_code=status, media_type=MediaType.HTML, headers=_PAGE_HEADERS)


def _redirect(redirect_uri: str, params: dict[str, str]) -> Response[str]:
    scheme, netloc, path, query, _ = urlsplit(redirect_uri)
    merged = [*parse_qsl(query, keep_blank_values=True), *params.items()]
    location = urlunsplit((scheme, netloc, path, urlencode(merged), ""))
    headers = {"Location": location, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return Response("", status_code=303, headers=headers, media_type=MediaType.TEXT)


def _redirect_error(idp: NationalIdp, exc: RedirectError) -> Response[str]:
    params = {
        "error": exc.error,
        "error_description": exc.description,
        "state": exc.request.state,
        "iss": idp.config.issuer,
    }
    return _redirect(exc.request.redirect_uri, params)


def _oauth_error(exc: OAuthError) -> Response[dict[str, Any]]:
    headers = dict(_NO_STORE)
    if exc.error == "invalid_client":
        headers["WWW-Authenticate"] = f"Basic {_REALM}"
    elif exc.status == 401:
        headers["WWW-Authenticate"] = f'Bearer {_REALM}, error="{exc.error}"'
    body = {"error": exc.error, "error_description": exc.description}
    return Response(body, status_code=exc.status, headers=headers, media_type=MediaType.JSON)


async def _latency(request: Request[Any, Any, Any]) -> None:
    if request.url.path.startswith("/_sandbox/"):
        return
    delay = _idp(request).faults.latency_ms
    if delay > 0:
        await anyio.sleep(delay / 1000)


@get("/.well-known/openid-configuration", sync_to_thread=False)
def openid_configuration(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """OpenID Provider metadata."""
    return discovery_document(_idp(request).config.issuer)


@get(JWKS_PATH, sync_to_thread=False)
def jwks(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The public key that verifies ID tokens."""
    return _idp(request).key.jwks()


@get(AUTHORIZE_PATH, sync_to_thread=False)
def authorize_page(request: Request[Any, Any, Any]) -> Response[str]:
    """Check the authorization request, then show the sign-in page."""
    idp = _idp(request)
    try:
        params = _single(list(request.query_params.multi_items()))
        authz = idp.check_request(params)
    except (_Malformed, PageError) as exc:
        return _html(error_page(str(exc)), 400)
    except RedirectError as exc:
        return _redirect_error(idp, exc)
    return _html(sign_in_page(authz.form_fields(), idp.people.values()))


@post(AUTHORIZE_PATH)
async def authorize_submit(request: Request[Any, Any, Any]) -> Response[str]:
    """Sign in (or cancel) and send the browser back with a code (or an error)."""
    idp = _idp(request)
    try:
        form = await _read_form(request)
        authz: AuthorizationRequest = idp.check_request(form)
    except (_Malformed, PageError) as exc:
        return _html(error_page(str(exc)), 400)
    except RedirectError as exc:
        return _redirect_error(idp, exc)
    if form.get("action") == "cancel":
        denied = RedirectError("access_denied", "the person cancelled the sign-in", authz)
        return _redirect_error(idp, denied)
    national_id = form.get("national_id", "").strip()
    try:
        person = idp.sign_in(national_id, form.get("password", ""))
    except LoginFailed as exc:
        page = sign_in_page(
            authz.form_fields(), idp.people.values(), error=str(exc), national_id=national_id
        )
        return _html(page, 400)
    code = idp.issue_code(authz, person)
    return _redirect(
        authz.redirect_uri, {"code": code, "state": authz.state, "iss": idp.config.issuer}
    )


def _client_credentials(request: Request[Any, Any, Any], form: dict[str, str]) -> tuple[str, str]:
    headers = request.headers.getall("authorization", [])
    form_id = form.pop("client_id", None)
    form_secret = form.pop("client_secret", None)
    if len(headers) > 1:
        raise OAuthError("invalid_request", "more than one Authorization header")
    if not headers:
        if form_id is None or form_secret is None:
            raise OAuthError("invalid_client", "no client authentication", 401)
        return form_id, form_secret
    if form_secret is not None:
        raise OAuthError("invalid_request", "more than one client authentication method")
    scheme, _, credentials = headers[0].partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", "unsupported authentication scheme", 401)
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
    raw_id, sep, raw_secret = decoded.partition(":")
    if not sep:
        raise OAuthError("invalid_client", "malformed Basic credentials", 401)
    # RFC 6749 §2.3.1: both halves are form-urlencoded before being joined.
    client_id, client_secret = unquote_plus(raw_id), unquote_plus(raw_secret)
    if form_id is not None and form_id != client_id:
        raise OAuthError("invalid_request", "client_id differs from the authenticated client")
    return client_id, client_secret


@post(TOKEN_PATH, status_code=200)
async def token(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Exchange an authorization code for an access token and an ID token."""
    idp = _idp(request)
    status = idp.faults.token_status
    if status is not None:
        error = "temporarily_unavailable" if status == 503 else "server_error"
        injected = OAuthError(error, f"sandbox fault injection: status {status}", status)
        return _oauth_error(injected)
    try:
        try:
            form = await _read_form(request)
        except _Malformed as exc:
            raise OAuthError("invalid_request", str(exc)) from None
        client_id, client_secret = _client_credentials(request, form)
        idp.authenticate_client(client_id, client_secret)
        if form.get("grant_type") != "authorization_code":
            raise OAuthError("unsupported_grant_type", "only authorization_code")
        code = form.get("code")
        if not code:
            raise OAuthError("invalid_request", "code is required")
        answer = idp.redeem(
            client_id=client_id,
            code=code,
            redirect_uri=form.get("redirect_uri"),
            code_verifier=form.get("code_verifier"),
        )
    except OAuthError as exc:
        return _oauth_error(exc)
    return Response(answer, headers=_NO_STORE, media_type=MediaType.JSON)


@get(USERINFO_PATH, sync_to_thread=False)
def userinfo(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """The claims of the person the bearer access token was issued for."""
    headers = request.headers.getall("authorization", [])
    scheme, _, access_token = headers[0].partition(" ") if len(headers) == 1 else ("", "", "")
    try:
        if scheme.lower() != "bearer" or not access_token.strip():
            raise OAuthError("invalid_request", "a Bearer access token is required", 401)
        claims = _idp(request).userinfo(access_token.strip())
    except OAuthError as exc:
        return _oauth_error(exc)
    return Response(dict(claims), headers=_NO_STORE, media_type=MediaType.JSON)


def _fault_value(name: str, value: Any) -> int | None:
    if name == "token_status":
        if value is None or (type(value) is int and 400 <= value <= 599):
            return value
        raise _Malformed("token_status must be null or an HTTP error status (400-599)")
    if type(value) is int and 0 <= value <= _MAX_LATENCY_MS:
        return value
    raise _Malformed(f"latency_ms must be an integer from 0 to {_MAX_LATENCY_MS}")


@post(FAULTS_PATH, status_code=200)
async def set_faults(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """Sandbox only: make ``/token`` fail and add latency to every endpoint."""
    faults = _idp(request).faults
    try:
        document = json.loads(await request.body())
        if not isinstance(document, dict) or not set(document) <= {"token_status", "latency_ms"}:
            raise _Malformed('expected {"token_status": int|null, "latency_ms": int}')
        values = {name: _fault_value(name, value) for name, value in document.items()}
    except (ValueError, _Malformed) as exc:
        return Response({"error": str(exc)}, status_code=400, media_type=MediaType.JSON)
    if "token_status" in values:
        faults.token_status = values["token_status"]
    latency = values.get("latency_ms")
    if latency is not None:
        faults.latency_ms = latency
    return Response(faults.as_dict(), media_type=MediaType.JSON)


@get(HEALTH_PATH, sync_to_thread=False)
def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Sandbox only: liveness, the issuer and the injected faults."""
    idp = _idp(request)
    return {"status": "ok", "issuer": idp.config.issuer, "faults": idp.faults.as_dict()}


def create_app(config: IdpConfig) -> Litestar:
    """A sandbox national IdP for ``config``, with a fresh signing key."""
    return Litestar(
        route_handlers=[
            openid_configuration,
            jwks,
            authorize_page,
            authorize_submit,
            token,
            userinfo,
            set_faults,
            health,
        ],
        state=State({_STATE_KEY: NationalIdp(config)}),
        before_request=_latency,
        openapi_config=None,
    )
