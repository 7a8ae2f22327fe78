"""Proxy correctness against a real hub process and a real upstream on loopback.

One upstream and one hub serve the whole module. Requests whose bytes matter (paths, query
strings, repeated or hop-by-hop headers) go through :mod:`http.client`, which sends the request
target and headers exactly as written; the rest use httpx. The hub trusts ``127.0.0.2`` as a
proxy, so one process shows both sides: the test client connects from ``127.0.0.1`` (an
untrusted peer) or binds ``127.0.0.2`` (a trusted proxy).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import http.client
import json
import os
import re
import threading
from collections.abc import Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests.fixtures_db import create_temp_postgres_database
from tests.hubproc import ADMIN_TOKEN, HubProcess, run_hub, write_policies
from tests.upstreams import UpstreamServer

pytestmark = pytest.mark.integration

TIMEOUT = 10.0
MAX_BODY = 4 * 1024 * 1024
MAX_URL = 2048
MAX_HEADERS = 8192
TRUSTED_PROXY = "127.0.0.2"
HUB_ENV = {
    "HUB_ACCESS_LOG": "false",
    "HUB_MAX_URL_LENGTH": str(MAX_URL),
    "HUB_MAX_HEADER_BYTES": str(MAX_HEADERS),
    "HUB_TRUSTED_PROXIES": f"{TRUSTED_PROXY}/32",
}
NO_RETRIES = {"max_retries": 0}
# The upstream's 5xx answers must not open its breaker halfway through the module.
PATIENT_BREAKER = {"failure_threshold": 1000}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
PROBLEM_TYPE = "application/problem+json"


def routes() -> list[dict[str, Any]]:
    """The module's routes: one per rewriting rule, all served by the one upstream server."""
    common = {"retries": NO_RETRIES, "max_body_bytes": MAX_BODY}
    return [
        {"id": "main", "prefix": "/api/main/", "upstream": "main", "strip_prefix": True, **common},
        {"id": "keep", "prefix": "/api/keep/", "upstream": "main", **common},
        {
            "id": "rewrite",
            "prefix": "/api/rw/",
            "upstream": "main",
            "strip_prefix": True,
            "upstream_path": "/internal/v2",
            **common,
        },
        {"id": "based", "prefix": "/api/based/", "upstream": "main", "upstream_path": "/base"},
        {"id": "target-base", "prefix": "/api/tbase/", "upstream": "tbase", "strip_prefix": True},
        {
            "id": "host",
            "prefix": "/api/host/",
            "upstream": "main",
            "strip_prefix": True,
            "preserve_host": True,
        },
        {"id": "items", "path": "/api/items/{id}", "methods": ["GET", "PUT"], "upstream": "main"},
    ]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    server = UpstreamServer("main").start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer) -> Iterator[HubProcess]:
    tmp = tmp_path_factory.mktemp("proxy-integration")
    policies = write_policies(
        tmp / "policies",
        upstreams=[
            {"id": "main", "targets": [{"url": upstream.url}], "breaker": PATIENT_BREAKER},
            {"id": "tbase", "targets": [{"url": f"{upstream.url}/tbase/"}]},
        ],
        routes=routes(),
    )
    with run_hub(tmp, policies, env=HUB_ENV, migrate=False) as process:
        yield process


@pytest.fixture(scope="module")
def client(hub: HubProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.url, timeout=TIMEOUT) as http:
        yield http


# -- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawResponse:
    """An answer read with http.client: status, headers in wire order (names lowercased), body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def header(self, name: str) -> str:
        (value,) = self.values(name)
        return value

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    port: int,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str | bytes]] = (),
    body: bytes | None = None,
    *,
    host: str = "hub.test",
    source: str | None = None,
) -> RawResponse:
    """Send the request line and headers byte for byte as given (plus Host and Content-Length)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=TIMEOUT, source_address=(source, 0) if source else None
    )
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        for name, value in headers:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        payload = response.read()
        return RawResponse(
            status=response.status,
            headers=[(k.lower(), v) for k, v in response.getheaders()],
            body=payload,
        )
    finally:
        connection.close()


def sent(echo: dict[str, Any], name: str) -> list[str]:
    """Values of one header as the upstream received it, in order."""
    return [v for k, v in echo["headers"] if k.lower() == name.lower()]


