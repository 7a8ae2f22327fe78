"""Request-path normalisation: one canonical decoded path per request, or a refusal.

The route table matches the decoded path this module returns, and the proxy forwards
``encode_path`` of that same string, so the hub and the upstream always agree on which
resource is meant. Anything that could make them disagree is refused with
:class:`~hub.errors.InvalidPath` rather than guessed at:

- an encoded slash (``%2F``) or any backslash (raw or ``%5C``): upstreams differ on whether
  these separate segments;
- NUL and other control characters (raw or encoded), malformed ``%`` escapes, invalid UTF-8;
- ``..`` that climbs above the root, and dot-segments carrying a ``;`` parameter (``..;``),
  which servlet containers treat as ``..``;
- non-ASCII text whose Unicode compatibility form (NFKC) holds a slash, a backslash or a
  dot-segment, for upstreams that fold full-width look-alikes.

Escapes are decoded *before* dot-segments are resolved, so ``%2e%2e`` is ``..``. Repeated
slashes collapse, ``.`` segments go, ``..`` pops its parent (RFC 3986 ``remove_dot_segments``),
and a trailing slash is kept. The result is idempotent: normalising ``encode_path(result)``
gives ``result`` back.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final
from urllib.parse import quote, unquote_to_bytes

from hub.errors import InvalidPath

__all__ = ["encode_path", "normalise_path"]

_MALFORMED_ESCAPE: Final = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_ENCODED_SLASH: Final = re.compile(rb"%2[Ff]")
# C0, DEL, C1 and the backslash: nothing a path segment may hold once decoded.
_FORBIDDEN: Final = re.compile("[\x00-\x1f\x7f-\x9f\\\\]")
_UPSTREAM_SAFE: Final = "/:@!$&'()*+,;=-._~"
_PLAIN: Final = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=\-._~]*")


def normalise_path(raw_path: bytes) -> str:
    """Decode and normalise an ASGI ``raw_path``; raise :class:`InvalidPath` when unsafe."""
    if raw_path[:1] != b"/":
        raise InvalidPath("the request path must start with '/'")
    # Most paths are plain ASCII with nothing to decode or resolve: a few C-level scans (on
    # str, measured faster than the same scans on bytes).
    if raw_path.isascii():
        path = raw_path.decode("ascii")
        if (
            "%" not in path
            and "//" not in path
            and "/." not in path
            and "\\" not in path
            and path.isprintable()
        ):
            return path
    return _normalise_slow(raw_path)


def _normalise_slow(raw_path: bytes) -> str:
    if _MALFORMED_ESCAPE.search(raw_path) is not None:
        raise InvalidPath("the request path holds a '%' that is not followed by two hex digits")
    if _ENCODED_SLASH.search(raw_path) is not None:
        raise InvalidPath("an encoded slash (%2F) is not allowed in the request path")
    try:
        text = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPath("the request path is not valid UTF-8 once percent-decoded") from exc
    bad = _FORBIDDEN.search(text)
    if bad is not None:
        char = bad.group()
        if char == "\\":
            raise InvalidPath("a backslash (raw or %5C) is not allowed in the request path")
        if char == "\x00":
            raise InvalidPath("a NUL byte (raw or %00) is not allowed in the request path")
        raise InvalidPath(f"control character U+{ord(char):04X} is not allowed in the request path")
    if not text.isascii():
        _refuse_lookalikes(text)

    kept: list[str] = []
    trailing = False
    for segment in text.split("/")[1:]:
        if segment in ("", "."):
            trailing = True
        elif segment == "..":
            if not kept:
                raise InvalidPath("'..' in the request path climbs above the root")
            kept.pop()
            trailing = True
        else:
            if ";" in segment and segment.partition(";")[0] in (".", ".."):
                raise InvalidPath(f"dot-segment with a parameter ({segment!r}) is not allowed")
            kept.append(segment)
            trailing = False
    if not kept:
        return "/"
    return "/" + "/".join(kept) + ("/" if trailing else "")


def _refuse_lookalikes(text: str) -> None:
    folded = unicodedata.normalize("NFKC", text)
    if folded == text:
        return
    if "\\" in folded or folded.count("/") != text.count("/"):
        raise InvalidPath("the request path holds a look-alike of '/' or '\\'")
    for original, segment in zip(text.split("/"), folded.split("/"), strict=True):
        if segment != original and segment.partition(";")[0] in (".", ".."):
            raise InvalidPath("the request path holds a look-alike of a dot-segment")


def encode_path(path: str) -> str:
    """Percent-encode a normalised path for the upstream request line."""
    if _PLAIN.fullmatch(path) is not None:
        return path
    try:
        return quote(path, safe=_UPSTREAM_SAFE, errors="strict")
    except UnicodeEncodeError as exc:
        raise InvalidPath("the path cannot be encoded as UTF-8") from exc
