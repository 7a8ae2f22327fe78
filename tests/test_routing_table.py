"""The route table: matching, precedence, 405 answers and shadowed-route detection."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.config.model import RouteSpec
from hub.errors import ConfigError
from hub.routing.table import RouteMatch, RouteTable, find_shadowed, precedence_key

Headers = list[tuple[bytes, bytes]]


def r(route_id: str, **fields: Any) -> RouteSpec:
    fields.setdefault("upstream", "u")
    return RouteSpec(id=route_id, **fields)


def ordered(*routes: RouteSpec) -> list[RouteSpec]:
    """The routes with ``order`` set to their position, as the config loader does."""
    return [dataclasses.replace(route, order=n) for n, route in enumerate(routes)]


def winner(
    routes: Sequence[RouteSpec],
    path: str,
    *,
    method: str = "GET",
    host: str = "",
    headers: Headers | None = None,
) -> str | None:
    found = RouteTable.compile(routes).match(method, host, path, headers or [])
    return found.route.id if found is not None else None


# --- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/api/echo/v1/", "/api/echo/v1"])
@pytest.mark.parametrize(
    ("path", "matched"),
    [
        ("/api/echo/v1", "/api/echo/v1"),
        ("/api/echo/v1/", "/api/echo/v1"),
        ("/api/echo/v1/items", "/api/echo/v1"),
        ("/api/echo/v1/anything/below/", "/api/echo/v1"),
        ("/api/echo/v10", None),
        ("/api/echo/v", None),
        ("/api/echo", None),
        ("/", None),
    ],
)
def test_prefix_matches_on_segment_boundaries(prefix: str, path: str, matched: str | None) -> None:
    found = RouteTable.compile([r("echo", prefix=prefix)]).match("GET", "", path, [])
    assert (found.matched if found else None) == matched


def test_root_prefix_matches_everything_and_matched_is_empty() -> None:
    table = RouteTable.compile([r("all", prefix="/")])
    for path in ("/", "/a", "/a/b/c/"):
        found = table.match("POST", "any.host", path, [])
        assert found is not None
        assert found.matched == ""
        assert path[len(found.matched) :] == path


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/visas/v1/applications/42", {"id": "42"}),
        ("/api/visas/v1/applications/42/", {"id": "42"}),
        ("/api/visas/v1/applications/caf\u00e9 %", {"id": "caf\u00e9 %"}),
        ("/api/visas/v1/applications", None),
        ("/api/visas/v1/applications/", None),
        ("/api/visas/v1/applications/42/x", None),
        ("/api/visas/v2/applications/42", None),
    ],
)
def test_template_matches_whole_path(path: str, params: dict[str, str] | None) -> None:
    table = RouteTable.compile([r("app", path="/api/visas/v1/applications/{id}")])
    found = table.match("GET", "", path, [])
    if params is None:
        assert found is None
    else:
        assert found == RouteMatch(route=table.routes[0], params=params, matched=path)


def test_template_params_and_static_templates() -> None:
    routes = ordered(
        r("two", path="/t/{tenant}/items/{item}"),
        r("root", path="/"),
        r("static", path="/static/page/"),
    )
    table = RouteTable.compile(routes)
    found = table.match("GET", "", "/t/acme/items/7", [])
    assert found is not None
    assert dict(found.params) == {"tenant": "acme", "item": "7"}
    for path, route_id in [("/", "root"), ("/static/page", "static"), ("/static/page/", "static")]:
        found = table.match("GET", "", path, [])
        assert found is not None
        assert (found.route.id, found.matched, dict(found.params)) == (route_id, path, {})


def test_prefix_with_a_parameter_reports_the_matched_prefix() -> None:
    table = RouteTable.compile([r("tenant", prefix="/t/{tenant}/api")])
    found = table.match("GET", "", "/t/acme/api/x/y", [])
    assert found is not None
    assert (dict(found.params), found.matched) == ({"tenant": "acme"}, "/t/acme/api")


def test_a_path_that_is_not_normalised_matches_nothing() -> None:
    table = RouteTable.compile([r("all", prefix="/")])
    assert table.match("GET", "", "", []) is None
    assert table.match("GET", "", "api", []) is None
    assert table.allowed_methods("", "", []) == frozenset()


def test_match_is_a_frozen_value() -> None:
    table = RouteTable.compile([r("a", prefix="/a"), r("b", path="/b/{x}")])
    for path in ("/a/1", "/b/1"):
        found = table.match("GET", "", path, [])
        assert isinstance(found, RouteMatch)
        with pytest.raises(dataclasses.FrozenInstanceError):
            found.matched = "/elsewhere"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("api.example.gov", "exact"),
        ("x.example.gov", "wild"),
        ("a.b.example.gov", "wild"),
        ("example.gov", "any"),
        ("xexample.gov", "any"),
        ("", "any"),
        ("api.example.gov.evil.org", "any"),
        (".example.gov", "any"),
    ],
)
def test_hosts(host: str, expected: str) -> None:
    routes = ordered(
        r("any", prefix="/"),
        r("wild", prefix="/", hosts=("*.Example.gov",)),
        r("exact", prefix="/", hosts=("API.example.gov",)),
    )
    assert winner(routes, "/x", host=host) == expected


def test_route_with_hosts_does_not_serve_an_absent_host() -> None:
    assert winner([r("h", prefix="/", hosts=("api.example.gov", "*.example.gov"))], "/") is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"x-channel", b"portal"), (b"x-tier", b"gold")], "both"),
        ([(b"x-tier", b"gold"), (b"x-channel", b"portal")], "both"),
        ([(b"x-channel", b"portal")], "one"),
        ([(b"x-channel", b"kiosk"), (b"x-channel", b"portal")], "one"),
        ([(b"x-channel", b"Portal")], "none"),
        ([(b"x-tier", b"gold")], "none"),
        ([], "none"),
    ],
)
def test_header_conditions_must_all_hold(headers: Headers, expected: str) -> None:
    routes = ordered(
        r("none", prefix="/"),
        r("one", prefix="/", headers=(("X-Channel", "portal"),)),
        r("both", prefix="/", headers=(("x-channel", "portal"), ("x-tier", "gold"))),
    )
    assert winner(routes, "/", headers=headers) == expected
    # ASGI allows any two-item iterable per header, lists included.
    as_lists: Any = [list(pair) for pair in headers]
    assert winner(routes, "/", headers=as_lists) == expected


@pytest.mark.parametrize(
    ("method", "expected"),
    [("GET", "read"), ("HEAD", "read"), ("POST", "write"), ("PUT", None), ("OPTIONS", None)],
)
def test_methods_and_head(method: str, expected: str | None) -> None:
    routes = ordered(
        r("read", path="/x", methods=("get",)), r("write", path="/x", methods=("POST",))
    )
    assert winner(routes, "/x", method=method) == expected


def test_a_route_that_does_not_allow_the_method_lets_the_next_one_serve() -> None:
    routes = ordered(r("items", path="/a/{id}", methods=("GET",)), r("rest", prefix="/a"))
    assert winner(routes, "/a/1", method="DELETE") == "rest"


# --- precedence -------------------------------------------------------------------------------

PRECEDENCE = [
    # 1) priority beats every other rule
    ([r("specific", path="/a/b"), r("catchall", prefix="/", priority=1)], "/a/b", "", "catchall"),
    # 2) host specificity beats path specificity
    ([r("path", path="/a/b"), r("host", prefix="/", hosts=("*.x.gov",))],
     "/a/b", "h.x.gov", "host"),
    ([r("wild", prefix="/", hosts=("*.x.gov",)), r("exact", prefix="/", hosts=("a.b.x.gov",))],
     "/", "a.b.x.gov", "exact"),
    ([r("short", prefix="/", hosts=("*.x.gov",)), r("long", prefix="/", hosts=("*.b.x.gov",))],
     "/", "a.b.x.gov", "long"),
    ([r("short", prefix="/", hosts=("*.x.gov",)), r("long", prefix="/", hosts=("*.b.x.gov",))],
     "/", "a.c.x.gov", "short"),
    # a route ranks by the host pattern that matched, not its most specific one
    ([r("mixed", prefix="/", hosts=("api.x.gov", "*.x.gov")),
      r("deeper", prefix="/a", hosts=("*.x.gov",))], "/a", "www.x.gov", "deeper"),
    ([r("mixed", prefix="/", hosts=("api.x.gov", "*.x.gov")),
      r("deeper", prefix="/a", hosts=("*.x.gov",))], "/a", "api.x.gov", "mixed"),
    # 3) path: static > param > end of prefix; template end > prefix end
    ([r("param", path="/a/{x}"), r("static", path="/a/b")], "/a/b", "", "static"),
    ([r("param", path="/a/{x}"), r("static", path="/a/b")], "/a/c", "", "param"),
    ([r("prefix", prefix="/a"), r("param", path="/a/{x}")], "/a/b", "", "param"),
    ([r("prefix", prefix="/a/b"), r("template", path="/a/b")], "/a/b/", "", "template"),
    ([r("short", prefix="/api"), r("long", prefix="/api/v1")], "/api/v1/x", "", "long"),
    ([r("template", path="/a/{x}"), r("prefix", prefix="/a/b")], "/a/b", "", "prefix"),
    ([r("p1", path="/{x}/b/{y}"), r("p2", path="/{x}/{y}/c")], "/a/b/c", "", "p1"),
    ([r("pre", prefix="/{t}/b"), r("tpl", path="/{t}/{x}")], "/a/b", "", "pre"),
    # 4) more header conditions
    ([r("one", prefix="/", headers=(("h", "1"),)),
      r("two", prefix="/", headers=(("h", "1"), ("k", "2")))], "/", "", "two"),
    ([r("get", prefix="/", methods=("GET",)), r("hdr", prefix="/", headers=(("h", "1"),))],
     "/", "", "hdr"),
    # 5) explicit methods over any method
    ([r("any", path="/a"), r("get", path="/a", methods=("GET",))], "/a", "", "get"),
    # 6) earlier declaration
    ([r("first", prefix="/a"), r("second", prefix="/a")], "/a", "", "first"),
]  # fmt: skip


@pytest.mark.parametrize(("routes", "path", "host", "expected"), PRECEDENCE)
def test_precedence(routes: list[RouteSpec], path: str, host: str, expected: str) -> None:
    headers = [(b"h", b"1"), (b"k", b"2")]
    routes = ordered(*routes)
    assert winner(routes, path, host=host, headers=headers) == expected
    # Declaration order is the ``order`` field, not the position in the list.
    assert winner(routes[::-1], path, host=host, headers=headers) == expected


def test_declaration_order_comes_from_order_then_position() -> None:
    late_first = [r("a", prefix="/", order=5), r("b", prefix="/", order=1)]
    assert winner(late_first, "/") == "b"
    same_order = [r("a", prefix="/"), r("b", prefix="/")]
    assert winner(same_order, "/") == "a"


def test_precedence_key_orders_routes_with_max() -> None:
    routes = ordered(r("catchall", prefix="/"), r("api", prefix="/api"), r("item", path="/api/{x}"))
    assert max(routes, key=precedence_key).id == "item"
    boosted = dataclasses.replace(routes[0], priority=1)
    assert precedence_key(boosted) > precedence_key(routes[2])


def test_precedence_key_for_a_host() -> None:
    route = r("mixed", prefix="/", hosts=("api.x.gov", "*.x.gov"))
    assert precedence_key(route) == precedence_key(route, "api.x.gov")
    assert precedence_key(route, "api.x.gov") > precedence_key(route, "www.x.gov")
    with pytest.raises(ValueError, match="does not serve"):
        precedence_key(route, "x.gov")


# --- 405 --------------------------------------------------------------------------------------


def test_allowed_methods_for_a_405() -> None:
    table = RouteTable.compile(
        ordered(
            r("read", path="/items/{id}", methods=("GET",)),
            r("write", prefix="/items", methods=("PUT", "DELETE")),
            r("other-host", path="/items/{id}", methods=("PATCH",), hosts=("x.gov",)),
            r("needs-header", path="/items/{id}", methods=("POST",), headers=(("h", "1"),)),
            r("any", path="/open"),
        )
    )
    assert table.match("POST", "", "/items/1", []) is None
    assert table.allowed_methods("", "/items/1", []) == {"GET", "HEAD", "PUT", "DELETE"}
    assert table.allowed_methods("x.gov", "/items/1/", [(b"h", b"1")]) == {
        "GET", "HEAD", "PUT", "DELETE", "PATCH", "POST",
    }  # fmt: skip
    assert table.allowed_methods("", "/nothing", []) == frozenset()


# --- compile errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        (r("both", path="/a", prefix="/a"), "exactly one"),
        (r("neither"), "exactly one"),
        (r("relative", path="a/b"), "must start with '/'"),
        (r("empty", path="/a//b"), "empty or dot"),
        (r("dots", prefix="/a/../b"), "empty or dot"),
        (r("partial", path="/a/v{x}"), "whole segment"),
        (r("badname", path="/a/{1x}"), "not a valid name"),
        (r("twice", path="/{x}/{x}"), "appears twice"),
        (r("backslash", path="/a\\b"), "no path may hold"),
        (r("host", prefix="/", hosts=("a.*.gov",)), "not a valid host"),
        (r("wild", prefix="/", hosts=("*.",)), "not a valid wildcard"),
        (r("method", prefix="/", methods=("GET POST",)), "HTTP method"),
        (r("header", prefix="/", headers=(("x", "caf\u00e9\u20ac"),)), "Latin-1"),
    ],
)
def test_invalid_routes_are_refused(route: RouteSpec, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RouteTable.compile([r("fine", prefix="/"), route])
    assert len(caught.value.issues) == 1
    assert route.id in caught.value.issues[0]
    assert problem in caught.value.issues[0]


def test_every_invalid_route_is_listed() -> None:
    with pytest.raises(ConfigError) as caught:
        RouteTable.compile([r("one", path="x"), r("two", path="/{}")])
    assert len(caught.value.issues) == 2


# --- shadowing --------------------------------------------------------------------------------

H = (("h", "1"),)
HK = (("h", "1"), ("k", "2"))
SHADOWED = [
    ([r("a", prefix="/api"), r("b", prefix="/api/")], [("b", "a")]),
    ([r("all", prefix="/", priority=1), r("x", path="/x")], [("x", "all")]),
    ([r("get", path="/x/{id}", methods=("GET",)), r("head", path="/x/{n}", methods=("HEAD",))],
     [("head", "get")]),
    ([r("any", path="/x"), r("get", path="/x", methods=("GET",))], []),
    ([r("wild", prefix="/", hosts=("*.x.gov",), priority=1),
      r("exact", prefix="/a", hosts=("a.x.gov",))], [("exact", "wild")]),
    ([r("wild", prefix="/", hosts=("*.x.gov",)), r("exact", prefix="/a", hosts=("a.x.gov",))], []),
    ([r("h", prefix="/", headers=H), r("hk", prefix="/", headers=HK)], []),
    ([r("hk", prefix="/", headers=HK), r("h", prefix="/", headers=H)], []),
    ([r("p", prefix="/a", priority=2), r("q", path="/a/{x}", priority=1), r("s", path="/a/b")],
     [("q", "p"), ("s", "p")]),
    ([r("x", path="/x"), r("y", path="/y")], []),
    ([r("template", path="/a"), r("prefix", prefix="/a")], []),
    ([r("get", path="/a", methods=("GET",)), r("post", path="/a", methods=("POST",))], []),
    ([r("get", path="/a", methods=("GET",)), r("any", path="/a")], []),
    ([r("one-host", prefix="/", hosts=("a.x.gov",)), r("any-host", prefix="/a")], []),
    ([r("narrow", prefix="/", hosts=("*.b.x.gov",)), r("broad", prefix="/a", hosts=("*.x.gov",))],
     []),
    ([r("broad", prefix="/", hosts=("*.x.gov",), priority=1),
      r("narrow", prefix="/a", hosts=("*.b.x.gov", "a.x.gov"))], [("narrow", "broad")]),
    ([r("prefix", prefix="/a"), r("template", path="/a/")], []),
    ([r("prefix", prefix="/a", priority=1), r("template", path="/a/")], [("template", "prefix")]),
    # a route ranks by the host pattern that matched: "deeper" wins on www.x.gov
    ([r("mixed", prefix="/", hosts=("api.x.gov", "*.x.gov")),
      r("deeper", prefix="/a", hosts=("*.x.gov",))], []),
    ([r("mixed", prefix="/", hosts=("api.x.gov", "*.x.gov"), priority=1),
      r("deeper", prefix="/a", hosts=("*.x.gov",))], [("deeper", "mixed")]),
]  # fmt: skip


@pytest.mark.parametrize(("routes", "expected"), SHADOWED)
def test_find_shadowed(routes: list[RouteSpec], expected: list[tuple[str, str]]) -> None:
    pairs = find_shadowed(ordered(*routes))
    assert [(shadowed.id, by.id) for shadowed, by in pairs] == expected


# --- properties: the trie agrees with brute force -----------------------------------------------

SEGMENTS = ["a", "b"]
HOST_PATTERNS = ["api.x.gov", "*.x.gov", "*.b.x.gov", "b.x.gov"]
HEADER_CONDITIONS = [("h", "1"), ("h", "2"), ("k", "1")]
METHODS = ["GET", "POST", "HEAD"]


def _some(choices: list[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    """Often none (so that routes overlap), else one or two of ``choices``."""
    return st.one_of(st.just(()), st.lists(st.sampled_from(choices), max_size=2).map(tuple))


@st.composite
def route_sets(draw: st.DrawFn, max_routes: int = 6, max_depth: int = 3) -> list[RouteSpec]:
    routes = []
    for n in range(draw(st.integers(1, max_routes))):
        depth = draw(st.integers(0, max_depth))
        parts = [
            draw(st.sampled_from([*SEGMENTS, "{p}"])).replace("{p}", f"{{p{i}}}")
            for i in range(depth)
        ]
        pattern = "/" + "/".join(parts)
        is_prefix = draw(st.booleans())
        routes.append(
            r(
                f"r{n}",
                path=None if is_prefix else pattern,
                prefix=pattern if is_prefix else None,
                hosts=draw(_some(HOST_PATTERNS)),
                methods=draw(_some(METHODS)),
                headers=draw(_some(HEADER_CONDITIONS)),
                priority=draw(st.integers(0, 1)),
                order=draw(st.integers(0, 3)),  # ties fall back to position
            )
        )
    return routes


def path_params(route: RouteSpec, path: str) -> dict[str, str] | None:
    """Plain, independent reading of the path rules: the params when the path matches."""
    segments = [s for s in path.split("/") if s]
    pattern = route.path if route.path is not None else route.prefix
    assert pattern is not None
    wanted = [s for s in pattern.split("/") if s]
    if len(segments) < len(wanted) or (route.path is not None and len(segments) != len(wanted)):
        return None
    params = {}
    for want, got in zip(wanted, segments, strict=False):
        if want.startswith("{"):
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


def host_ok(route: RouteSpec, host: str) -> bool:
    return not route.hosts or any(
        host == h or (h.startswith("*.") and host.endswith(h[1:]) and host != h[2:])
        for h in route.hosts
    )


def method_ok(route: RouteSpec, method: str) -> bool:
    allowed = set(route.methods) | ({"HEAD"} if "GET" in route.methods else set())
    return not route.methods or method in allowed


def headers_ok(route: RouteSpec, headers: Headers) -> bool:
    return all((n.encode(), v.encode()) in headers for n, v in route.headers)


def reference_match(
    route: RouteSpec, method: str, host: str, path: str, headers: Headers
) -> dict[str, str] | None:
    if host_ok(route, host) and method_ok(route, method) and headers_ok(route, headers):
        return path_params(route, path)
    return None


def reference_winner(
    routes: Sequence[RouteSpec], method: str, host: str, path: str, headers: Headers
) -> tuple[RouteSpec, dict[str, str]] | None:
    matching = [
        (precedence_key(route, host), -n, route, params)
        for n, route in enumerate(routes)
        if (params := reference_match(route, method, host, path, headers)) is not None
    ]
    if not matching:
        return None
    best = max(matching, key=lambda item: (item[0], item[1]))
    return best[2], best[3]


def reference_allowed(
    routes: Sequence[RouteSpec], host: str, path: str, headers: Headers
) -> set[str]:
    allowed: set[str] = set()
    for route in routes:
        if not route.methods or path_params(route, path) is None:
            continue
        if host_ok(route, host) and headers_ok(route, headers):
            allowed.update(route.methods)
            allowed.update(["HEAD"] if "GET" in route.methods else [])
    return allowed


http_requests = st.tuples(
    st.sampled_from([*METHODS, "PUT"]),
    st.sampled_from(["", "api.x.gov", "b.x.gov", "q.b.x.gov", "x.gov", "q.x.gov", "o.gov"]),
    st.tuples(st.lists(st.sampled_from([*SEGMENTS, "c"]), max_size=4), st.booleans()).map(
        lambda p: "/" + "/".join(p[0]) + ("/" if p[0] and p[1] else "")
    ),
    st.lists(st.sampled_from([(b"h", b"1"), (b"h", b"2"), (b"k", b"1"), (b"z", b"9")])),
)


@settings(max_examples=80, deadline=None)
@given(route_sets(), st.lists(http_requests, min_size=1, max_size=25))
def test_match_agrees_with_brute_force(
    routes: list[RouteSpec], batch: list[tuple[str, str, str, Headers]]
) -> None:
    table = RouteTable.compile(routes)
    for method, host, path, headers in batch:
        found = table.match(method, host, path, headers)
        expected = reference_winner(routes, method, host, path, headers)
        if expected is None:
            assert found is None
            assert table.allowed_methods(host, path, headers) == reference_allowed(
                routes, host, path, headers
            )
            continue
        assert found is not None
        assert found.route is expected[0]
        assert dict(found.params) == expected[1]
        if found.route.prefix is None:
            assert found.matched == path
        else:
            depth = len([s for s in found.route.prefix.split("/") if s])
            assert found.matched == "".join("/" + s for s in path.split("/")[1:][:depth])


def _universe(routes: Sequence[RouteSpec]) -> dict[str, list[Any]]:
    """One request per class that the routes' conditions can tell apart, per dimension."""
    depth = max(len([s for s in (x.path or x.prefix or "").split("/") if s]) for x in routes)
    paths = [
        "/" + "/".join(p)
        for n in range(depth + 2)
        for p in itertools.product([*SEGMENTS, "c"], repeat=n)
    ]
    hosts = {""}
    for pattern in HOST_PATTERNS:
        hosts.update({pattern[2:], "q." + pattern[2:]} if pattern.startswith("*.") else {pattern})
    pairs = [(n.encode(), v.encode()) for n, v in HEADER_CONDITIONS]
    header_sets = [
        list(chosen) for k in range(len(pairs) + 1) for chosen in itertools.combinations(pairs, k)
    ]
    return {
        "paths": paths,
        "hosts": sorted(hosts),
        "methods": [*METHODS, "PUT"],
        "headers": header_sets,
    }