def end_to_end(echo: dict[str, Any]) -> list[tuple[str, str]]:
    """The headers the upstream received, minus those the hub sets itself."""
    owned = {
        "host",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
        "x-hub-config-version",
    }
    return [(k.lower(), v) for k, v in echo["headers"] if k.lower() not in owned]


def assert_problem(
    response: RawResponse | httpx.Response, status: int, code: str
) -> dict[str, Any]:
    """The answer is RFC 9457 problem JSON from the hub with this status and code."""
    actual = response.status_code if isinstance(response, httpx.Response) else response.status
    assert actual == status
    if isinstance(response, httpx.Response):
        content_type = response.headers["content-type"]
        request_id = response.headers["x-request-id"]
        problem: dict[str, Any] = response.json()
    else:
        content_type = response.header("content-type")
        request_id = response.header("x-request-id")
        problem = response.json()
    assert content_type == PROBLEM_TYPE
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"].endswith("/" + code)
    assert problem["title"]
    assert problem["detail"]
    assert problem["request_id"] == request_id
    return problem


# -- methods, bodies, query strings ----------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_every_method_reaches_the_upstream_with_its_path_and_body(
    client: httpx.Client, upstream: UpstreamServer, method: str
) -> None:
    body = b"" if method in ("GET", "HEAD") else os.urandom(10_000)
    response = client.request(method, "/api/main/echo/some/where?x=1", content=body)

    assert response.status_code == 200
    assert upstream.seen[-1] == (method, "/echo/some/where?x=1")
    if method == "HEAD":
        assert response.content == b""
        assert int(response.headers["content-length"]) > 0  # the GET's length, passed on
        return
    echo = response.json()
    assert echo["method"] == method
    assert echo["raw_path"] == "/echo/some/where?x=1"
    assert echo["body_bytes"] == len(body)
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    "size",
    [1, 64 * 1024, 64 * 1024 + 1, 3 * 1024 * 1024],
    ids=["1B", "64KiB-held", "64KiB+1-streamed", "3MiB"],
)
def test_request_bodies_arrive_byte_exact(client: httpx.Client, size: int) -> None:
    body = os.urandom(size)
    response = client.post("/api/main/echo", content=body)

    assert response.status_code == 200
    echo = response.json()
    assert sent(echo, "content-length") == [str(size)]
    assert echo["body_bytes"] == size
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_request_body_arrives_byte_exact(client: httpx.Client) -> None:
    parts = [os.urandom(n) for n in (1, 1000, 65_536, 300_000, 7)]
    response = client.put("/api/main/echo", content=iter(parts))

    assert response.status_code == 200
    echo = response.json()
    whole = b"".join(parts)
    assert echo["body_bytes"] == len(whole)
    assert echo["body_sha256"] == hashlib.sha256(whole).hexdigest()


@pytest.mark.parametrize(
    "query",
    [
        "a=1&a=2&a=3",
        "z=26&b=2&a=1",
        "q=%20x%2By+z&plus=+",
        "empty=&flag&=value&&last=",
        "k=%E2%82%AC&reserved=%2F%3F%26%3D%23",
        "x=a%20b&x=a+b&X=upper",
        "lower=%2b&upper=%2B",
        "q=a|b&c=[1]{2}^`&d=~!*()';:@$,",
    ],
)
def test_query_string_is_forwarded_byte_exact(
    hub: HubProcess, upstream: UpstreamServer, query: str
) -> None:
    response = raw_request(hub.port, "GET", f"/api/main/echo?{query}")

    assert response.status == 200
    assert response.json()["raw_path"] == f"/echo?{query}"


def test_repeated_request_headers_keep_their_order(hub: HubProcess) -> None:
    headers = [
        ("X-Dup", "1"),
        ("Accept", "text/a"),
        ("X-Dup", "2"),
        ("X-Other", "between"),
        ("Accept", "text/b"),
        ("X-Dup", "3"),
    ]
    response = raw_request(hub.port, "GET", "/api/main/echo", headers)

    assert response.status == 200
    assert end_to_end(response.json()) == [(k.lower(), v) for k, v in headers]


def test_non_ascii_utf8_header_values_arrive_byte_exact(hub: HubProcess) -> None:
    value = "café, 東京 ü".encode()
    response = raw_request(hub.port, "GET", "/api/main/echo", [("X-Text", value)])

    assert response.status == 200
    # The upstream reports header bytes decoded as Latin-1, one character per byte.
    assert sent(response.json(), "x-text") == [value.decode("latin-1")]


