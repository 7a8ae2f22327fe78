"""Route specs parsed once into what matching, precedence and shadowing compare."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from hub.config.model import RouteSpec
from hub.errors import ConfigError

__all__ = [
    "ANY_HOST_RANK",
    "HostPattern",
    "ParsedRoute",
    "parse_route",
    "parse_routes",
]

# Path-key ranks, compared position by position (see hub.routing.table's docstring).
STATIC: Final = 3
PARAM: Final = 2
TEMPLATE_END: Final = 1
PREFIX_END: Final = 0

ANY_HOST_RANK: Final = (0, 0, 0)

_PARAM_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST: Final = re.compile(r"[a-z0-9_\-\[\]:]+(?:\.[a-z0-9_\-\[\]:]+)*")
# normalise_path never yields these, so a template segment holding one could never match.
_UNMATCHABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\\\\]")


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPattern:
    """``api.example.gov`` (exact) or ``*.example.gov`` (one or more labels before the suffix)."""

    exact: bool
    value: str  # the host itself, or the suffix with its leading dot
    rank: tuple[int, int, int]

    def matches(self, host: str) -> bool:
        if self.exact:
            return host == self.value
        return len(host) > len(self.value) and host.endswith(self.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedRoute:
    """A route's matching conditions in comparable form; ``index`` is its sequence position."""

    route: RouteSpec
    index: int
    tokens: tuple[str | None, ...]  # None marks a {param} segment
    params: tuple[tuple[int, str], ...]  # (segment position, name)
    is_prefix: bool
    hosts: tuple[HostPattern, ...]  # empty: any host
    methods: frozenset[str] | None  # None: any method; GET brings HEAD along
    headers: frozenset[tuple[bytes, bytes]]
    path_key: tuple[int, ...]

    def host_rank(self, host: str | None) -> tuple[int, int, int]:
        """Rank of the most specific host pattern matching ``host`` (any pattern when None)."""
        if not self.hosts:
            return ANY_HOST_RANK
        ranks = [p.rank for p in self.hosts if host is None or p.matches(host)]
        if not ranks:
            raise ValueError(f"route {self.route.id!r} does not serve host {host!r}")
        return max(ranks)

    def key(self, host_rank: tuple[int, int, int]) -> tuple[Any, ...]:
        """The precedence key for a request whose host this route matched with ``host_rank``."""
        return (
            self.route.priority,
            *host_rank,
            self.path_key,
            len(self.headers),
            self.methods is not None,
            -self.route.order,
        )

    def matches_host(self, host: str) -> bool:
        return not self.hosts or any(p.matches(host) for p in self.hosts)


def parse_routes(routes: Sequence[RouteSpec]) -> list[ParsedRoute]:
    """Parse every route, or raise one :class:`ConfigError` listing every problem found."""
    issues: list[str] = []
    parsed = [parse_route(route, index, issues) for index, route in enumerate(routes)]
    if issues:
        raise ConfigError(issues)
    return [p for p in parsed if p is not None]


def parse_route(route: RouteSpec, index: int, issues: list[str]) -> ParsedRoute | None:
    """Parse one route, appending to ``issues`` (and returning None) when it is invalid."""
    where = f"route {route.id!r}"
    before = len(issues)
    if (route.path is None) == (route.prefix is None):
        issues.append(f"{where}: set exactly one of 'path' and 'prefix'")
        return None
    is_prefix = route.prefix is not None
    pattern = route.prefix if route.prefix is not None else route.path
    assert pattern is not None
    tokens, params = _parse_path(pattern, where, issues)
    hosts = tuple(_parse_host(host, where, issues) for host in route.hosts)
    methods = _parse_methods(route.methods, where, issues)
    headers = _parse_headers(route.headers, where, issues)
    if len(issues) > before:
        return None
    path_key = tuple(PARAM if t is None else STATIC for t in tokens)
    return ParsedRoute(
        route=route,
        index=index,
        tokens=tokens,
        params=params,
        is_prefix=is_prefix,
        hosts=tuple(dict.fromkeys(hosts)),
        methods=methods,
        headers=headers,
        path_key=(*path_key, PREFIX_END if is_prefix else TEMPLATE_END),
    )


def _parse_path(
    pattern: str, where: str, issues: list[str]
) -> tuple[tuple[str | None, ...], tuple[tuple[int, str], ...]]:
    if not pattern.startswith("/"):
        issues.append(f"{where}: path {pattern!r} must start with '/'")
        return (), ()
    # A trailing slash is not significant: "/a/b/" and "/a/b" are the same pattern.
    body = pattern[1:-1] if pattern.endswith("/") else pattern[1:]
    tokens: list[str | None] = []
    params: list[tuple[int, str]] = []
    for position, segment in enumerate(body.split("/") if body else ()):
        if segment in ("", ".", ".."):
            issues.append(f"{where}: path {pattern!r} has an empty or dot segment")
        elif segment.startswith("{") and segment.endswith("}"):
            name = segment[1:-1]
            if _PARAM_NAME.fullmatch(name) is None:
                issues.append(f"{where}: parameter {segment!r} is not a valid name")
            elif any(name == known for _, known in params):
                issues.append(f"{where}: parameter {segment!r} appears twice")
            params.append((position, name))
            tokens.append(None)
        elif "{" in segment or "}" in segment:
            issues.append(f"{where}: {segment!r}: a parameter must be a whole segment")
        elif _UNMATCHABLE.search(segment) is not None:
            issues.append(f"{where}: segment {segment!r} holds a character no path may hold")
        else:
            tokens.append(segment)
    return tuple(tokens), tuple(params)


def _parse_host(host: str, where: str, issues: list[str]) -> HostPattern:
    pattern = host.strip().lower()
    if pattern.startswith("*."):
        suffix = pattern[2:]
        if _HOST.fullmatch(suffix) is None:
            issues.append(f"{where}: host {host!r} is not a valid wildcard ('*.example.gov')")
        return HostPattern(
            exact=False, value="." + suffix, rank=(1, suffix.count(".") + 1, len(suffix))
        )
    if _HOST.fullmatch(pattern) is None:
        issues.append(f"{where}: host {host!r} is not a valid host name")
    return HostPattern(exact=True, value=pattern, rank=(2, 0, 0))


def _parse_methods(methods: Sequence[str], where: str, issues: list[str]) -> frozenset[str] | None:
    if not methods:
        return None
    names = {m.strip().upper() for m in methods}
    if any(not name.isalpha() or not name.isascii() for name in names):
        issues.append(f"{where}: methods {list(methods)!r} must be HTTP method names")
    if "GET" in names:
        names.add("HEAD")
    return frozenset(names)


def _parse_headers(
    headers: Sequence[tuple[str, str]], where: str, issues: list[str]
) -> frozenset[tuple[bytes, bytes]]:
    conditions: set[tuple[bytes, bytes]] = set()
    for name, value in headers:
        try:
            conditions.add((name.strip().lower().encode("ascii"), value.encode("latin-1")))
        except UnicodeEncodeError:
            issues.append(f"{where}: header condition {name!r}: {value!r} is not Latin-1 text")
        if not name.strip():
            issues.append(f"{where}: a header condition has an empty name")
    return frozenset(conditions)
