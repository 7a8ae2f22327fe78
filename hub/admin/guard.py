"""The admin API's guard: the break-glass admin token, or a platform admin signed in at MFA.

Two kinds of caller pass:

- the bearer ``HUB_ADMIN_TOKEN`` (automation, and the way in before any admin exists), compared
  by digest in constant time; it acts as ``admin-token``;
- an enabled person holding an active ``platform_admin`` staff role, signed in at
  ``urn:hub:acr:mfa`` or above, with the hub's session cookie or a bearer access token this hub
  issued to them; they act as ``person:<person id>``. The role is read on every call, so a
  revocation applies at once.

A cookie caller changing state must show the hub's own ``Origin`` (or ``Referer``), as at the
gateway: the cookie rides along on cross-site requests, a header a script sets does not. A
bearer header wins over the cookie. A bearer value that is not shaped like a JWT is taken for
an admin token, so a wrong one is answered as before (401 ``unauthorized``).

The guard leaves who is acting in the connection's state; handlers that record an author
(configuration history, membership and delegation audit, the ``admin.*`` log lines of account
and staff changes) take it as the ``actor`` dependency.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING, Any, Final, TypeAlias, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler

from hub.auth.assurance import require_acr
from hub.auth.principal import Principal, invalid_token
from hub.auth.session import (
    SAFE_METHODS,
    check_same_origin,
    origin_of,
    session_cookie,
    session_principal,
)
from hub.config.model import AuthSpec
from hub.db.staff_store import StaffStore
from hub.errors import (
    AdminRoleRequired,
    ServiceUnavailable,
    Unauthorized,
    UserAuthenticationRequired,
)
from hub.identity.acr import ACR_MFA
from hub.identity.sessions import cookie_name

if TYPE_CHECKING:
    from hub.runtime import Runtime

__all__ = ["ADMIN_ACR", "ADMIN_TOKEN_ACTOR", "ActorDep", "actor_dependency", "admin_guard"]

#: Who the bearer ``HUB_ADMIN_TOKEN`` acts as in audit trails.
ADMIN_TOKEN_ACTOR: Final = "admin-token"  # noqa: S105 - a name, not a token
#: The weakest sign-in a platform admin may use the admin API with.
ADMIN_ACR: Final = ACR_MFA
_STATE_KEY: Final = "admin_actor"
_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="hub-admin"'}
_BEARER_JWT: Final = AuthSpec(methods=("jwt",))
# header.payload.signature in base64url: anything else is not one of the hub's access tokens.
_JWT_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

ActorDep: TypeAlias = NamedDependency[str]


async def admin_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """Let the admin token or a platform admin at MFA through; record who is acting."""
    del handler
    runtime: Runtime = connection.app.state.runtime
    connection.state[_STATE_KEY] = await _actor(runtime, connection)


def _actor_of(request: Request[Any, Any, Any]) -> str:
    actor: str = request.state[_STATE_KEY]  # set by admin_guard, which runs first
    return actor


#: The ``actor`` dependency of guarded controllers: ``admin-token`` or ``person:<id>``.
actor_dependency: Final = Provide(_actor_of, sync_to_thread=False)


async def _actor(runtime: Runtime, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    settings = runtime.settings
    headers = list(connection.scope["headers"])
    authorization = connection.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("an admin bearer token is required", headers=_CHALLENGE)
        expected = settings.admin_token_sha256
        if expected is not None:
            digest = hashlib.sha256(token.encode()).hexdigest()
            if hmac.compare_digest(digest, expected):
                return ADMIN_TOKEN_ACTOR
        if not _JWT_SHAPE.fullmatch(token):
            if expected is None:
                raise Unauthorized(
                    "no admin token is configured (HUB_ADMIN_TOKEN): sign in as a platform admin",
                    headers=_CHALLENGE,
                )
            raise Unauthorized("the admin token is not valid", headers=_CHALLENGE)
        principal = await runtime.authenticate(_BEARER_JWT, headers)
        if principal.issuer != settings.issuer:
            # Another issuer cannot vouch for a person of the hub, let alone an admin.
            raise invalid_token("the admin API takes only access tokens issued by this hub")
    else:
        raw = session_cookie(headers, cookie_name(settings.session_cookie_secure))
        if raw is None:
            raise Unauthorized("an admin bearer token is required", headers=_CHALLENGE)
        principal = await session_principal(runtime.sessions, raw, issuer=settings.issuer)
        if _method(connection) not in SAFE_METHODS:
            check_same_origin(headers, origin_of(settings.issuer) or settings.issuer)
    await _require_platform_admin(runtime, principal)
    require_acr(ADMIN_ACR, principal, target=_target(connection))
    return f"person:{principal.subject}"


async def _require_platform_admin(runtime: Runtime, principal: Principal) -> None:
    """403 unless the principal is an enabled person holding an active platform_admin role."""
    if principal.kind != "person":
        raise UserAuthenticationRequired(
            "the admin API needs a platform admin signed in as a person;"
            " a client's own token has no person behind it"
        )
    if runtime.engine is None or runtime.identity is None:
        raise ServiceUnavailable("the database is not started")
    person = await runtime.identity.persons.get(principal.subject)
    roles = await StaffStore(runtime.engine).list(person_id=principal.subject, active_only=True)
    if (
        person is None
        or person.disabled_at is not None
        or not any(role.role == "platform_admin" for role in roles)
    ):
        raise AdminRoleRequired("the admin API needs an active platform_admin staff role")


def _method(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    # The admin API is HTTP only; a scope without a method is no safe one.
    method: str = cast("dict[str, Any]", connection.scope).get("method", "")
    return method


def _target(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The request's path and query, for a browser to come back to after stepping up."""
    query: bytes = connection.scope.get("query_string", b"")
    path: str = connection.scope["path"]
    return f"{path}?{query.decode('latin-1')}" if query else path