def test_header_value_that_cannot_be_forwarded_unchanged_is_refused(
    hub: HubProcess, upstream: UpstreamServer
) -> None:
    # Latin-1 obs-text: aiohttp writes header values as UTF-8, so these bytes cannot pass as is.
    seen = len(upstream.seen)
    response = raw_request(hub.port, "GET", "/api/main/echo", [("X-Text", b"caf\xe9")])

    problem = assert_problem(response, 400, "invalid_header")
    assert "X-Text" in problem["detail"] or "x-text" in problem["detail"]
    assert len(upstream.seen) == seen


# -- status codes and response headers -------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 404, 418, 500, 503])
def test_upstream_status_codes_pass_through(
    client: httpx.Client, upstream: UpstreamServer, status: int
) -> None:
    before = upstream.hits["status"]
    response = client.get(f"/api/main/status/{status}")

    assert response.status_code == status
    assert upstream.hits["status"] == before + 1  # retries are off on this route
    if status == 204:
        assert response.content == b""
    else:
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"status": status, "server": "main"}


def test_redirect_is_passed_on_not_followed(client: httpx.Client, upstream: UpstreamServer) -> None:
    response = client.get("/api/main/redirect")

    assert response.status_code == 301
    assert response.headers["location"] == "/echo/redirected"
    assert upstream.seen[-1] == ("GET", "/redirect")


