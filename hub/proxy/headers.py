"""Header rewriting between the client and the upstream.

Hop-by-hop headers (RFC 9110 §7.6.1) and those named in ``Connection`` never cross the hub.
``X-Forwarded-*`` from the client are believed only when the peer is a configured proxy; the
request id is always the hub's, and so is ``X-Hub-Config-Version``: the configuration version
whose snapshot served the request, so an upstream (and its logs) can tell which rules let the call
through. Header values go upstream as UTF-8 text, because aiohttp writes
them that way: bytes that are not UTF-8 (Latin-1 obs-text) cannot pass unchanged and are refused.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence

from hub.errors import InvalidHeader

__all__ = [
    "CONFIG_VERSION_HEADER",
    "HOP_BY_HOP",
    "INTERNAL_TOKEN_HEADER",
    "client_address",
    "request_id_from",
    "response_headers",
    "upstream_headers",
]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# The principal of an authenticated request, as a short-lived token signed by the hub.
INTERNAL_TOKEN_HEADER = "x-hub-principal-token"  # noqa: S105 - a header name
# The configuration version that served the request (one snapshot serves it from start to end).
CONFIG_VERSION_HEADER = "x-hub-config-version"
# Headers the hub owns on the way in: it sets them itself, whatever the client sent.
# ``Expect: 100-continue`` was answered by the hub's own server; the upstream gets the body.
_OWNED_IN = frozenset({b"x-request-id", b"host", b"expect"})
_FORWARDED = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"}
)
# Set by the hub's own server on the way out (nginx hides these from upstreams too).
_OWNED_OUT = frozenset({b"date", b"server", b"x-request-id"})

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def request_id_from(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when well-formed, else a fresh random one."""
    for name, value in headers:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return os.urandom(16).hex()


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    if not trusted or not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(
    peer: str, headers: Sequence[tuple[bytes, bytes]], trusted: Sequence[Network]
) -> tuple[str, bool]:
    """The real client's address and whether the peer is a trusted proxy.

    Behind trusted proxies the client is the right-most ``X-Forwarded-For`` entry that is not
    itself a trusted proxy; anything a client wrote further left is not believed.
    """
    if not _is_trusted(peer, trusted):
        return peer, False
    chain: list[str] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            chain.extend(p.strip() for p in value.decode("latin-1").split(","))
    for hop in reversed(chain):
        if hop and not _is_trusted(hop, trusted):
            return hop, True
    return peer, True


def _text(name: bytes, value: bytes) -> str:
    """A header value as aiohttp will encode it again (UTF-8), so its bytes arrive unchanged."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        header = name.decode("latin-1")
        raise InvalidHeader(
            f"the {header} header holds bytes that are not UTF-8; they cannot be forwarded as sent"
        ) from None


def _connection_tokens(headers: Sequence[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b","))
    return frozenset(tokens)


def upstream_headers(
    headers: Sequence[tuple[bytes, bytes]],
    *,
    peer: str,
    trusted_peer: bool,
    scheme: str,
    request_id: str,
    preserve_host: bool,
    consumed: frozenset[bytes] = frozenset(),
    internal_token: str | None = None,
    config_version: str | None = None,
) -> tuple[list[tuple[str, str]], str | None]:
    """Headers to send upstream, in order, repeats kept; and the Host to send (None = target's).

    ``consumed`` names credentials the hub used itself (the client's ``Authorization`` on an
    authenticated route): the upstream never sees them. ``X-Hub-*`` headers belong to the hub
    alone: a client's are dropped, and the hub's internal token and the configuration version
    that served the request are added when given.
    """
    extra_hop = _connection_tokens(headers) if any(n == b"connection" for n, _ in headers) else ()
    out: list[tuple[str, str]] = []
    host: str | None = None
    forwarded_for: list[str] = []
    forwarded_proto: str | None = None
    forwarded_host: str | None = None
    for name, value in headers:
        if name in HOP_BY_HOP or name in extra_hop or name in consumed:
            continue
        if name.startswith(b"x-hub-"):
            continue  # spoofed: only the hub speaks in its own headers
        if name in _OWNED_IN:
            if name == b"host":
                host = _text(name, value)
            continue
        if name in _FORWARDED:
            if trusted_peer:
                text = _text(name, value)
                if name == b"x-forwarded-for":
                    forwarded_for.append(text)
                elif name == b"x-forwarded-proto":
                    forwarded_proto = text
                elif name == b"x-forwarded-host":
                    forwarded_host = text
                else:
                    out.append(("forwarded", text))
            continue
        out.append((name.decode("latin-1"), _text(name, value)))
    forwarded_for.append(peer)
    out.append(("x-forwarded-for", ", ".join(forwarded_for)))
    out.append(("x-forwarded-proto", forwarded_proto or scheme))
    if forwarded_host or host:
        out.append(("x-forwarded-host", forwarded_host or host or ""))
    out.append(("x-request-id", request_id))
    if internal_token is not None:
        out.append((INTERNAL_TOKEN_HEADER, internal_token))
    if config_version is not None:
        out.append((CONFIG_VERSION_HEADER, config_version))
    return out, (host if preserve_host else None)


def response_headers(
    raw: Sequence[tuple[bytes, bytes]], request_id: bytes
) -> list[tuple[bytes, bytes]]:
    """Upstream response headers for the client: hop-by-hop dropped, repeats kept."""
    out: list[tuple[bytes, bytes]] = []
    extra_hop: frozenset[bytes] = frozenset()
    for name, value in raw:
        lname = name.lower()
        if lname == b"connection":
            extra_hop = extra_hop | {t.strip().lower() for t in value.split(b",")}
    for name, value in raw:
        lname = name.lower()
        if lname in HOP_BY_HOP or lname in _OWNED_OUT or lname in extra_hop:
            continue
        out.append((lname, value))
    out.append((b"x-request-id", request_id))
    return out
