"""Reading an urlencoded form body strictly: one media type, UTF-8, bounded, each field once.

The OAuth endpoints and the account pages read their forms here; they differ only in the bounds
and in what they check afterwards (the OAuth endpoints want printable ASCII, RFC 6749 VSCHAR,
while a password on the login form may hold any character).
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl

from litestar import Request

__all__ = ["FORM_MEDIA_TYPE", "MalformedForm", "printable", "read_form"]

FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"


class MalformedForm(Exception):
    """The body is not a form the hub accepts; the message says why."""


def printable(text: str) -> bool:
    """Whether ``text`` is printable ASCII (RFC 6749 Appendix A: VSCHAR)."""
    return all(0x20 <= ord(c) <= 0x7E for c in text)


async def read_form(
    request: Request[Any, Any, Any], *, max_bytes: int, max_fields: int
) -> dict[str, str]:
    """The body as a dict; :class:`MalformedForm` for anything but a well-formed, bounded form."""
    media_type, options = request.content_type
    if media_type.lower() != FORM_MEDIA_TYPE:
        raise MalformedForm(f"the body must be {FORM_MEDIA_TYPE}")
    if options.get("charset", "utf-8").lower() != "utf-8":
        raise MalformedForm("the form must be encoded in UTF-8")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise MalformedForm(f"the request body exceeds {max_bytes} bytes")
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=max_fields,
        )
    except ValueError:  # UnicodeDecodeError included
        raise MalformedForm("the body is not a well-formed form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            # RFC 6749 §3.2: parameters MUST NOT be included more than once.
            raise MalformedForm(f"parameter {name[:40]!r} is repeated")
        form[name] = value
    return form
