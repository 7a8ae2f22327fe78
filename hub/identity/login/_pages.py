"""Pages with forms (CSRF token included) and the stock error pages of the account area."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from litestar import Request, Response
from litestar.datastructures import Cookie

from hub.identity._forms import MalformedForm
from hub.identity.login._render import message_page, page
from hub.identity.login._web import read_form
from hub.identity.login.csrf import csrf_cookie, csrf_ok, csrf_token
from hub.settings import Settings

__all__ = [
    "bad_form",
    "csrf_failed",
    "form_page",
    "locked_out",
    "posted_form",
    "request_expired",
]


def form_page(
    request: Request[Any, Any, Any],
    settings: Settings,
    template: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    cookies: Sequence[Cookie] = (),
    **context: Any,
) -> Response[str]:
    """A page whose forms carry the browser's CSRF token (set in a cookie if it had none)."""
    token, new = csrf_token(request)
    if new:
        cookies = [*cookies, csrf_cookie(settings, token)]
    return page(template, status=status, headers=headers, cookies=cookies, csrf=token, **context)


async def posted_form(
    request: Request[Any, Any, Any], settings: Settings
) -> dict[str, str] | Response[str]:
    """The posted form when it is well-formed and passes the CSRF check, else the error page."""
    try:
        form = await read_form(request)
    except MalformedForm as exc:
        return bad_form(str(exc))
    if not csrf_ok(request, form, settings):
        return csrf_failed()
    return form


def csrf_failed() -> Response[str]:
    """403: the form did not come from our page in this browser."""
    return message_page(
        "csrf_failed",
        "This form has expired",
        "The form could not be accepted: it was not sent from this site's own page, or it "
        "was open too long. Go back, reload the page and try again.",
        status=403,
    )


def bad_form(detail: str) -> Response[str]:
    """400: the body is not a form these pages send."""
    return message_page("invalid_form", "The form could not be read", detail, status=400)


def locked_out(retry_after: int, *, link: tuple[str, str] | None = None) -> Response[str]:
    """429 with ``Retry-After``: too many failed attempts."""
    minutes = max(1, -(-retry_after // 60))
    return message_page(
        "login_locked",
        "Too many attempts",
        f"Signing in is paused after too many failed attempts. Try again in about "
        f"{minutes} minute{'s' if minutes != 1 else ''}.",
        status=429,
        headers={"Retry-After": str(max(1, retry_after))},
        link=link,
    )


def request_expired() -> Response[str]:
    """400: the saved authorization request is unknown, used up or expired."""
    return message_page(
        "request_expired",
        "This sign-in request has expired",
        "Go back to the application you came from and start signing in again.",
        status=400,
    )
