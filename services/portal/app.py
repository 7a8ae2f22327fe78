"""The demo citizen portal: signs people in through the hub (authorization code + PKCE).

A public client: it holds no secret, so PKCE (S256) is what binds the code to this browser.
It verifies the ID token against the hub's JWKS (issuer, audience, nonce), keeps the tokens in
its own server-side session, calls a protected API through the gateway with the access token,
and signs out through the hub's end-session endpoint. Sessions live in memory: a demo only.
"""

from __future__ import annotations

import html
import json
import secrets
import warnings
from dataclasses import dataclass
from typing import Any

# authlib.deprecate installs an 'always' filter when first imported: import it before silencing,
# or its filter would land inside the block below and win over ours.
import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401
import httpx
import jwt
from litestar import Litestar, Request, Response, get
from litestar.enums import MediaType
from litestar.response import Redirect

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client  # type: ignore[import-untyped]

__all__ = ["PortalConfig", "create_app"]

_COOKIE = "portal_session"
_SCOPES = "openid profile email national_id"


@dataclass(frozen=True, slots=True, kw_only=True)
class PortalConfig:
    """Where the hub is, who the portal is, and where the portal itself is served."""

    hub: str
    client_id: str
    base_url: str
    api_path: str = "/api/echo/v1/me/profile"


def _page(body: str) -> Response[str]:
    return Response(
        f"<!doctype html><meta charset=utf-8><title>Citizen portal (demo)</title>"
        f"<body style='font-family:sans-serif;max-width:48rem;margin:2rem auto'>"
        f"<h1>Citizen portal (demo)</h1>{body}</body>",
        media_type=MediaType.HTML,
        headers={"Cache-Control": "no-store"},
    )


def create_app(config: PortalConfig) -> Litestar:
    """The portal app for ``config``."""
    sessions: dict[str, dict[str, Any]] = {}
    pending: dict[str, dict[str, str]] = {}
    redirect_uri = config.base_url + "/callback"

    async def discovery() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as http:
            response = await http.get(config.hub + "/.well-known/openid-configuration")
            response.raise_for_status()
            document: dict[str, Any] = response.json()
            return document

    def current(request: Request[Any, Any, Any]) -> dict[str, Any] | None:
        return sessions.get(request.cookies.get(_COOKIE, ""))

    @get("/", sync_to_thread=False)
    def home(request: Request[Any, Any, Any]) -> Response[str]:
        session = current(request)
        if session is None:
            return _page(
                "<p>You are not signed in.</p>"
                "<p><a href='/login'>Sign in with the hub</a> · "
                "<a href='/login?acr=urn:hub:acr:mfa'>Sign in with a second factor</a></p>"
            )
        claims = html.escape(json.dumps(session["claims"], indent=2))
        return _page(
            f"<p>Signed in as <b>{html.escape(str(session['claims'].get('name', '')))}</b>.</p>"
            f"<h2>ID token claims</h2><pre>{claims}</pre>"
            "<p><a href='/api'>Call a protected API through the gateway</a> · "
            "<a href='/logout'>Sign out</a></p>"
        )

    @get("/login")
    async def login(acr: str | None = None) -> Response[Any]:
        metadata = await discovery()
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        verifier = secrets.token_urlsafe(48)
        client = AsyncOAuth2Client(
            config.client_id, redirect_uri=redirect_uri, scope=_SCOPES, code_challenge_method="S256"
        )
        extra = {"acr_values": acr} if acr else {}
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"],
            state=state,
            nonce=nonce,
            code_verifier=verifier,
            **extra,
        )
        pending[state] = {"nonce": nonce, "verifier": verifier}
        return Redirect(url, status_code=303)

    @get("/callback")
    async def callback(request: Request[Any, Any, Any]) -> Response[Any]:
        params = request.query_params
        flow = pending.pop(params.get("state", ""), None)
        if flow is None:
            return _page("<p>This sign-in was not started here (unknown state).</p>")
        if "error" in params:
            return _page(f"<p>Sign-in ended: {html.escape(params['error'])}.</p>")
        metadata = await discovery()
        if params.get("iss") != metadata["issuer"]:
            return _page("<p>The answer did not come from the hub (iss mismatch).</p>")
        async with AsyncOAuth2Client(config.client_id, redirect_uri=redirect_uri) as client:
            token = await client.fetch_token(
                metadata["token_endpoint"],
                code=params.get("code", ""),
                code_verifier=flow["verifier"],
            )
            keys = (await client.get(metadata["jwks_uri"])).json()
        id_token = token["id_token"]
        kid = jwt.get_unverified_header(id_token)["kid"]
        key = next(k for k in jwt.PyJWKSet.from_dict(keys).keys if k.key_id == kid)
        claims = jwt.decode(
            id_token,
            key.key,
            algorithms=["RS256"],
            audience=config.client_id,
            issuer=metadata["issuer"],
        )
        if claims.get("nonce") != flow["nonce"]:
            return _page("<p>The ID token does not answer this sign-in (nonce mismatch).</p>")
        cookie = secrets.token_urlsafe(32)
        sessions[cookie] = {"claims": claims, "token": dict(token)}
        response: Response[Any] = Redirect("/", status_code=303)
        response.set_cookie(_COOKIE, cookie, httponly=True, samesite="lax")
        return response

    @get("/api")
    async def api(request: Request[Any, Any, Any]) -> Response[str]:
        session = current(request)
        if session is None:
            return _page("<p>Sign in first.</p>")
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(
                config.hub + config.api_path,
                headers={"Authorization": f"Bearer {session['token']['access_token']}"},
            )
        return _page(
            f"<p>GET {html.escape(config.api_path)} → {answer.status_code}</p>"
            f"<pre>{html.escape(answer.text[:4000])}</pre><p><a href='/'>Back</a></p>"
        )

    @get("/logout")
    async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
        session = sessions.pop(request.cookies.get(_COOKIE, ""), None)
        if session is None:
            return Redirect("/", status_code=303)
        metadata = await discovery()
        query = httpx.QueryParams(
            id_token_hint=session["token"]["id_token"],
            client_id=config.client_id,
            post_logout_redirect_uri=config.base_url + "/",
            state=secrets.token_urlsafe(8),
        )
        response: Response[Any] = Redirect(
            f"{metadata['end_session_endpoint']}?{query}", status_code=303
        )
        response.delete_cookie(_COOKIE)
        return response

    return Litestar(route_handlers=[home, login, callback, api, logout], openapi_config=None)
