"""Request-path normalisation: canonical decoded paths, refusals, and the upstream encoding."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.config.model import RouteSpec
from hub.errors import InvalidPath
from hub.routing.normalise import encode_path, normalise_path
from hub.routing.table import RouteTable

ACCEPTED = [
    (b"/", "/"),
    (b"/api/echo/v1/items/42", "/api/echo/v1/items/42"),
    (b"/api/echo/v1/", "/api/echo/v1/"),
    (b"//api///echo//", "/api/echo/"),
    (b"/a/./b/.", "/a/b/"),
    (b"/a/b/..", "/a/"),
    (b"/a/b/../c", "/a/c"),
    (b"/a/..", "/"),
    (b"/a/%2e%2e/b", "/b"),
    (b"/a/%2E%2E/b", "/b"),
    (b"/a/b/%2E./c", "/a/c"),
    (b"/a/b/.%2e/c", "/a/c"),
    (b"/a/%2e/b", "/a/b"),
    (b"/a/%2e", "/a/"),
    (b"/caf%C3%A9", "/caf\u00e9"),
    (b"/caf\xc3\xa9", "/caf\u00e9"),
    (b"/a%20b", "/a b"),
    (b"/a%3Fb%23c", "/a?b#c"),
    (b"/%61pi", "/api"),
    (b"/a/%252e%252e/b", "/a/%2e%2e/b"),  # decoded once: a literal "%2e%2e" segment
    (b"/a/%252F", "/a/%2F"),
    (b"/.well-known/x", "/.well-known/x"),
    (b"/a/...", "/a/..."),
    (b"/a/..b/.c", "/a/..b/.c"),
    (b"/a;v=1/b", "/a;v=1/b"),
    (b"/\xef\xbc\xa1", "/\uff21"),  # a full-width letter is just text
]

REFUSED = [
    (b"", "start with '/'"),
    (b"api/x", "start with '/'"),
    (b"*", "start with '/'"),
    (b"/..", "above the root"),
    (b"/a/../..", "above the root"),
    (b"/%2e%2e/etc/passwd", "above the root"),
    (b"/a/%2E%2e/%2e./x", "above the root"),
    (b"//../x", "above the root"),
    (b"/a%2fb", "encoded slash"),
    (b"/a%2Fb", "encoded slash"),
    (b"/a%5cb", "backslash"),
    (b"/a%5Cb", "backslash"),
    (b"/a\\b", "backslash"),
    (b"/a/..\\x", "backslash"),
    (b"/a%00b", "NUL"),
    (b"/a\x00b", "NUL"),
    (b"/a%0Ab", "control character U+000A"),
    (b"/a\r\nb", "control character U+000D"),
    (b"/a\x7fb", "control character U+007F"),
    (b"/a%C2%85b", "control character U+0085"),
    (b"/a%zzb", "hex digits"),
    (b"/a%4", "hex digits"),
    (b"/a%", "hex digits"),
    (b"/a%C3", "UTF-8"),
    (b"/a\xff", "UTF-8"),
    (b"/a%ED%A0%80", "UTF-8"),  # an encoded UTF-16 surrogate
    (b"/a/..;/admin", "parameter"),
    (b"/a/%2e%2e;x/admin", "parameter"),
    (b"/a/.;/b", "parameter"),
    (b"/a/%EF%BC%8E%EF%BC%8E/b", "look-alike of a dot-segment"),  # full-width ".."
    (b"/a%EF%BC%8Fb", "look-alike of '/'"),  # full-width solidus
    (b"/a%EF%BC%BCb", "look-alike of '/'"),  # full-width reverse solidus
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_normalise_accepts(raw: bytes, expected: str) -> None:
    assert normalise_path(raw) == expected


@pytest.mark.parametrize(("raw", "reason"), REFUSED)
def test_normalise_refuses_with_a_clear_detail(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidPath) as caught:
        normalise_path(raw)
    assert reason in caught.value.detail
    assert caught.value.code == "invalid_path"
    assert caught.value.status == 400


def test_plain_paths_come_back_unchanged() -> None:
    raw = b"/api/visas/v1/applications/8f14e45f-ceea-467f-a0e6-6b2a1a2b3c4d"
    assert normalise_path(raw) == raw.decode()


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/api/echo/v1/items/42", "/api/echo/v1/items/42"),
        ("/", "/"),
        ("/a:b@c!$&'()*+,;=-._~/", "/a:b@c!$&'()*+,;=-._~/"),
        ("/a b", "/a%20b"),
        ("/a?b#c", "/a%3Fb%23c"),
        ("/100%", "/100%25"),
        ("/a/%2e%2e", "/a/%252e%252e"),
        ("/caf\u00e9", "/caf%C3%A9"),
        ('/a"<>{}|^`', "/a%22%3C%3E%7B%7D%7C%5E%60"),
    ],
)
def test_encode_path(path: str, expected: str) -> None:
    assert encode_path(path) == expected


def test_encode_path_refuses_what_utf8_cannot_hold() -> None:
    with pytest.raises(InvalidPath):
        encode_path("/a\udc80")


# --- properties -------------------------------------------------------------------------------

PIECES = [
    "/", "//", ".", "..", "a", "b", "caf\u00e9", "%2e", "%2E", "%2e%2e", "%2E.", ".%2e", "%2f",
    "%5c", "%25", "%20", "%41", "%00", "%0a", "%C3%A9", "%ff", ";", "\\", "%", "~", "?",
]  # fmt: skip


def _raw_paths() -> st.SearchStrategy[bytes]:
    pieces = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
    return st.one_of(
        pieces.map(lambda text: ("/" + text).encode()),
        st.binary(max_size=24).map(lambda raw: b"/" + raw),
    )


@settings(max_examples=250, deadline=None)
@given(_raw_paths())
def test_normalisation_is_canonical_and_idempotent(raw: bytes) -> None:
    try:
        path = normalise_path(raw)
    except InvalidPath:
        return
    assert path.startswith("/")
    assert "//" not in path
    assert not {".", ".."} & set(path.split("/"))
    assert "\\" not in path
    assert "\x00" not in path
    # What the hub forwards normalises back to what it routed on.
    assert normalise_path(encode_path(path).encode("ascii")) == path
    if "%" not in path:
        assert normalise_path(path.encode()) == path


# Each way of writing a segment, and what it means written plainly (None: must be refused).
TRICKS: list[tuple[str, str | None]] = [
    ("..", ".."), ("%2e%2e", ".."), ("%2E%2E", ".."), ("%2E.", ".."), (".%2e", ".."),
    ("%2e.", ".."), (".", "."), ("%2e", "."), ("%2E", "."), ("", ""),
    ("public", "public"), ("admin", "admin"), ("%61dmin", "admin"), ("x", "x"),
    ("%252e%252e", "%2e%2e"), ("...", "..."),
    ("%2f", None), ("%2F", None), ("admin%2f..", None), ("%5c", None), ("%5C..", None),
    ("..\\", None), ("\\", None), ("%00", None), ("..;", None), ("%2e%2e;a", None),
    (".;", None), ("%EF%BC%8E%EF%BC%8E", None),
]  # fmt: skip


def _resolve_plainly(segments: list[str], trailing: bool) -> str | None:
    """The reference: RFC 3986 dot-segment removal on the plain path; None if above root."""
    stack: list[str] = []
    for segment in segments:
        if segment == "..":
            if not stack:
                return None
            stack.pop()
        elif segment not in ("", "."):
            stack.append(segment)
    ends_open = trailing or (bool(segments) and segments[-1] in ("", ".", ".."))
    return "/" + "/".join(stack) + ("/" if stack and ends_open else "")


ROUTES = RouteTable.compile(
    [
        RouteSpec(id="public", upstream="u", prefix="/public", order=0),
        RouteSpec(id="admin", upstream="u", prefix="/admin", order=1),
        RouteSpec(id="secret", upstream="u", path="/public/x/%2e%2e", order=2),
    ]
)


@settings(max_examples=250, deadline=None)
@given(st.lists(st.sampled_from(TRICKS), min_size=1, max_size=8), st.booleans())
def test_traversal_tricks_refused_or_equal_to_the_plain_path(
    tricks: list[tuple[str, str | None]], trailing: bool
) -> None:
    raw = ("/" + "/".join(written for written, _ in tricks) + ("/" if trailing else "")).encode()
    plain = [meaning for _, meaning in tricks]
    if any(meaning is None for meaning in plain):
        with pytest.raises(InvalidPath):
            normalise_path(raw)
        return
    expected = _resolve_plainly([m for m in plain if m is not None], trailing)
    if expected is None:  # climbs above the root
        with pytest.raises(InvalidPath):
            normalise_path(raw)
        return
    path = normalise_path(raw)
    assert path == expected
    # Routing sees exactly what the un-tricked path would reach, nothing more.
    got = ROUTES.match("GET", "", path, [])
    want = ROUTES.match("GET", "", expected, [])
    assert (got and got.route.id) == (want and want.route.id)
