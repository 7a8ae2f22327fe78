"""Header rewriting between client and upstream (pure functions, no sockets)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.proxy.headers import client_address, request_id_from, response_headers, upstream_headers

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"),)


def test_request_id_is_kept_when_well_formed_and_replaced_otherwise() -> None:
    assert request_id_from([(b"x-request-id", b"abc-123.X:y_z")]) == "abc-123.X:y_z"
    fresh = request_id_from([(b"x-request-id", b"bad id with spaces")])
    assert len(fresh) == 32
    assert all(c in "0123456789abcdef" for c in fresh)
    assert request_id_from([]) != request_id_from([])


@given(st.binary(max_size=200))
def test_request_id_never_passes_unsafe_bytes(value: bytes) -> None:
    rid = request_id_from([(b"x-request-id", value)])
    assert 1 <= len(rid) <= 128
    assert all(c.isalnum() or c in "._:-" for c in rid)


def test_client_address_believes_forwarded_for_only_from_trusted_peers() -> None:
    spoofed = [(b"x-forwarded-for", b"1.2.3.4")]
    assert client_address("192.0.2.7", spoofed, TRUSTED) == ("192.0.2.7", False)
    chain = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9, 10.1.1.1")]
    # The right-most address that is not itself a trusted proxy is the client.
    assert client_address("10.0.0.2", chain, TRUSTED) == ("203.0.113.9", True)
    assert client_address("10.0.0.2", [], TRUSTED) == ("10.0.0.2", True)


def test_upstream_headers_strip_hop_by_hop_and_keep_repeats_in_order() -> None:
    incoming = [
        (b"host", b"api.example.gov"),
        (b"connection", b"keep-alive, x-private-hop"),
        (b"x-private-hop", b"secret"),
        (b"keep-alive", b"timeout=5"),
        (b"te", b"trailers"),
        (b"upgrade", b"websocket"),
        (b"proxy-authorization", b"Basic abc"),
        (b"accept", b"a"),
        (b"x-multi", b"1"),
        (b"x-multi", b"2"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-request-id", b"client-chosen"),
    ]
    out, host = upstream_headers(
        incoming,
        peer="192.0.2.7",
        trusted_peer=False,
        scheme="https",
        request_id="rid-1",
        preserve_host=False,
    )
    names = [name for name, _ in out]
    for dropped in (
        "connection",
        "x-private-hop",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
    ):
        assert dropped not in names
    assert [v for n, v in out if n == "x-multi"] == ["1", "2"]
    assert ("x-forwarded-for", "192.0.2.7") in out
    assert ("x-forwarded-proto", "https") in out
    assert ("x-forwarded-host", "api.example.gov") in out
    assert [v for n, v in out if n == "x-request-id"] == ["rid-1"]
    assert host is None


def test_upstream_headers_append_to_a_trusted_chain_and_preserve_host() -> None:
    incoming = [
        (b"host", b"api.example.gov"),
        (b"x-forwarded-for", b"203.0.113.9"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"portal.example.gov"),
    ]
    out, host = upstream_headers(
        incoming,
        peer="10.0.0.2",
        trusted_peer=True,
        scheme="http",
        request_id="rid",
        preserve_host=True,
    )
    assert ("x-forwarded-for", "203.0.113.9, 10.0.0.2") in out
    assert ("x-forwarded-proto", "https") in out
    assert ("x-forwarded-host", "portal.example.gov") in out
    assert host == "api.example.gov"


def test_response_headers_drop_hop_by_hop_and_server_owned_ones() -> None:
    raw = [
        (b"Content-Type", b"application/json"),
        (b"Set-Cookie", b"a=1"),
        (b"Set-Cookie", b"b=2"),
        (b"Connection", b"X-Hop"),
        (b"X-Hop", b"1"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Date", b"yesterday"),
        (b"Server", b"upstream/1.0"),
        (b"X-Request-ID", b"upstream-made"),
    ]
    out = response_headers(raw, b"rid")
    assert out == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"x-request-id", b"rid"),
    ]


def test_clients_cannot_speak_in_the_hubs_headers_and_consumed_credentials_stay() -> None:
    incoming = [
        (b"authorization", b"Bearer secret-token"),
        (b"x-api-key", b"hub_0123456789_secret"),
        (b"x-hub-principal-token", b"forged"),
        (b"x-hub-anything", b"forged"),
        (b"x-hubris", b"kept: not the hub's namespace"),
    ]
    out, _ = upstream_headers(
        incoming,
        peer="192.0.2.7",
        trusted_peer=False,
        scheme="http",
        request_id="rid",
        preserve_host=False,
        consumed=frozenset({b"authorization", b"x-api-key"}),
        internal_token="signed-by-the-hub",
    )
    assert [v for n, v in out if n.startswith("x-hub-")] == ["signed-by-the-hub"]
    assert ("x-hubris", "kept: not the hub's namespace") in out
    assert not [n for n, _ in out if n in ("authorization", "x-api-key")]


def test_credentials_pass_through_on_routes_the_hub_does_not_authenticate() -> None:
    out, _ = upstream_headers(
        [(b"authorization", b"Bearer for-the-upstream"), (b"x-hub-principal-token", b"forged")],
        peer="192.0.2.7",
        trusted_peer=False,
        scheme="http",
        request_id="rid",
        preserve_host=False,
    )
    assert ("authorization", "Bearer for-the-upstream") in out
    assert not [n for n, _ in out if n.startswith("x-hub-")]


# ASGI servers hand over header names in lower case; the hub's prefix check relies on it.
spoofable_names = st.sampled_from([b"x-hub-", b"x-hu", b"x-", b""]).flatmap(
    lambda start: st.binary(max_size=12).map(lambda rest: (start + rest).lower())
)


ascii_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8).map(
    str.encode
)


@settings(max_examples=300)
@given(st.lists(st.tuples(spoofable_names, ascii_values), max_size=12))
def test_no_client_x_hub_header_reaches_the_upstream(headers: list[tuple[bytes, bytes]]) -> None:
    out, _ = upstream_headers(
        headers,
        peer="192.0.2.7",
        trusted_peer=False,
        scheme="http",
        request_id="rid",
        preserve_host=False,
        internal_token="signed-by-the-hub",
    )
    assert [v for n, v in out if n.startswith("x-hub-")] == ["signed-by-the-hub"]


def test_the_upstream_learns_which_configuration_version_served_the_request() -> None:
    out, _ = upstream_headers(
        [(b"x-hub-config-version", b"999"), (b"accept", b"a")],
        peer="192.0.2.7",
        trusted_peer=False,
        scheme="http",
        request_id="rid",
        preserve_host=False,
        internal_token="signed-by-the-hub",
        config_version="7",
    )
    # The client's claim is dropped; the hub's own value comes last, after its token.
    assert [(n, v) for n, v in out if n.startswith("x-hub-")] == [
        ("x-hub-principal-token", "signed-by-the-hub"),
        ("x-hub-config-version", "7"),
    ]
