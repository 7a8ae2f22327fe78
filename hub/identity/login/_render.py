"""HTML pages of the sign-in flow: Jinja2 templates, escaped, with the headers every page carries.

Jinja2 rather than Litestar's template engine: the pages are rendered by one function that also
sets the security headers and cookies, so no page can be answered without them, and the app's
configuration stays untouched. Autoescaping is on for every template and undefined names are
errors (``StrictUndefined``), so a value reaches the page escaped or the page fails loudly.

Every page and redirect gets:

- ``Content-Security-Policy``: nothing may load but the page's own styles and ``data:`` images
  (the QR code), no framing, no ``<base>``. There is deliberately no ``form-action``: several
  browsers apply it to the whole redirect chain after a POST, which would block the 303 from
  the consent page through ``/oauth2/authorize`` to the relying party's origin.
- ``X-Frame-Options: DENY`` (older browsers; ``frame-ancestors`` for newer), ``Cache-Control:
  no-store`` (pages hold CSRF tokens, recovery codes, a TOTP secret), ``Referrer-Policy:
  no-referrer`` (URLs carry request ids), ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import jinja2
from litestar import Response
from litestar.datastructures import Cookie
from litestar.enums import MediaType

__all__ = ["SECURITY_HEADERS", "message_page", "page", "redirect"]

SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_ENV: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("hub.identity", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _headers(extra: Mapping[str, str] | None) -> dict[str, str]:
    return {**SECURITY_HEADERS, **(extra or {})}


def page(
    template: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    cookies: Sequence[Cookie] = (),
    **context: Any,
) -> Response[str]:
    """``template`` rendered with ``context``, as an HTML answer with the security headers."""
    html = _ENV.get_template(template).render(**context)
    return Response(
        html,
        status_code=status,
        media_type=MediaType.HTML,
        headers=_headers(headers),
        cookies=list(cookies),
    )


def message_page(
    code: str,
    title: str,
    message: str,
    *,
    status: int,
    headers: Mapping[str, str] | None = None,
    cookies: Sequence[Cookie] = (),
    link: tuple[str, str] | None = None,
) -> Response[str]:
    """A page saying what went wrong (or right), with a stable machine-readable ``code``."""
    return page(
        "message.html",
        status=status,
        headers=headers,
        cookies=cookies,
        code=code,
        title=title,
        message=message,
        link=link,
    )


def redirect(location: str, *, cookies: Sequence[Cookie] = ()) -> Response[str]:
    """A ``303 See Other`` to ``location``: after a POST the browser follows with a GET."""
    return Response(
        "",
        status_code=303,
        media_type=MediaType.HTML,
        headers=_headers({"Location": location}),
        cookies=list(cookies),
    )
