"""The configuration's JSON Schema and semantic rules: each finding with its exact message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.config.loader import document_from_raw, load_directory
from hub.config.validate import RESERVED_PATHS, format_path, template_problems
from hub.errors import ConfigError


def route(**fields: Any) -> dict[str, Any]:
    """A valid route, with ``fields`` changed; a field set to None is removed."""
    item: dict[str, Any] = {"id": "r", "upstream": "echo", "prefix": "/r/"}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not None}


def upstream(**fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"id": "echo", "targets": [{"url": "http://127.0.0.1:9101"}]}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not None}


def doc(**sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"upstreams": [upstream()], "routes": [route()]}
    raw.update(sections)
    return raw


def issues(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        document_from_raw(raw)
    return info.value.issues


def test_a_minimal_document_is_valid() -> None:
    document = document_from_raw(doc())
    assert [r.id for r in document.routes] == ["r"]


# --- JSON Schema -----------------------------------------------------------------------------


def test_unknown_section_suggests_the_close_one() -> None:
    assert issues(doc(route=[])) == ["$.route: unknown section 'route' (did you mean 'routes'?)"]


def test_issuers_are_unique_by_id_and_by_url() -> None:
    issuer = {
        "id": "idp",
        "issuer": "https://idp.example.gov",
        "jwks_uri": "https://idp.example.gov/jwks",
        "audiences": ["hub"],
        "algorithms": ["RS256"],
    }
    assert issues(doc(issuers=[issuer, dict(issuer)])) == [
        "$.issuers[1].id: duplicate issuer id 'idp' (first defined at $.issuers[0])",
        "$.issuers[1].issuer: issuer 'https://idp.example.gov' is already trusted"
        " (first defined at $.issuers[0])",
    ]


def test_an_issuer_may_not_allow_hmac_or_none() -> None:
    issuer = {
        "id": "idp",
        "issuer": "https://idp.example.gov",
        "jwks_uri": "https://idp.example.gov/jwks",
        "audiences": ["hub"],
        "algorithms": ["HS256"],
    }
    found = issues(doc(issuers=[issuer]))
    assert len(found) == 1
    assert found[0].startswith("$.issuers[0].algorithms[0]: 'HS256' is not one of")


def test_unknown_section_lists_the_known_ones() -> None:
    assert issues(doc(gateways=[])) == [
        "$.gateways: unknown section 'gateways' (expected one of: adapters, consumers,"
        " governance, issuers, permissions, plans, products, purposes, routes, upstreams)"
    ]


def test_unknown_field_suggests_the_close_one() -> None:
    raw = doc(routes=[route(timeouts={"conect": 1})])
    assert issues(raw) == [
        "$.routes[0].timeouts.conect: unknown field 'conect' (did you mean 'connect'?)"
    ]


def test_unknown_field_without_a_close_one() -> None:
    assert issues(doc(upstreams=[upstream(colour="blue")])) == [
        "$.upstreams[0].colour: unknown field 'colour'"
    ]


def test_missing_required_fields_are_each_named() -> None:
    assert issues(doc(upstreams=[{"balancing": "round_robin"}], routes=[])) == [
        "$.upstreams[0]: missing required field 'id'",
        "$.upstreams[0]: missing required field 'targets'",
    ]


def test_wrong_type_names_expected_and_found() -> None:
    assert issues(doc(routes=[route(timeouts={"connect": "fast"})])) == [
        "$.routes[0].timeouts.connect: expected number, got string 'fast'"
    ]


def test_a_boolean_is_not_an_integer() -> None:
    assert issues(doc(routes=[route(priority=True)])) == [
        "$.routes[0].priority: expected integer, got boolean true"
    ]


def test_a_section_must_be_a_list() -> None:
    assert issues(doc(upstreams={"echo": {}}, routes=[])) == [
        "$.upstreams: expected array, got object"
    ]


def test_enum_violation() -> None:
    assert issues(doc(upstreams=[upstream(balancing="fastest")])) == [
        "$.upstreams[0].balancing: 'fastest' is not one of ['round_robin', 'least_outstanding']"
    ]


def test_identifier_pattern() -> None:
    assert issues(doc(upstreams=[upstream(id="Echo")], routes=[])) == [
        "$.upstreams[0].id: 'Echo' does not match '^[a-z][a-z0-9_-]*$'"
    ]


@pytest.mark.parametrize("field", ["healthy_threshold", "unhealthy_threshold"])
def test_health_check_thresholds_are_at_least_one(field: str) -> None:
    raw = doc(upstreams=[upstream(health_check={field: 0})])
    assert issues(raw) == [f"$.upstreams[0].health_check.{field}: 0 is less than the minimum of 1"]


def test_timeouts_must_be_positive() -> None:
    assert issues(doc(routes=[route(timeouts={"read": 0})])) == [
        "$.routes[0].timeouts.read: 0 is less than or equal to the minimum of 0"
    ]


def test_an_upstream_needs_a_target() -> None:
    assert issues(doc(upstreams=[upstream(targets=[])])) == [
        "$.upstreams[0].targets: [] should be non-empty"
    ]


def test_product_and_version_go_together() -> None:
    assert issues(doc(routes=[route(version=1)])) == [
        "$.routes[0]: 'version' requires 'product' as well"
    ]


def test_header_condition_names_must_be_tokens() -> None:
    assert issues(doc(routes=[route(headers={"X Channel": "portal"})])) == [
        "$.routes[0].headers: key 'X Channel' does not match \"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$\""
    ]


def test_odd_keys_are_shown_in_brackets() -> None:
    assert issues(doc(routes=[route(headers={"X-Channel": 1})])) == [
        "$.routes[0].headers['X-Channel']: expected string, got number 1"
    ]


def test_the_reserved_consumers_section_needs_string_ids_and_is_otherwise_open() -> None:
    raw = doc(consumers=[{"id": "gold", "quota": 10}, {"name": "silver"}, {"id": 7}])
    assert issues(raw) == [
        "$.consumers[1]: missing required field 'id'",
        "$.consumers[2].id: expected string, got number 7",
    ]


def test_every_finding_is_listed_in_document_order() -> None:
    routes = [route(id=f"r{n}", prefix=f"/r{n}/") for n in range(11)]
    routes[10]["timeouts"] = {"total": "soon"}
    routes[2]["retries"] = {"max_retries": -1}
    routes[2]["priority"] = "high"
    assert issues(doc(routes=routes)) == [
        "$.routes[2].priority: expected integer, got string 'high'",
        "$.routes[2].retries.max_retries: -1 is less than the minimum of 0",
        "$.routes[10].timeouts.total: expected number, got string 'soon'",
    ]


# --- semantic rules --------------------------------------------------------------------------


def test_route_naming_an_unknown_upstream() -> None:
    assert issues(doc(routes=[route(upstream="visa")])) == [
        "$.routes[0].upstream: 'visa' is not a defined upstream"
    ]


def test_duplicate_upstream_id() -> None:
    raw = doc(upstreams=[upstream(), upstream(targets=[{"url": "http://127.0.0.1:9102"}])])
    assert issues(raw) == [
        "$.upstreams[1].id: duplicate upstream id 'echo' (first defined at $.upstreams[0])"
    ]


def test_duplicate_route_id() -> None:
    raw = doc(routes=[route(), route(prefix="/other/"), route(prefix="/third/")])
    assert issues(raw) == [
        "$.routes[1].id: duplicate route id 'r' (first defined at $.routes[0])",
        "$.routes[2].id: duplicate route id 'r' (first defined at $.routes[0])",
    ]


def test_duplicate_product_version() -> None:
    product = {"id": "echo", "version": 1, "title": "Echo"}
    raw = doc(products=[product, {**product, "version": 2}, product])
    assert issues(raw) == [
        "$.products[2]: duplicate product 'echo' version 1 (first defined at $.products[0])"
    ]


def test_route_naming_an_undeclared_product_version() -> None:
    raw = doc(
        products=[{"id": "echo", "version": 1, "title": "Echo"}],
        routes=[route(product="echo", version=2)],
    )
    assert issues(raw) == [
        "$.routes[0].product: product 'echo' version 2 is not declared in products"
    ]


@pytest.mark.parametrize("reserved", RESERVED_PATHS)
def test_routes_cannot_claim_reserved_paths(reserved: str) -> None:
    raw = doc(
        routes=[
            route(id="equal", prefix=None, path=reserved),
            route(id="under", prefix=f"{reserved}/x/"),
        ]
    )
    assert issues(raw) == [
        f"$.routes[0].path: '{reserved}' claims the reserved hub path '{reserved}'",
        f"$.routes[1].prefix: '{reserved}/x/' claims the reserved hub path '{reserved}'",
    ]


@pytest.mark.parametrize("prefix", ["/", "/api/", "/administration/", "/api/catalogue/"])
def test_paths_beside_or_above_reserved_ones_are_allowed(prefix: str) -> None:
    document_from_raw(doc(routes=[route(prefix=prefix)]))


def test_route_needs_exactly_one_of_path_and_prefix() -> None:
    raw = doc(routes=[route(id="both", path="/x"), route(id="neither", prefix=None)])
    assert issues(raw) == [
        "$.routes[0]: set exactly one of 'path' and 'prefix' (both are set)",
        "$.routes[1]: set exactly one of 'path' and 'prefix' (neither is set)",
    ]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("api/items", "'api/items' must start with '/'"),
        (
            "/items/{1d}",
            "parameter '{1d}' must be named like {name} (a letter or '_', then letters, digits"
            " or '_')",
        ),
        ("/items/{id}/parts/{id}", "parameter 'id' appears more than once"),
        ("/items/{id}.json", "segment '{id}.json' must be plain text or a whole {name} parameter"),
        ("/items//parts", "'/items//parts' has an empty segment ('//')"),
        ("/items/../admin", "'/items/../admin' has a '..' segment, which a path cannot hold"),
        ("/items?x=1", "'/items?x=1' contains '?', which a path cannot hold"),
        ("/my items", "'/my items' contains ' ', which a path cannot hold"),
    ],
)
def test_invalid_path_templates(template: str, reason: str) -> None:
    raw = doc(routes=[route(prefix=None, path=template)])
    assert issues(raw) == [f"$.routes[0].path: {reason}"]


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("api/", "'api/' must start with '/'"),
        ("/api/{v}/", "'/api/{v}/' is a prefix and cannot hold {name} parameters (use 'path')"),
        ("/api//", "'/api//' has an empty segment ('//')"),
    ],
)
def test_invalid_prefixes(prefix: str, reason: str) -> None:
    assert issues(doc(routes=[route(prefix=prefix)])) == [f"$.routes[0].prefix: {reason}"]


def test_valid_templates_have_no_problems() -> None:
    assert template_problems("/api/visas/v1/applications/{id}") == []
    assert template_problems("/api/{_tenant}/items/{item_id2}/") == []
    assert template_problems("/") == []


def test_methods_must_be_standard() -> None:
    assert issues(doc(routes=[route(methods=["get", "FETCH"])])) == [
        "$.routes[0].methods[1]: 'FETCH' is not a standard HTTP method"
        " (use one of DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT)"
    ]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://127.0.0.1:21", "the scheme must be http or https"),
        ("127.0.0.1:9101", "the scheme must be http or https"),
        ("http://", "no host"),
        ("http://user:secret@127.0.0.1", "user info is not allowed"),
        ("http://127.0.0.1:99999", "invalid port or address"),
        ("http://127.0.0.1:0", "invalid port or address"),
        ("http://127.0.0.1/base?x=1", "a query or fragment is not allowed"),
        ("http://127.0.0.1/base#top", "a query or fragment is not allowed"),
    ],
)
def test_target_urls_must_be_http_host_port_path(url: str, why: str) -> None:
    raw = doc(upstreams=[upstream(targets=[{"url": "http://127.0.0.1:9101"}, {"url": url}])])
    assert issues(raw) == [
        f"$.upstreams[0].targets[1].url: {url!r} is not an http(s)://host[:port][/path] URL ({why})"
    ]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9101", "https://registry.example.gov/base/v1", "http://[::1]:80/"]
)
def test_valid_target_urls(url: str) -> None:
    document_from_raw(doc(upstreams=[upstream(targets=[{"url": url}])]))


def test_connect_timeout_must_not_exceed_total() -> None:
    raw = doc(routes=[route(timeouts={"connect": 10, "total": 5})])
    assert issues(raw) == ["$.routes[0].timeouts: connect (10s) must not exceed total (5s)"]


def test_timeout_relation_counts_defaults() -> None:
    # connect defaults to 5 seconds, so a total of 3 alone cannot work.
    raw = doc(routes=[route(timeouts={"total": 3})])
    assert issues(raw) == ["$.routes[0].timeouts: connect (5s) must not exceed total (3s)"]


def test_read_may_exceed_total() -> None:
    document_from_raw(doc(routes=[route(timeouts={"connect": 1, "read": 30, "total": 10})]))


def test_backoff_initial_must_not_exceed_backoff_max() -> None:
    raw = doc(routes=[route(retries={"backoff_initial": 2})])
    assert issues(raw) == [
        "$.routes[0].retries: backoff_initial (2s) must not exceed backoff_max (0.5s)"
    ]


def test_health_probe_timeout_must_not_exceed_interval() -> None:
    raw = doc(upstreams=[upstream(health_check={"interval": 1, "timeout": 2})])
    assert issues(raw) == [
        "$.upstreams[0].health_check: timeout (2s) must not exceed interval (1s)"
    ]


def test_header_conditions_ignore_case_so_cannot_repeat() -> None:
    raw = doc(routes=[route(headers={"X-Channel": "portal", "x-channel": "app"})])
    assert issues(raw) == [
        "$.routes[0].headers['x-channel']: header 'x-channel' is listed twice (names ignore case)"
    ]


def test_semantic_and_schema_findings_are_reported_together() -> None:
    raw = doc(routes=[route(upstream="visa", priority="high")])
    assert issues(raw) == [
        "$.routes[0].priority: expected integer, got string 'high'",
        "$.routes[0].upstream: 'visa' is not a defined upstream",
    ]


# --- shadowing -------------------------------------------------------------------------------


def test_shadowed_route_is_refused_with_its_file(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "upstreams.yaml").write_text(
        "upstreams:\n  - id: echo\n    targets: [{url: 'http://127.0.0.1:9101'}]\n"
    )
    (policies / "routes.yaml").write_text(
        "routes:\n"
        "  - {id: other, upstream: echo, path: /other}\n"
        "  - {id: a, upstream: echo, prefix: /api/, priority: 10}\n"
        "  - {id: c, upstream: echo, path: /c}\n"
        "  - {id: d, upstream: echo, path: /c}\n"
        "  - {id: b, upstream: echo, path: '/api/items/{id}'}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_directory(policies)
    assert info.value.issues == [
        "policies/routes.yaml: $.routes[3]: route 'd' is shadowed by route 'c' ($.routes[2])"
        " and can never match",
        "policies/routes.yaml: $.routes[4]: route 'b' is shadowed by route 'a' ($.routes[1])"
        " and can never match",
    ]


def test_routes_that_differ_by_method_do_not_shadow() -> None:
    raw = doc(routes=[route(id="a", methods=["GET"]), route(id="b", methods=["POST"])])
    document_from_raw(raw)


def test_invalid_routes_are_left_out_of_the_shadow_check() -> None:
    # Route b would be shadowed by a, but a is broken: only a's own finding is reported.
    raw = doc(routes=[route(id="a", upstream="visa"), route(id="b")])
    assert issues(raw) == ["$.routes[0].upstream: 'visa' is not a defined upstream"]


# --- auth ------------------------------------------------------------------------------------


def test_auth_accepts_the_session_method_and_a_level() -> None:
    auth = {"methods": ["session", "jwt"], "scopes": ["a.read"], "acr": "urn:hub:acr:mfa"}
    (item,) = document_from_raw(doc(routes=[route(auth=auth)])).routes
    assert item.auth is not None
    assert (item.auth.methods, item.auth.scopes, item.auth.acr) == (
        ("session", "jwt"),
        ("a.read",),
        "urn:hub:acr:mfa",
    )


def test_an_unknown_auth_method_or_level_is_refused() -> None:
    auth = {"methods": ["cookie"], "acr": "loa4"}
    assert issues(doc(routes=[route(auth=auth)])) == [
        "$.routes[0].auth.acr: 'loa4' is not one of"
        " ['urn:hub:acr:pwd', 'urn:hub:acr:mfa', 'urn:hub:acr:national-idp']",
        "$.routes[0].auth.methods[0]: 'cookie' is not one of ['jwt', 'api_key', 'session']",
    ]


def test_scopes_on_a_session_only_route_can_never_be_met() -> None:
    auth = {"methods": ["session"], "scopes": ["a.read"]}
    assert issues(doc(routes=[route(auth=auth)])) == [
        "$.routes[0].auth.scopes: a session carries no OAuth scopes, so a route accepting only"
        " 'session' can never be called; drop the scopes or accept 'jwt' as well"
    ]


def test_a_level_on_an_api_key_only_route_can_never_be_met() -> None:
    auth = {"methods": ["api_key"], "acr": "urn:hub:acr:pwd"}
    assert issues(doc(routes=[route(auth=auth)])) == [
        "$.routes[0].auth.acr: an API key has no person behind it, so a route accepting only"
        " 'api_key' can never meet an acr minimum; accept 'jwt' or 'session' as well"
    ]


# --- helpers ---------------------------------------------------------------------------------


def test_format_path() -> None:
    assert format_path(()) == "$"
    assert format_path(("routes", 3, "timeouts", "connect")) == "$.routes[3].timeouts.connect"
    assert format_path(("routes", 0, "headers", "X-Channel")) == "$.routes[0].headers['X-Channel']"
    assert format_path(("a", "it's")) == "$.a['it\\'s']"
