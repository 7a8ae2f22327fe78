"""Checks a merged configuration document: its JSON Schema, then the rules a schema cannot say.

Every check returns :class:`Issue` values (a JSON path and a reason) instead of raising, so the
loader can report every finding at once, each prefixed with the file that defined its section.
The checks work on plain JSON data and guard every access: a document that already broke the
schema still gets its semantic findings, without one error cascading into others.
The JSON Schema checks live in :mod:`hub.config._schema`; a product contract's own checks in
:mod:`hub.config._contracts`; the permission policies' in :mod:`hub.config._permissions`; the
governance rules' in :mod:`hub.config._governance`; plans' and subscriptions' in
:mod:`hub.config._plans`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from hub.config._adapters import adapter_issues
from hub.config._governance import governance_issues
from hub.config._issues import IDENTIFIER, Issue, JsonPath, format_path, section_items
from hub.config._permissions import permission_issues
from hub.config._plans import plan_issues
from hub.config._schema import load_validator, schema_issues
from hub.config.model import HealthCheckSpec, RetrySpec, RouteSpec, TimeoutSpec
from hub.errors import ConfigError
from hub.routing.table import find_shadowed

__all__ = [
    "RESERVED_PATHS",
    "STANDARD_METHODS",
    "Issue",
    "format_path",
    "load_validator",
    "schema_issues",
    "semantic_issues",
    "shadow_issues",
    "template_problems",
]

RESERVED_PATHS: tuple[str, ...] = (
    "/admin",
    "/healthz",
    "/readyz",
    "/metrics",
    "/schema",
    "/api/catalog",
    "/.well-known",
    "/oauth2",
    "/account",
    "/api/me/v1/data-access",
    "/api/callbacks/v1",  # notification providers' receipts (hub.callbacks)
)
STANDARD_METHODS: frozenset[str] = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
)

# The router normalises request paths, so a route holding any of these could never match.
_FORBIDDEN_IN_PATH = re.compile(r"[\s?#\\\x00-\x1f\x7f-\x9f]")


def _number(value: Any, default: float) -> float | None:
    if value is None:
        return default
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _not_above(
    at: JsonPath, section: Mapping[str, Any], defaults: Any, low: str, high: str
) -> Iterator[Issue]:
    """``section[low]`` must not exceed ``section[high]`` (seconds; absent ones take defaults)."""
    small = _number(section.get(low), getattr(defaults, low))
    large = _number(section.get(high), getattr(defaults, high))
    if small is not None and large is not None and small > large:
        yield Issue(path=at, reason=f"{low} ({small:g}s) must not exceed {high} ({large:g}s)")


def semantic_issues(raw: Mapping[str, Any]) -> list[Issue]:
    """Cross-references, uniqueness, paths, URLs and number relations across the document."""
    issues: list[Issue] = []
    upstream_ids = _unique(raw, "upstreams", "upstream id", issues)
    _unique(raw, "routes", "route id", issues)
    _unique(raw, "issuers", "issuer id", issues)
    seen_issuers: dict[str, int] = {}
    for index, item in section_items(raw, "issuers"):
        name = item.get("issuer")
        if isinstance(name, str):
            if name in seen_issuers:
                issues.append(
                    Issue(
                        path=("issuers", index, "issuer"),
                        reason=f"issuer {name!r} is already trusted"
                        f" (first defined at $.issuers[{seen_issuers[name]}])",
                    )
                )
            else:
                seen_issuers[name] = index

    products: dict[tuple[str, int], int] = {}
    for index, item in section_items(raw, "products"):
        key = (item.get("id"), item.get("version"))
        if isinstance(key[0], str) and isinstance(key[1], int):
            if key in products:
                issues.append(
                    Issue(
                        path=("products", index),
                        reason=f"duplicate product {key[0]!r} version {key[1]}"
                        f" (first defined at $.products[{products[key]}])",
                    )
                )
            else:
                products[(key[0], key[1])] = index

    for index, item in section_items(raw, "upstreams"):
        issues.extend(_upstream_issues(("upstreams", index), item))
    for index, item in section_items(raw, "routes"):
        issues.extend(_route_issues(("routes", index), item, upstream_ids, products))
    issues.extend(permission_issues(raw))
    issues.extend(adapter_issues(raw))
    issues.extend(governance_issues(raw))
    issues.extend(plan_issues(raw))
    return issues


def _unique(raw: Mapping[str, Any], section: str, what: str, issues: list[Issue]) -> set[str]:
    first: dict[str, int] = {}
    for index, item in section_items(raw, section):
        ident = item.get("id")
        if not isinstance(ident, str):
            continue
        if ident in first:
            issues.append(
                Issue(
                    path=(section, index, "id"),
                    reason=f"duplicate {what} {ident!r}"
                    f" (first defined at $.{section}[{first[ident]}])",
                )
            )
        else:
            first[ident] = index
    return set(first)


def _upstream_issues(at: JsonPath, item: dict[str, Any]) -> Iterator[Issue]:
    targets = item.get("targets")
    if isinstance(targets, list):
        for index, target in enumerate(targets):
            url = target.get("url") if isinstance(target, dict) else None
            if isinstance(url, str):
                problem = _url_problem(url)
                if problem:
                    yield Issue(
                        path=(*at, "targets", index, "url"),
                        reason=f"{url!r} is not an http(s)://host[:port][/path] URL ({problem})",
                    )
    check = item.get("health_check")
    if isinstance(check, dict):
        yield from _not_above(
            (*at, "health_check"), check, HealthCheckSpec(), "timeout", "interval"
        )


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "invalid port or address"
    if parts.scheme not in {"http", "https"}:
        return "the scheme must be http or https"
    if not parts.hostname:
        return "no host"
    if parts.username is not None or parts.password is not None:
        return "user info is not allowed"
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        return "a query or fragment is not allowed"
    if port == 0:
        return "invalid port or address"
    return None


def _route_issues(
    at: JsonPath,
    item: dict[str, Any],
    upstream_ids: set[str],
    products: Mapping[tuple[str, int], int],
) -> Iterator[Issue]:
    path, prefix = item.get("path"), item.get("prefix")
    if ("path" in item) == ("prefix" in item):
        state = "both are set" if "path" in item else "neither is set"
        yield Issue(path=at, reason=f"set exactly one of 'path' and 'prefix' ({state})")
    if isinstance(path, str):
        for problem in template_problems(path):
            yield Issue(path=(*at, "path"), reason=problem)
        claimed = _reserved_claim(path)
        if claimed:
            yield Issue(path=(*at, "path"), reason=claimed)
    if isinstance(prefix, str):
        for problem in _prefix_problems(prefix):
            yield Issue(path=(*at, "prefix"), reason=problem)
        claimed = _reserved_claim(prefix)
        if claimed:
            yield Issue(path=(*at, "prefix"), reason=claimed)

    upstream = item.get("upstream")
    if isinstance(upstream, str) and upstream not in upstream_ids:
        yield Issue(path=(*at, "upstream"), reason=f"{upstream!r} is not a defined upstream")
    product, version = item.get("product"), item.get("version")
    if isinstance(product, str) and isinstance(version, int) and (product, version) not in products:
        yield Issue(
            path=(*at, "product"),
            reason=f"product {product!r} version {version} is not declared in products",
        )

    methods = item.get("methods")
    if isinstance(methods, list):
        for index, method in enumerate(methods):
            if isinstance(method, str) and method.upper() not in STANDARD_METHODS:
                yield Issue(
                    path=(*at, "methods", index),
                    reason=f"{method!r} is not a standard HTTP method"
                    f" (use one of {', '.join(sorted(STANDARD_METHODS))})",
                )
    headers = item.get("headers")
    if isinstance(headers, dict):
        seen: set[str] = set()
        for name in headers:
            if name.lower() in seen:
                yield Issue(
                    path=(*at, "headers", name),
                    reason=f"header {name.lower()!r} is listed twice (names ignore case)",
                )
            seen.add(name.lower())

    auth = item.get("auth")
    if isinstance(auth, dict):
        yield from _auth_issues((*at, "auth"), auth)

    timeouts = item.get("timeouts")
    if isinstance(timeouts, dict):
        yield from _not_above((*at, "timeouts"), timeouts, TimeoutSpec(), "connect", "total")
    retries = item.get("retries")
    if isinstance(retries, dict):
        yield from _not_above(
            (*at, "retries"), retries, RetrySpec(), "backoff_initial", "backoff_max"
        )


def _auth_issues(at: JsonPath, auth: Mapping[str, Any]) -> Iterator[Issue]:
    """Requirements that no caller the route accepts could ever meet."""
    methods = auth.get("methods")
    if not isinstance(methods, list) or not methods:
        return
    accepted = {method for method in methods if isinstance(method, str)}
    scopes = auth.get("scopes")
    if accepted == {"session"} and isinstance(scopes, list) and scopes:
        yield Issue(
            path=(*at, "scopes"),
            reason="a session carries no OAuth scopes, so a route accepting only 'session'"
            " can never be called; drop the scopes or accept 'jwt' as well",
        )
    if isinstance(auth.get("acr"), str) and accepted == {"api_key"}:
        yield Issue(
            path=(*at, "acr"),
            reason="an API key has no person behind it, so a route accepting only 'api_key'"
            " can never meet an acr minimum; accept 'jwt' or 'session' as well",
        )


def template_problems(template: str) -> list[str]:
    """What is wrong with a path template such as ``/api/visas/v1/applications/{id}``."""
    if not template.startswith("/"):
        return [f"{template!r} must start with '/'"]
    forbidden = _FORBIDDEN_IN_PATH.search(template)
    if forbidden:
        return [f"{template!r} contains {forbidden.group()!r}, which a path cannot hold"]
    problems: list[str] = []
    segments = template[1:].split("/")
    names: set[str] = set()
    for index, segment in enumerate(segments):
        if segment == "":
            # A trailing slash is allowed (the router ignores it); an empty middle segment is not.
            if index != len(segments) - 1:
                problems.append(f"{template!r} has an empty segment ('//')")
            continue
        if segment in {".", ".."}:
            problems.append(f"{template!r} has a {segment!r} segment, which a path cannot hold")
            continue
        if segment.startswith("{") and segment.endswith("}"):
            name = segment[1:-1]
            if not IDENTIFIER.fullmatch(name):
                problems.append(
                    f"parameter {segment!r} must be named like {{name}}"
                    " (a letter or '_', then letters, digits or '_')"
                )
            elif name in names:
                problems.append(f"parameter {name!r} appears more than once")
            names.add(name)
        elif "{" in segment or "}" in segment:
            problems.append(f"segment {segment!r} must be plain text or a whole {{name}} parameter")
    return problems


def _prefix_problems(prefix: str) -> list[str]:
    if not prefix.startswith("/"):
        return [f"{prefix!r} must start with '/'"]
    forbidden = _FORBIDDEN_IN_PATH.search(prefix)
    if forbidden:
        return [f"{prefix!r} contains {forbidden.group()!r}, which a path cannot hold"]
    if "{" in prefix or "}" in prefix:
        return [f"{prefix!r} is a prefix and cannot hold {{name}} parameters (use 'path')"]
    segments = prefix[1:].split("/")
    if "" in segments[:-1]:
        return [f"{prefix!r} has an empty segment ('//')"]
    dots = [segment for segment in segments if segment in {".", ".."}]
    if dots:
        return [f"{prefix!r} has a {dots[0]!r} segment, which a path cannot hold"]
    return []


def _reserved_claim(path: str) -> str | None:
    segments = path.split("/")
    for reserved in RESERVED_PATHS:
        wanted = reserved.split("/")
        if segments[: len(wanted)] == wanted:
            return f"{path!r} claims the reserved hub path {reserved!r}"
    return None


def shadow_issues(routes: Sequence[RouteSpec]) -> list[Issue]:
    """Routes that another route always wins over (as judged by the route table)."""
    try:
        pairs = find_shadowed(routes)
    except ConfigError as exc:
        # The checks above should have refused whatever the route table cannot parse.
        return [Issue(path=("routes",), reason=reason) for reason in exc.issues]
    return [
        Issue(
            path=("routes", shadowed.order),
            reason=f"route {shadowed.id!r} is shadowed by route {winner.id!r}"
            f" ($.routes[{winner.order}]) and can never match",
        )
        for shadowed, winner in pairs
    ]