def test_repeated_response_headers_are_kept_in_order(hub: HubProcess) -> None:
    response = raw_request(hub.port, "GET", "/api/main/headers")

    assert response.status == 200
    assert response.values("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert response.values("x-multi") == ["one", "two"]


def test_hop_by_hop_response_headers_are_stripped(
    hub: HubProcess, upstream: UpstreamServer
) -> None:
    hop = {
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "trailer",
        "upgrade",
        "x-secret-hop",
        "x-other-hop",
    }
    direct = httpx.get(f"{upstream.url}/hop-headers", timeout=TIMEOUT)
    assert hop <= set(direct.headers.keys())  # the upstream really sends them

    response = raw_request(hub.port, "GET", "/api/main/hop-headers")

    assert response.status == 200
    names = {name for name, _ in response.headers}
    assert not names & hop
    assert "connection" not in names
    assert response.values("x-end-to-end") == ["kept"]


def test_encoded_response_passes_still_encoded(hub: HubProcess) -> None:
    response = raw_request(hub.port, "GET", "/api/main/gzip", [("Accept-Encoding", "gzip")])

    assert response.status == 200
    assert response.values("content-encoding") == ["gzip"]
    assert response.values("content-length") == [str(len(response.body))]
    assert json.loads(gzip.decompress(response.body)) == {"server": "main", "gzip": True}


def test_hub_owned_response_headers_replace_the_upstreams(hub: HubProcess) -> None:
    response = raw_request(hub.port, "GET", "/api/main/upstream-id", [("X-Request-ID", "mine")])

    assert response.status == 200
    assert response.values("x-request-id") == ["mine"]
    assert response.values("server") == []


def test_hop_by_hop_request_headers_are_stripped(hub: HubProcess) -> None:
    response = raw_request(
        hub.port,
        "GET",
        "/api/main/echo",
        [
            ("Connection", "keep-alive, X-Hop-Named"),
            ("X-Hop-Named", "secret"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            ("Proxy-Connection", "keep-alive"),
            ("X-Kept", "yes"),
        ],
    )

    assert response.status == 200
    assert end_to_end(response.json()) == [("x-kept", "yes")]


# -- X-Forwarded-* and X-Request-ID ----------------------------------------------------------

CLIENT_FORWARDED = [
    ("X-Forwarded-For", "6.6.6.6, 7.7.7.7"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "public.example.gov"),
    ("Forwarded", "for=6.6.6.6;proto=https"),
]


def test_forwarded_headers_are_set_by_the_hub(hub: HubProcess) -> None:
    echo = raw_request(hub.port, "GET", "/api/main/echo", host="portal.example.gov:8443").json()

    assert sent(echo, "x-forwarded-for") == ["127.0.0.1"]
    assert sent(echo, "x-forwarded-proto") == ["http"]
    assert sent(echo, "x-forwarded-host") == ["portal.example.gov:8443"]


def test_forwarded_headers_from_an_untrusted_peer_are_replaced(hub: HubProcess) -> None:
    echo = raw_request(
        hub.port, "GET", "/api/main/echo", CLIENT_FORWARDED, host="portal.example.gov"
    ).json()

    assert sent(echo, "x-forwarded-for") == ["127.0.0.1"]
    assert sent(echo, "x-forwarded-proto") == ["http"]
    assert sent(echo, "x-forwarded-host") == ["portal.example.gov"]
    assert sent(echo, "forwarded") == []


def test_forwarded_headers_from_a_trusted_proxy_are_kept_and_appended(hub: HubProcess) -> None:
    echo = raw_request(
        hub.port,
        "GET",
        "/api/main/echo",
        CLIENT_FORWARDED,
        host="portal.example.gov",
        source=TRUSTED_PROXY,
    ).json()

    # Each proxy appends the address it received the request from: here the trusted proxy.
    assert sent(echo, "x-forwarded-for") == [f"6.6.6.6, 7.7.7.7, {TRUSTED_PROXY}"]
    assert sent(echo, "x-forwarded-proto") == ["https"]
    assert sent(echo, "x-forwarded-host") == ["public.example.gov"]
    assert sent(echo, "forwarded") == ["for=6.6.6.6;proto=https"]


def test_trusted_proxy_without_forwarded_headers_is_the_client(hub: HubProcess) -> None:
    echo = raw_request(hub.port, "GET", "/api/main/echo", source=TRUSTED_PROXY).json()

    assert sent(echo, "x-forwarded-for") == [TRUSTED_PROXY]
    assert sent(echo, "x-forwarded-proto") == ["http"]


def test_request_id_is_generated_when_absent(hub: HubProcess) -> None:
    response = raw_request(hub.port, "GET", "/api/main/echo")

    request_id = response.header("x-request-id")
    assert REQUEST_ID.fullmatch(request_id)
    assert sent(response.json(), "x-request-id") == [request_id]


def test_request_ids_are_unique(client: httpx.Client) -> None:
    ids = {client.get("/api/main/echo").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20


@pytest.mark.parametrize("given", ["trace-42", "a.b_c:d-E", "x" * 128])
def test_valid_client_request_id_is_propagated(hub: HubProcess, given: str) -> None:
    response = raw_request(hub.port, "GET", "/api/main/echo", [("X-Request-ID", given)])

    assert response.values("x-request-id") == [given]
    assert sent(response.json(), "x-request-id") == [given]


@pytest.mark.parametrize(
    "given", ["has space", "x" * 129, "semi;colon", "ünïcode".encode().decode("latin-1")]
)
def test_invalid_client_request_id_is_replaced(hub: HubProcess, given: str) -> None:
    response = raw_request(hub.port, "GET", "/api/main/echo", [("X-Request-ID", given)])

    (request_id,) = response.values("x-request-id")
    assert REQUEST_ID.fullmatch(request_id)
    assert sent(response.json(), "x-request-id") == [request_id]


def test_the_upstream_is_told_the_configuration_version_and_the_client_cannot_forge_it(
    hub: HubProcess,
) -> None:
    active = httpx.get(
        f"{hub.url}/admin/api/config/active",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=5,
    ).json()["version"]
    response = raw_request(hub.port, "GET", "/api/main/echo", [("X-Hub-Config-Version", "999")])
    assert sent(response.json(), "x-hub-config-version") == [str(active)]
    # Not an answer header: clients learn nothing about the configuration from it.
    assert response.values("x-hub-config-version") == []


def test_problem_answers_carry_the_propagated_request_id(hub: HubProcess) -> None:
    response = raw_request(hub.port, "GET", "/nowhere", [("X-Request-ID", "trace-7")])

    assert response.values("x-request-id") == ["trace-7"]
    assert response.json()["request_id"] == "trace-7"


# -- path rewriting and Host -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        ("/api/main/echo/a?x=1", "/echo/a?x=1"),
        ("/api/main/", "/"),
        ("/api/main", "/"),
        ("/api/main/echo/a%20b/%E2%82%AC/", "/echo/a%20b/%E2%82%AC/"),
        ("/api/keep/x/y", "/api/keep/x/y"),
        ("/api/rw/items/7?x=1", "/internal/v2/items/7?x=1"),
        ("/api/rw/", "/internal/v2/"),
        ("/api/based/x", "/base/api/based/x"),
        ("/api/tbase/echo", "/tbase/echo"),
        ("/api/items/42", "/api/items/42"),
    ],
)
def test_path_rewriting(hub: HubProcess, target: str, forwarded: str) -> None:
    response = raw_request(hub.port, "GET", target)

    assert response.status == 200
    assert response.json()["raw_path"] == forwarded


def test_host_is_the_targets_by_default(hub: HubProcess, upstream: UpstreamServer) -> None:
    echo = raw_request(hub.port, "GET", "/api/main/echo", host="portal.example.gov").json()
    assert sent(echo, "host") == [f"127.0.0.1:{upstream.port}"]


def test_preserve_host_sends_the_clients_host(hub: HubProcess) -> None:
    echo = raw_request(hub.port, "GET", "/api/host/echo", host="portal.example.gov:8443").json()
    assert sent(echo, "host") == ["portal.example.gov:8443"]
    assert echo["raw_path"] == "/echo"


def test_two_host_headers_are_refused(hub: HubProcess, upstream: UpstreamServer) -> None:
    before = upstream.hits["echo"]
    response = raw_request(hub.port, "GET", "/api/main/echo", [("Host", "evil.example")])

    assert response.status == 400
    problem = response.json()
    assert problem["code"] == "invalid_header"
    assert problem["detail"] == "the request has more than one Host header"
    assert upstream.hits["echo"] == before


# -- errors the hub produces -----------------------------------------------------------------


def test_route_not_found_is_a_problem(client: httpx.Client) -> None:
    problem = assert_problem(client.get("/nowhere/at/all"), 404, "route_not_found")
    assert problem["instance"] == "/nowhere/at/all"


def test_method_not_allowed_names_the_allowed_methods(client: httpx.Client) -> None:
    response = client.delete("/api/items/1")

    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, HEAD, PUT"


@pytest.mark.parametrize(
    "target",
    [
        "/api/main/a%2Fb",
        "/api/main/a%2fb",
        "/api/main/..%2f..%2fadmin",
        "/api/main/a%5Cb",
        "/api/main/a%5cb",
        "/api/main/../../../etc/passwd",
        "/api/main/%2e%2e/%2E%2E/%2e%2e/etc",
        "/api/main/..;/x",
        "/api/main/a%00b",
        "/api/main/%zz",
    ],
)
def test_unsafe_paths_are_refused(hub: HubProcess, upstream: UpstreamServer, target: str) -> None:
    seen = len(upstream.seen)
    response = raw_request(hub.port, "GET", target)

    assert_problem(response, 400, "invalid_path")
    assert len(upstream.seen) == seen


@pytest.mark.parametrize(
    ("target", "normalised"),
    [
        ("/api/main/../../admin", "/admin"),
        ("/api/main/x/../../../admin/config", "/admin/config"),
        ("/api/main/%2e%2e/%2E%2E/metrics", "/metrics"),
        ("/api/keep/.%2e/../readyz", "/readyz"),
        ("/api/main/../../api/catalog", "/api/catalog"),
        ("/api/main/../secret", "/api/secret"),
    ],
)
def test_traversal_never_reaches_a_reserved_path(
    hub: HubProcess, upstream: UpstreamServer, target: str, normalised: str
) -> None:
    seen = len(upstream.seen)
    response = raw_request(hub.port, "GET", target)

    problem = assert_problem(response, 404, "route_not_found")
    assert problem["detail"] == f"no route for GET {normalised}"
    assert len(upstream.seen) == seen


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        ("//api//main//echo//x", "/echo/x"),
        ("/api/keep/../main/echo", "/echo"),
        ("/api/keep/%2e%2e/main/./echo", "/echo"),
        ("/api/rw/../main/echo/./a/b/../c", "/echo/a/c"),
    ],
)
def test_dot_segments_are_resolved_before_routing(
    hub: HubProcess, target: str, forwarded: str
) -> None:
    # /api/keep would forward its path whole; these requests belong to /api/main, which strips.
    response = raw_request(hub.port, "GET", target)

    assert response.status == 200
    assert response.json()["raw_path"] == forwarded


