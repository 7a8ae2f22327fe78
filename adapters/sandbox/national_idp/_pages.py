"""The HTML of the sandbox IdP: the sign-in page and the error page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape
from typing import Final

from adapters.sandbox.national_idp.people import SANDBOX_PASSWORD, Person

__all__ = ["TITLE", "error_page", "sign_in_page"]

TITLE: Final = "National identity provider (sandbox)"

_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{padding:.2rem .8rem;text-align:left}"
    ".error{color:#a00;font-weight:bold}.note{background:#ffd;padding:.5rem}"
    "label{display:block;margin-top:.8rem}"
)


def _document(body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(TITLE)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(TITLE)}</h1>{body}</body></html>"
    )


def sign_in_page(
    fields: Mapping[str, str],
    people: Iterable[Person],
    *,
    error: str | None = None,
    national_id: str = "",
) -> str:
    """The sign-in form: the request as hidden ``fields``, national ID and password inputs."""
    rows = "".join(
        f"<tr><td><code>{escape(p.national_id)}</code></td><td>{escape(p.name)}</td>"
        f"<td>{escape(p.kind)}</td></tr>"
        for p in people
    )
    hidden = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    return _document(
        '<p class="note">A sandbox, not the real service. Every demo person\'s password is '
        f"<code>{escape(SANDBOX_PASSWORD)}</code>.</p>"
        f"{message}"
        '<form method="post" action="/authorize">'
        f"{hidden}"
        '<label for="national_id">National ID</label>'
        '<input id="national_id" name="national_id" inputmode="numeric" autocomplete="username"'
        f' pattern="[0-9]{{10}}" required value="{escape(national_id)}">'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" autocomplete="current-password">'
        '<p><button type="submit" name="action" value="sign_in">Sign in</button> '
        '<button type="submit" name="action" value="cancel" formnovalidate>Cancel</button></p>'
        "</form>"
        "<h2>Demo people</h2>"
        "<table><thead><tr><th>National ID</th><th>Name</th><th>Status</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def error_page(message: str) -> str:
    """A dead end: the request cannot be sent back to the relying party."""
    return _document(
        f'<p class="error" role="alert">{escape(message)}</p>'
        "<p>The application that sent you here made an invalid request.</p>"
    )
