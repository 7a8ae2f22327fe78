"""Minimal HTML pages of the OAuth endpoints: errors that must not redirect, and sign-out.

Every value is escaped; the pages carry no script, may not be framed, and are never cached.
The account pages (login, consent) have their own templates; these stay deliberately plain.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any, Final
from urllib.parse import urlsplit

from litestar import Response
from litestar.enums import MediaType

__all__ = ["PAGE_HEADERS", "form_page", "message_page"]

_HOST: Final = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
)
#: Sent with every page: no script, no framing, no caching, no referrer leaking a URL.
PAGE_HEADERS: Final = {
    "Content-Security-Policy": _CSP + "; form-action 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
}

_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;"
    "color:#1b1b1b}h1{font-size:1.4rem}button{font-size:1rem;padding:.5rem 1rem}"
)


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def message_page(title: str, message: str, *, status: int = 200) -> Response[Any]:
    """A page saying ``message``; both are escaped."""
    return Response(
        _document(title, f"<p>{escape(message)}</p>"),
        status_code=status,
        headers=PAGE_HEADERS,
        media_type=MediaType.HTML,
    )


def form_page(
    title: str,
    message: str,
    *,
    action: str,
    fields: dict[str, str],
    button: str,
    then: str | None = None,
    status: int = 200,
) -> Response[Any]:
    """A page with one POST form of hidden ``fields`` and a button; everything escaped.

    ``then`` is where the form's answer redirects, if not to the hub: browsers hold a redirect
    after a form submission to the page's ``form-action`` too.
    """
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    body = (
        f"<p>{escape(message)}</p>"
        f'<form method="post" action="{escape(action)}">{hidden}'
        f'<button type="submit">{escape(button)}</button></form>'
    )
    targets = "'self'" if then is None else f"'self' {_origin(then)}".rstrip()
    headers = {**PAGE_HEADERS, "Content-Security-Policy": f"{_CSP}; form-action {targets}"}
    return Response(
        _document(title, body), status_code=status, headers=headers, media_type=MediaType.HTML
    )


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    # A source expression must not let anything else into the policy.
    if parts.scheme not in ("http", "https") or _HOST.fullmatch(parts.netloc) is None:
        return ""
    return f"{parts.scheme}://{parts.netloc}"
