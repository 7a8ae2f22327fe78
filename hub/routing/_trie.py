"""The segment trie behind :class:`hub.routing.table.RouteTable`.

Each route becomes one :class:`Entry` per host pattern (one in all when it has none), since
its precedence depends on which pattern matched. Every entry gets a global ``rank``: its
position once all entries are sorted by precedence, so comparing two candidates is comparing
two ints. A node keeps its entries rank-sorted, and the walk stops scanning a list at the first
entry that survives the host/method/header filters or cannot beat the best found so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from hub.config.model import RouteSpec
from hub.routing._pattern import ANY_HOST_RANK, HostPattern, ParsedRoute

__all__ = ["EMPTY_PARAMS", "Entry", "Node", "best_entry", "build", "has_headers", "path_entries"]

EMPTY_PARAMS: Final[Mapping[str, str]] = MappingProxyType({})

_ANY_HOST: Final = 0
_EXACT_HOST: Final = 1
_WILDCARD_HOST: Final = 2
_NO_RANK: Final = 1 << 62


class Entry:
    """One (route, host pattern) pair as the hot path reads it."""

    __slots__ = (
        "depth",
        "headers",
        "host",
        "host_kind",
        "index",
        "is_prefix",
        "methods",
        "params",
        "rank",
        "route",
        "static_matched",
    )

    def __init__(self, parsed: ParsedRoute, host: HostPattern | None) -> None:
        self.route: RouteSpec = parsed.route
        self.index = parsed.index
        self.rank = 0
        self.methods = parsed.methods
        self.headers: tuple[tuple[bytes, bytes], ...] = tuple(sorted(parsed.headers))
        if host is None:
            self.host_kind, self.host = _ANY_HOST, ""
        else:
            self.host_kind = _EXACT_HOST if host.exact else _WILDCARD_HOST
            self.host = host.value
        # Positions index ``path.split("/")``, whose item 0 is the "" before the leading slash.
        self.params = tuple((position + 1, name) for position, name in parsed.params)
        self.is_prefix = parsed.is_prefix
        self.depth = len(parsed.tokens)
        # What the route matched when that cannot vary: a prefix without parameters, or a
        # template without them for a path written without its optional trailing slash.
        self.static_matched: str | None = None
        if not parsed.params:
            joined = "/" + "/".join(t for t in parsed.tokens if t is not None)
            self.static_matched = "" if self.is_prefix and not parsed.tokens else joined

    def accepts_host(self, host: str) -> bool:
        kind = self.host_kind
        if kind == _ANY_HOST:
            return True
        if kind == _EXACT_HOST:
            return host == self.host
        return len(host) > len(self.host) and host.endswith(self.host)


def has_headers(
    headers: Sequence[tuple[bytes, bytes]], conditions: tuple[tuple[bytes, bytes], ...]
) -> bool:
    """True when every (name, value) condition is met by at least one request header."""
    for condition in conditions:
        for name, value in headers:
            if name == condition[0] and value == condition[1]:
                break
        else:
            return False
    return True


@dataclass(slots=True, eq=False)
class Node:
    """One path position: static children, one parameter child, entries ending here."""

    static: dict[str, Node] = field(default_factory=dict)
    param: Node | None = None
    exact: tuple[Entry, ...] = ()  # templates ending here
    prefix: tuple[Entry, ...] = ()  # prefixes ending here


def build(parsed: Sequence[ParsedRoute]) -> tuple[Node, list[Entry]]:
    """The trie for ``parsed`` and its entries in precedence order (best first)."""
    keyed: list[tuple[tuple[Any, ...], int, Entry, tuple[str | None, ...]]] = []
    for route in parsed:
        for host in route.hosts or (None,):
            host_rank = host.rank if host is not None else ANY_HOST_RANK
            keyed.append((route.key(host_rank), -route.index, Entry(route, host), route.tokens))
    keyed.sort(key=lambda item: (item[0], item[1]), reverse=True)

    root = Node()
    exact: dict[int, list[Entry]] = {}
    prefix: dict[int, list[Entry]] = {}
    nodes: dict[int, Node] = {}
    ordered: list[Entry] = []
    for rank, (_, _, entry, tokens) in enumerate(keyed):
        entry.rank = rank
        ordered.append(entry)
        node = root
        for token in tokens:
            if token is None:
                if node.param is None:
                    node.param = Node()
                node = node.param
            else:
                node = node.static.setdefault(token, Node())
        nodes[id(node)] = node
        (prefix if entry.is_prefix else exact).setdefault(id(node), []).append(entry)
    for key, node in nodes.items():
        node.exact = tuple(exact.get(key, ()))
        node.prefix = tuple(prefix.get(key, ()))
    return root, ordered


# Positional arguments on purpose: this recursion is the per-request hot path.
def best_entry(  # noqa: PLR0917
    node: Node,
    segments: list[str],
    i: int,
    count: int,
    method: str,
    host: str,
    headers: Sequence[tuple[bytes, bytes]],
    best: Entry | None,
) -> Entry | None:
    """The best entry at or below ``node`` matching ``segments[i:count]``, or ``best``."""
    while True:
        if node.prefix:
            best = _scan(node.prefix, method, host, headers, best)
        if i == count:
            if node.exact:
                best = _scan(node.exact, method, host, headers, best)
            return best
        segment = segments[i]
        child = node.static.get(segment)
        param = node.param
        i += 1
        if param is not None and segment:
            if child is not None:
                best = best_entry(child, segments, i, count, method, host, headers, best)
            node = param
        elif child is not None:
            node = child
        else:
            return best


def _scan(
    candidates: tuple[Entry, ...],
    method: str,
    host: str,
    headers: Sequence[tuple[bytes, bytes]],
    best: Entry | None,
) -> Entry | None:
    """The first of the rank-sorted ``candidates`` that accepts the request and beats ``best``."""
    bound = best.rank if best is not None else _NO_RANK
    for entry in candidates:
        if entry.rank >= bound:
            return best
        methods = entry.methods
        if methods is not None and method not in methods:
            continue
        kind = entry.host_kind
        if kind:
            if kind == _EXACT_HOST:
                if host != entry.host:
                    continue
            elif len(host) <= len(entry.host) or not host.endswith(entry.host):
                continue
        if entry.headers and not has_headers(headers, entry.headers):
            continue
        return entry
    return best


def path_entries(node: Node, segments: list[str], i: int, count: int, out: list[Entry]) -> None:
    """Append every entry whose path pattern matches ``segments[i:count]`` below ``node``."""
    out.extend(node.prefix)
    if i == count:
        out.extend(node.exact)
        return
    child = node.static.get(segments[i])
    if child is not None:
        path_entries(child, segments, i + 1, count, out)
    if node.param is not None and segments[i]:
        path_entries(node.param, segments, i + 1, count, out)