def _dominates(a: int, b: int, routes: Sequence[RouteSpec], universe: dict[str, list[Any]]) -> bool:
    """By enumeration: A matches every request B matches, and wins each of them.

    B's requests are the product of the paths, hosts, methods and header sets it accepts, so
    A covers them when it accepts a superset of each; who wins depends on the host alone.
    """
    ra, rb = routes[a], routes[b]
    for dimension, accepts in (
        ("paths", lambda route, x: path_params(route, x) is not None),
        ("methods", method_ok),
        ("headers", headers_ok),
        ("hosts", host_ok),
    ):
        if any(accepts(rb, x) and not accepts(ra, x) for x in universe[dimension]):
            return False
    return all(
        (precedence_key(ra, host), -a) > (precedence_key(rb, host), -b)
        for host in universe["hosts"]
        if host_ok(rb, host)
    )


@settings(max_examples=40, deadline=None)
@given(route_sets(max_routes=4, max_depth=2), st.randoms(use_true_random=False))
def test_find_shadowed_agrees_with_brute_force(routes: list[RouteSpec], rng: Any) -> None:
    universe = _universe(routes)
    expected: dict[int, set[int]] = {}
    for b, a in itertools.permutations(range(len(routes)), 2):
        if _dominates(a, b, routes, universe):
            expected.setdefault(b, set()).add(a)
    pairs = find_shadowed(routes)
    index = {id(route): n for n, route in enumerate(routes)}
    got = {index[id(shadowed)]: index[id(by)] for shadowed, by in pairs}
    assert set(got) == set(expected)
    for b, a in got.items():
        assert a in expected[b]
    # A shadowed route never wins a request.
    table = RouteTable.compile(routes)
    for _ in range(200):
        path = rng.choice(universe["paths"])
        host = rng.choice(universe["hosts"])
        method = rng.choice(universe["methods"])
        headers = rng.choice(universe["headers"])
        found = table.match(method, host, path, headers)
        assert found is None or index[id(found.route)] not in got
