"""Cross-site request forgery defence for the account forms: double-submit cookie plus origin.

Every form carries a hidden ``csrf`` field equal to the ``hub_csrf`` cookie: a random 256-bit
value the page sets (HttpOnly, SameSite=Strict, Path=/account). Another site can make a browser
post to us, but it can neither read the cookie nor, thanks to SameSite=Strict, have it sent, so
its forged form cannot hold the matching value. The comparison is constant-time.

Two browser signals are checked as well, when present: ``Origin`` must be the issuer's origin,
and ``Sec-Fetch-Site`` must not be ``cross-site``. Either alone would stop a forged post from a
modern browser; the token covers the ones that send neither. This also defeats login CSRF (a
site signing the victim in to the attacker's account), since the login form is covered too.

The cookie has no ``__Host-`` prefix because it is scoped to ``/account``; a sibling subdomain
that could plant a cookie there still fails the ``Origin`` check.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any, Final
from urllib.parse import urlsplit

from litestar import Request
from litestar.datastructures import Cookie

from hub.identity.login._web import account_cookie
from hub.settings import Settings

__all__ = ["CSRF_COOKIE", "CSRF_FIELD", "csrf_cookie", "csrf_ok", "csrf_token"]

CSRF_COOKIE: Final = "hub_csrf"
CSRF_FIELD: Final = "csrf"
_TOKEN_LENGTH: Final = 43  # token_urlsafe(32)


def _well_formed(value: str | None) -> bool:
    return (
        value is not None
        and len(value) == _TOKEN_LENGTH
        and all(c.isalnum() or c in "-_" for c in value)
        and value.isascii()
    )


def csrf_token(request: Request[Any, Any, Any]) -> tuple[str, bool]:
    """The token for a page's forms and whether it is new (so the cookie must be set)."""
    current = request.cookies.get(CSRF_COOKIE)
    if _well_formed(current):
        assert current is not None
        return current, False
    return secrets.token_urlsafe(32), True


def csrf_cookie(settings: Settings, token: str) -> Cookie:
    """The ``hub_csrf`` cookie holding ``token``."""
    return account_cookie(settings, CSRF_COOKIE, token, path="/account", samesite="strict")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def csrf_ok(request: Request[Any, Any, Any], form: dict[str, str], settings: Settings) -> bool:
    """Whether a posted form comes from our own page in this browser."""
    origin = request.headers.get("origin")
    if origin is not None and (origin == "null" or _origin(origin) != _origin(settings.issuer)):
        return False
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    cookie = request.cookies.get(CSRF_COOKIE)
    field = form.get(CSRF_FIELD)
    if not _well_formed(cookie) or not _well_formed(field):
        return False
    assert cookie is not None
    assert field is not None
    return hmac.compare_digest(cookie.encode("ascii"), field.encode("ascii"))
