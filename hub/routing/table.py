"""The compiled route table: which route serves a request.

Matching:

- ``path`` is a template matched whole; each segment is static text or ``{name}``, which
  matches exactly one non-empty segment. ``prefix`` matches on segment boundaries: ``/api/v1``
  and ``/api/v1/`` both match ``/api/v1`` and ``/api/v1/anything/below``, never ``/api/v10``.
  Paths are the decoded, normalised ones from :func:`hub.routing.normalise.normalise_path`; a
  trailing slash is not significant for matching (``/a/b/`` matches the template ``/a/b``).
- ``hosts``: ``api.example.gov`` exactly, or ``*.example.gov`` for one or more labels before
  the suffix; no hosts means any host (including an absent one).
- ``methods``: none means any; a route that allows GET also answers HEAD.
- ``headers``: every (name, value) condition must be met by some request header, exactly.

Precedence — when several routes match, the winner is the one that comes first by:

1. higher ``priority``;
2. host specificity, for the host pattern that matched: an exact host, then wildcards (the
   longer suffix first), then routes without hosts;
3. path specificity, compared segment by segment: a static segment beats ``{param}``, which
   beats the end of a prefix; where both end, a template beats a prefix. So the longest
   static prefix wins, and a template beats any prefix that ends before it;
4. more header conditions;
5. explicit methods over any method;
6. earlier declaration (lower ``order``, then position in the list).

:func:`precedence_key` encodes this as a tuple (larger wins), so ``max()`` picks the winner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hub.config.model import RouteSpec
from hub.errors import ConfigError
from hub.routing._pattern import parse_route, parse_routes
from hub.routing._shadow import find_shadowed
from hub.routing._trie import (
    EMPTY_PARAMS,
    Entry,
    Node,
    best_entry,
    build,
    has_headers,
    path_entries,
)

__all__ = ["RouteMatch", "RouteTable", "find_shadowed", "precedence_key"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteMatch:
    """The route serving a request, its path parameters and the part of the path it matched."""

    route: RouteSpec
    params: Mapping[str, str]
    matched: str  # the matched prefix (prefix routes) or the whole path (templates)


class RouteTable:
    """An immutable segment trie over a configuration's routes."""

    __slots__ = ("_cached", "_root", "routes")

    routes: tuple[RouteSpec, ...]

    def __init__(self, routes: tuple[RouteSpec, ...], root: Node, entries: list[Entry]) -> None:
        self.routes = routes
        self._root = root
        # Entries whose match never varies share one RouteMatch instead of building one per hit.
        self._cached: dict[int, RouteMatch] = {
            id(e): RouteMatch(route=e.route, params=EMPTY_PARAMS, matched=e.static_matched)
            for e in entries
            if e.static_matched is not None
        }

    @classmethod
    def compile(cls, routes: Sequence[RouteSpec]) -> RouteTable:
        """Compile ``routes``; raise :class:`ConfigError` listing every invalid one."""
        root, entries = build(parse_routes(routes))
        return cls(tuple(routes), root, entries)

    def match(
        self, method: str, host: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> RouteMatch | None:
        """The winning route for a request, or None when no route matches it."""
        if path[:1] != "/":
            return None
        segments = path.split("/")
        # Item 0 is the "" before the leading slash; a trailing slash leaves a "" to ignore.
        count = len(segments) - 1 if segments[-1] == "" else len(segments)
        entry = best_entry(self._root, segments, 1, count, method, host, headers, None)
        if entry is None:
            return None
        static = entry.static_matched
        if static is not None and (entry.is_prefix or len(path) == len(static)):
            return self._cached[id(entry)]
        params: Mapping[str, str] = EMPTY_PARAMS
        if entry.params:
            params = {name: segments[position] for position, name in entry.params}
        if not entry.is_prefix:
            return _new_match(entry.route, params, path)
        return _new_match(entry.route, params, "/".join(segments[: entry.depth + 1]))

    def allowed_methods(
        self, host: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> frozenset[str]:
        """Methods some route accepts for this host, path and headers (for a 405's Allow)."""
        if path[:1] != "/":
            return frozenset()
        segments = path.split("/")
        count = len(segments) - 1 if segments[-1] == "" else len(segments)
        found: list[Entry] = []
        path_entries(self._root, segments, 1, count, found)
        allowed: set[str] = set()
        for entry in found:
            methods = entry.methods
            if methods and entry.accepts_host(host) and has_headers(headers, entry.headers):
                allowed.update(methods)
        return frozenset(allowed)


_object_new = object.__new__
_set_route = vars(RouteMatch)["route"].__set__
_set_params = vars(RouteMatch)["params"].__set__
_set_matched = vars(RouteMatch)["matched"].__set__


def _new_match(route: RouteSpec, params: Mapping[str, str], matched: str) -> RouteMatch:
    # The frozen dataclass __init__ goes through object.__setattr__ per field; storing through
    # the slot descriptors directly halves the cost of building the per-request result.
    match: RouteMatch = _object_new(RouteMatch)
    _set_route(match, route)
    _set_params(match, params)
    _set_matched(match, matched)
    return match


def precedence_key(route: RouteSpec, host: str | None = None) -> tuple[Any, ...]:
    """The route's precedence as a tuple, larger wins (see the module docstring).

    With ``host``, the key for a request to that host (the most specific of the route's host
    patterns that matches it; ValueError when none does); without, its most specific pattern.
    """
    issues: list[str] = []
    parsed = parse_route(route, route.order, issues)
    if parsed is None:
        raise ConfigError(issues)
    return parsed.key(parsed.host_rank(host))
