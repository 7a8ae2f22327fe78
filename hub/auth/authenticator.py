"""Authentication at the gateway: the credentials a route accepts, checked, and its scopes.

Bearer JWTs go to :class:`~hub.auth.verify.TokenVerifier`, API keys (``X-API-Key``, or a bearer
value in the ``hub_`` key format) to :class:`~hub.auth.apikeys.ApiKeyVerifier`, the hub's session
cookie to the login sessions (:mod:`hub.auth.session`). A route accepts only the methods its
``auth`` block names; a missing credential is a 401 with a challenge, a missing scope a 403
naming the scope. An explicit ``Authorization`` or ``X-API-Key`` header the route accepts wins
over the cookie: a browser app that sends a token chose that token. A session carries no OAuth
scopes, so a route requiring any refuses session callers with 403 ``insufficient_scope``.

The checks that need the request itself (the same-origin check of cookie callers, the ``acr``
step-up) are the gateway's, with :mod:`hub.auth.session` and :mod:`hub.auth.assurance`.
"""

from __future__ import annotations

from collections.abc import Sequence

from hub.auth.apikeys import ApiKeyVerifier
from hub.auth.principal import Principal
from hub.auth.session import (
    AffiliationReader,
    SessionReader,
    session_cookie,
    session_principal,
)
from hub.auth.verify import TokenVerifier
from hub.config.model import AuthSpec
from hub.errors import InsufficientScope, InvalidToken, Unauthorized
from hub.identity.sessions import INSECURE_COOKIE_NAME

__all__ = ["CREDENTIAL_HEADERS", "Authenticator"]

# Headers that carry the client's credentials: consumed by the hub, never forwarded upstream.
CREDENTIAL_HEADERS = frozenset({b"authorization", b"x-api-key"})
_API_KEY_PREFIX = "hub_"
_CHALLENGE = 'Bearer realm="hub"'
_NAMES = {"jwt": "a bearer token", "api_key": "an API key", "session": "a signed-in session"}


class Authenticator:
    """Finds and verifies the credential of a request for a route's ``auth`` block.

    ``sessions`` reads login sessions by cookie value (``None``: routes accepting ``session``
    find no caller), ``session_cookie`` is the cookie's name, and ``issuer`` the hub's, which
    vouches for session callers; ``affiliations`` gives session callers their roles,
    memberships and delegations (a token carries its own).
    """

    def __init__(
        self,
        *,
        tokens: TokenVerifier,
        api_keys: ApiKeyVerifier | None,
        sessions: SessionReader | None = None,
        session_cookie: str = INSECURE_COOKIE_NAME,
        issuer: str = "",
        affiliations: AffiliationReader | None = None,
    ) -> None:
        if sessions is not None and not issuer:
            raise ValueError("session callers need the hub's issuer")
        self._tokens = tokens
        self._api_keys = api_keys
        self._sessions = sessions
        self._session_cookie = session_cookie
        self._issuer = issuer
        self._affiliations = affiliations

    async def authenticate(
        self, spec: AuthSpec, headers: Sequence[tuple[bytes, bytes]]
    ) -> Principal:
        """The caller, verified; raises 401 (no or bad credential) or 403 (missing scope)."""
        bearer: str | None = None
        api_key: str | None = None
        for name, value in headers:
            if name == b"authorization":
                if bearer is not None:
                    raise InvalidToken(
                        "more than one Authorization header", headers=_invalid("ambiguous")
                    )
                scheme, _, credential = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not credential.strip():
                    raise InvalidToken(
                        "the Authorization header must be 'Bearer <token>'",
                        headers=_invalid("unsupported authorization scheme"),
                    )
                bearer = credential.strip()
            elif name == b"x-api-key":
                api_key = value.decode("latin-1").strip()
        if bearer is not None and bearer.startswith(_API_KEY_PREFIX):
            api_key, bearer = bearer, None
        principal: Principal | None = None
        if api_key is not None and "api_key" in spec.methods and self._api_keys is not None:
            principal = await self._api_keys.verify(api_key)
        elif bearer is not None and "jwt" in spec.methods:
            principal = await self._tokens.verify(bearer)
        elif "session" in spec.methods and self._sessions is not None:
            raw = session_cookie(headers, self._session_cookie)
            if raw is not None:
                principal = await session_principal(
                    self._sessions, raw, issuer=self._issuer, affiliations=self._affiliations
                )
        if principal is None:
            accepted = " or ".join(_NAMES[method] for method in spec.methods)
            raise Unauthorized(
                f"this route needs {accepted}", headers={"WWW-Authenticate": _CHALLENGE}
            )
        missing = [scope for scope in spec.scopes if scope not in principal.scopes]
        if missing:
            needed = " ".join(spec.scopes)
            detail = f"missing scope: {', '.join(missing)}"
            if principal.via_session:
                detail += " (a session carries no scopes: call this route with a bearer token)"
            raise InsufficientScope(
                detail,
                headers={
                    "WWW-Authenticate": f'{_CHALLENGE}, error="insufficient_scope", '
                    f'scope="{needed}"'
                },
                extra={"missing_scopes": missing},
            )
        return principal


def _invalid(description: str) -> dict[str, str]:
    return {
        "WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token", '
        f'error_description="{description}"'
    }