def test_payload_too_large_by_content_length(hub: HubProcess, upstream: UpstreamServer) -> None:
    seen = len(upstream.seen)
    # Only the headers are sent: the hub must refuse without waiting for the body.
    response = raw_request(
        hub.port, "POST", "/api/main/echo", [("Content-Length", str(MAX_BODY + 1))]
    )

    problem = assert_problem(response, 413, "payload_too_large")
    assert str(MAX_BODY) in problem["detail"]
    assert len(upstream.seen) == seen


def test_body_at_the_limit_passes(client: httpx.Client) -> None:
    body = os.urandom(MAX_BODY)
    response = client.post("/api/main/echo", content=body)

    assert response.status_code == 200
    assert response.json()["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_payload_too_large_for_a_chunked_body(client: httpx.Client) -> None:
    chunk = b"z" * (256 * 1024)
    chunks = (chunk for _ in range(MAX_BODY // len(chunk) + 2))
    response = client.post("/api/main/echo", content=chunks)

    assert_problem(response, 413, "payload_too_large")
    assert client.get("/api/main/echo").status_code == 200  # and the hub serves on


def test_uri_too_long(hub: HubProcess) -> None:
    base = "/api/main/echo?q="
    fits = raw_request(hub.port, "GET", base + "a" * (MAX_URL - len(base)))
    assert fits.status == 200

    response = raw_request(hub.port, "GET", base + "a" * (MAX_URL - len(base) + 1))
    assert_problem(response, 414, "uri_too_long")


def test_headers_too_large(hub: HubProcess) -> None:
    response = raw_request(hub.port, "GET", "/api/main/echo", [("X-Big", "b" * MAX_HEADERS)])
    assert_problem(response, 431, "headers_too_large")


def test_concurrent_clients_each_get_their_own_answer(hub: HubProcess) -> None:
    def client_session(n: int) -> None:
        with httpx.Client(base_url=hub.url, timeout=TIMEOUT) as http:
            for i in range(20):
                body = os.urandom(n * 1000 + i)
                echo = http.post(f"/api/main/echo/{n}/{i}", content=body).json()
                assert echo["raw_path"] == f"/echo/{n}/{i}"
                assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(client_session, range(8)))  # re-raises the first failure


# -- the same proxy on the real back-ends (PostgreSQL, Redis, RabbitMQ) ----------------------


@contextmanager
def temp_postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database for a module, created on a loop of its own."""
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)

    manager = create_temp_postgres_database()
    try:
        try:
            url: str = run(manager.__aenter__())
        except (OSError, asyncpg.PostgresError) as exc:
            message = f"PostgreSQL is unreachable: {exc}"
            if os.environ.get("HUB_TEST_SKIP_SERVICES") == "1":
                pytest.skip(message)
            pytest.fail(message, pytrace=False)
        try:
            yield url
        finally:
            run(manager.__aexit__(None, None, None))
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(timeout=5)
        loop.close()


@pytest.fixture(scope="module")
def real_backends_hub(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: UpstreamServer,
    redis_url: str,
    amqp_url: str,
) -> Iterator[HubProcess]:
    tmp = tmp_path_factory.mktemp("proxy-integration-backends")
    policies = write_policies(
        tmp / "policies",
        upstreams=[{"id": "main", "targets": [{"url": upstream.url}], "breaker": PATIENT_BREAKER}],
        routes=routes()[:1],
    )
    with temp_postgres_database() as database_url:
        env = {
            **HUB_ENV,
            "HUB_DATABASE_URL": database_url,
            "HUB_REDIS_URL": redis_url,
            "HUB_AMQP_URL": amqp_url,
        }
        with run_hub(tmp, policies, env=env) as process:  # runs `hub migrate` first
            yield process


@pytest.mark.backends
def test_real_backends_proxy_smoke(real_backends_hub: HubProcess) -> None:
    port = real_backends_hub.port
    body = os.urandom(100_000)
    posted = raw_request(
        port, "POST", "/api/main/echo?a=1&a=%20", [("X-Dup", "1"), ("X-Dup", "2")], body
    )
    assert posted.status == 200
    echo = posted.json()
    assert echo["raw_path"] == "/echo?a=1&a=%20"
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert sent(echo, "x-dup") == ["1", "2"]
    assert sent(echo, "x-request-id") == posted.values("x-request-id")

    assert raw_request(port, "GET", "/api/main/status/418").status == 418
    assert_problem(raw_request(port, "GET", "/nowhere"), 404, "route_not_found")
    assert_problem(raw_request(port, "GET", "/api/main/a%2Fb"), 400, "invalid_path")
    with httpx.Client(base_url=real_backends_hub.url, timeout=TIMEOUT) as http:
        assert http.get("/readyz").status_code == 200
        assert_problem(
            http.post("/api/main/echo", content=b"x" * (MAX_BODY + 1)), 413, "payload_too_large"
        )
