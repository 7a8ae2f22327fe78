"""``GET``/``POST /oauth2/userinfo`` (OpenID Connect Core §5.3): the signed-in person's claims.

The caller presents a bearer access token (RFC 6750 §2.1, the ``Authorization`` header only)
that this hub issued to a person (``kind`` ``person``), unexpired and unrevoked, with the
``openid`` scope; the answer holds ``sub`` and the claims its scopes release, the same as the
ID token's. An ID token is not an access token: its audience is the client, not the hub, so it
is refused here like any other foreign token. Errors follow RFC 6750 §3: 401 with a ``Bearer``
challenge naming ``invalid_token``, 403 ``insufficient_scope``; the body is JSON.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request, Response, route
from litestar.enums import HttpMethod

from hub.errors import InvalidToken
from hub.identity._sso import NO_STORE, sso
from hub.identity.id_tokens import person_claims
from hub.identity.oauth import oauth_error_response

__all__ = ["USERINFO_PATH", "userinfo"]

USERINFO_PATH: Final = "/oauth2/userinfo"
_REALM: Final = 'Bearer realm="hub"'
# Far above any token the hub mints.
_MAX_AUTHORIZATION: Final = 8192


def _unauthorized(description: str, *, error: str | None = "invalid_token") -> Response[Any]:
    challenge = _REALM if error is None else f'{_REALM}, error="{error}"'
    return oauth_error_response(
        "invalid_token",
        description,
        status=401,
        headers={"WWW-Authenticate": challenge},
    )


def _bearer(request: Request[Any, Any, Any]) -> str | Response[Any] | None:
    """The bearer token of the request, ``None`` if it sent none, or the error to answer."""
    values = request.headers.getall("authorization", [])
    if not values:
        return None
    if len(values) > 1 or len(values[0]) > _MAX_AUTHORIZATION:
        return oauth_error_response(
            "invalid_request",
            "send one Authorization header",
            headers={"WWW-Authenticate": f'{_REALM}, error="invalid_request"'},
        )
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@route(USERINFO_PATH, http_method=[HttpMethod.GET, HttpMethod.POST], tags=["identity"])
async def userinfo(request: Request[Any, Any, Any]) -> Response[Any]:
    """Claims about the person an access token was issued for."""
    context = sso(request)
    token = _bearer(request)
    if isinstance(token, Response):
        return token
    if token is None:
        # RFC 6750 §3.1: a request without credentials gets the bare challenge.
        return _unauthorized("a bearer access token is required", error=None)
    try:
        claims = context.tokens().verify(token)
    except InvalidToken:
        return _unauthorized("the access token is invalid or has expired")
    if claims.kind != "person":
        return _unauthorized("the access token was not issued to a person")
    if await context.identity.revocations.is_revoked(claims.jti):
        return _unauthorized("the access token was revoked")
    if "openid" not in claims.scopes:
        return oauth_error_response(
            "insufficient_scope",
            "the access token lacks the openid scope",
            status=403,
            headers={"WWW-Authenticate": f'{_REALM}, error="insufficient_scope", scope="openid"'},
        )
    person = await context.identity.persons.get(claims.sub)
    if person is None or person.disabled_at is not None:
        return _unauthorized("the person is unknown or disabled")
    body = {"sub": person.id, **person_claims(person, claims.scopes)}
    return Response(body, status_code=200, headers=NO_STORE)
