"""Step-up: a route's minimum ``acr``, and what a caller below it is told.

A person below the minimum is challenged, not refused: a browser that navigates with the session
cookie is sent to sign in again at the asked level (``/account/login?acr_values=…&return_to=…``);
any other person caller gets 401 ``insufficient_user_authentication`` with the RFC 9470
challenge, whose ``acr_values`` the client passes to a new authorization request. A caller with
no person behind it (an API key, a client-credentials token) has nothing to step up, so it gets
a 403: a 401 challenge would send it round a loop it can never leave.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final
from urllib.parse import quote

from hub.auth.principal import Principal
from hub.errors import InsufficientUserAuthentication, UserAuthenticationRequired
from hub.identity.acr import satisfies

__all__ = ["LOGIN_PATH", "is_navigation", "require_acr", "step_up_url"]

#: The hub's sign-in page, which takes ``acr_values`` and a local ``return_to`` path.
LOGIN_PATH: Final = "/account/login"
_NAVIGATION_METHODS: Final = frozenset({"GET", "HEAD"})
_DESCRIPTION: Final = "A different authentication level is required"


def step_up_url(acr: str, target: str) -> str:
    """Where a browser signs in again at ``acr`` and then comes back to ``target`` (a path)."""
    return f"{LOGIN_PATH}?acr_values={quote(acr)}&return_to={quote(target)}"


def is_navigation(method: str, headers: Sequence[tuple[bytes, bytes]]) -> bool:
    """A browser loading a page (GET/HEAD accepting HTML), as opposed to a script's API call."""
    if method not in _NAVIGATION_METHODS:
        return False
    return any(name == b"accept" and b"text/html" in value.lower() for name, value in headers)


def require_acr(required: str | None, principal: Principal, *, target: str) -> None:
    """Return when ``principal`` meets ``required``; raise the step-up challenge otherwise.

    ``target`` is the path and query of the request, for a browser to come back to.
    """
    if required is None or satisfies(principal.acr, required):
        return
    if principal.kind != "person":
        what = "an API key" if principal.kind == "api_key" else "a client's own token"
        raise UserAuthenticationRequired(
            f"this route needs a person signed in at {required}; {what} has no person behind it",
            extra={"acr_values": required},
        )
    extra: dict[str, object] = {"acr_values": required}
    if principal.via_session:
        extra["step_up"] = step_up_url(required, target)
        detail = f"this route needs a sign-in at {required}; sign in again at that level"
    else:
        detail = (
            f"this route needs a sign-in at {required}; request a new token with this acr_values"
        )
    raise InsufficientUserAuthentication(
        detail,
        headers={
            "WWW-Authenticate": f'Bearer realm="hub", error="insufficient_user_authentication",'
            f' error_description="{_DESCRIPTION}", acr_values="{required}"'
        },
        extra=extra,
    )
