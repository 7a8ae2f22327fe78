"""The hub's session cookie at the gateway: read strictly, kept from upstreams, guarded from CSRF.

Portals run in the browser on the hub's own origin and call their routes with the session cookie
that the hub's sign-in pages set. The cookie is a credential of the hub alone: whatever the
route, it is cut out of the ``Cookie`` header before the request goes upstream (other cookies
pass). A browser attaches it to cross-site requests too (``SameSite=Lax`` still sends it on
top-level navigations), so a state-changing request that rides on it must show that it came
from the hub's origin: ``Origin``, or failing that ``Referer``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol
from urllib.parse import urlsplit

from hub.auth.affiliations import Affiliations
from hub.auth.principal import Principal
from hub.errors import CsrfOriginMismatch, Unauthorized
from hub.identity.sessions import COOKIE_NAME, INSECURE_COOKIE_NAME, LoginSession

__all__ = [
    "SAFE_METHODS",
    "SESSION_COOKIE_NAMES",
    "AffiliationReader",
    "SessionReader",
    "check_same_origin",
    "origin_of",
    "session_cookie",
    "session_principal",
    "without_session_cookies",
]

#: Methods that change nothing (RFC 9110 §9.2.1): the only ones a cookie caller makes unchecked.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: Every name the session cookie has (secure or not): neither ever goes upstream.
SESSION_COOKIE_NAMES: Final = frozenset({COOKIE_NAME, INSECURE_COOKIE_NAME})
_SHARED_PART: Final = b"hub_session"  # in both names: a cheap test before any parsing
# What SessionManager hands out (secrets.token_urlsafe); anything else is not a session of ours.
_COOKIE_VALUE: Final = re.compile(r"[A-Za-z0-9_-]{16,128}")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_CHALLENGE: Final = 'Bearer realm="hub"'


class SessionReader(Protocol):
    """Reads a live login session by its cookie value (SessionManager satisfies this)."""

    async def get(self, raw: str | None) -> LoginSession | None: ...


#: A person's roles, memberships and delegations by person id (a cached directory read).
AffiliationReader = Callable[[str], Awaitable[Affiliations]]


def _refused(detail: str) -> Unauthorized:
    return Unauthorized(detail, headers={"WWW-Authenticate": _CHALLENGE})


def session_cookie(headers: Sequence[tuple[bytes, bytes]], name: str) -> str | None:
    """The value of the cookie ``name``, ``None`` when absent; 401 when sent twice or malformed.

    A browser sends one ``Cookie`` header, an HTTP/2 client may split it into several: all are
    read. Two cookies of this name (one tossed in by a sibling subdomain, say) are ambiguous, so
    neither is believed.
    """
    wanted = name.encode("ascii")
    found: bytes | None = None
    for header, value in headers:
        if header != b"cookie" or wanted not in value:
            continue
        for pair in value.split(b";"):
            key, _, cookie = pair.partition(b"=")
            if key.strip() != wanted:
                continue
            if found is not None:
                raise _refused("the request carries more than one session cookie")
            found = cookie.strip()
    if found is None:
        return None
    text = found.decode("latin-1")
    if not _COOKIE_VALUE.fullmatch(text):
        raise _refused("the session cookie is malformed; sign in again")
    return text


async def session_principal(
    sessions: SessionReader,
    raw: str,
    *,
    issuer: str,
    affiliations: AffiliationReader | None = None,
) -> Principal:
    """The person behind a session cookie value; 401 when the session is not live.

    With ``affiliations``, the principal carries the person's staff roles, memberships and
    delegations as the directory reads them (cached briefly), not as they were at sign-in.
    """
    session = await sessions.get(raw)
    if session is None:
        raise _refused("the session has expired, ended or is unknown; sign in again")
    found = None if affiliations is None else await affiliations(session.person_id)
    # A session proves who the person is, and how strongly; it grants no OAuth scopes.
    return Principal(
        subject=session.person_id,
        kind="person",
        issuer=issuer,
        acr=session.acr,
        token_id=session.sid,
        expires_at=session.expires_at,
        via_session=True,
        **({} if found is None else found.principal_fields()),
    )


def without_session_cookies(
    headers: Sequence[tuple[bytes, bytes]],
) -> list[tuple[bytes, bytes]] | None:
    """``headers`` with the session cookie cut out of every ``Cookie`` header; ``None``: no change.

    Other cookies stay, in order; a ``Cookie`` header left empty is dropped.
    """
    if not any(name == b"cookie" and _SHARED_PART in value for name, value in headers):
        return None
    names = {name.encode("ascii") for name in SESSION_COOKIE_NAMES}
    out: list[tuple[bytes, bytes]] = []
    changed = False
    for header, value in headers:
        if header != b"cookie" or _SHARED_PART not in value:
            out.append((header, value))
            continue
        kept = [pair for pair in value.split(b";") if pair.partition(b"=")[0].strip() not in names]
        if len(kept) == value.count(b";") + 1:
            out.append((header, value))
            continue
        changed = True
        joined = b"; ".join(pair.strip() for pair in kept if pair.strip())
        if joined:
            out.append((header, joined))
    return out if changed else None


def origin_of(url: str) -> str | None:
    """The origin (RFC 6454) of an absolute http(s) URL, as a browser serialises it."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def check_same_origin(headers: Sequence[tuple[bytes, bytes]], origin: str) -> None:
    """403 unless ``Origin`` (or, when a browser sent none, ``Referer``) names ``origin``.

    ``origin`` is the hub's own, from its issuer URL. ``Origin: null`` (a sandboxed or privacy
    context), a missing header and repeated headers all fail: a cookie caller who cannot say
    where it comes from does not change anything.
    """
    origins = [value for name, value in headers if name == b"origin"]
    if origins:
        claimed = origin_of(origins[0].decode("latin-1")) if len(origins) == 1 else None
        where = "the Origin header"
    else:
        referers = [value for name, value in headers if name == b"referer"]
        claimed = origin_of(referers[0].decode("latin-1")) if len(referers) == 1 else None
        where = "the Referer header" if referers else "no Origin or Referer header"
    if claimed is None or claimed != origin:
        raise CsrfOriginMismatch(
            f"a request with the session cookie that changes state must come from {origin};"
            f" {where} does not show that"
        )
