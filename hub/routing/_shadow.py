"""Find routes that can never win: another route matches all they match, and beats them."""

from __future__ import annotations

from collections.abc import Sequence

from hub.config.model import RouteSpec
from hub.routing._pattern import ParsedRoute, parse_routes
from hub.routing._trie import Node, build

__all__ = ["find_shadowed"]


def find_shadowed(routes: Sequence[RouteSpec]) -> list[tuple[RouteSpec, RouteSpec]]:
    """(shadowed, shadowing) pairs, in declaration order of the shadowed route.

    Route B is shadowed by route A when A matches every request B matches (every path, host,
    method and header set) and wins over B on each of them. The shadowing route reported is
    the one with the highest precedence.
    """
    parsed = parse_routes(routes)
    root, _ = build(parsed)
    best_first = sorted(parsed, key=lambda p: (p.key(p.host_rank(None)), -p.index), reverse=True)
    position = {p.index: n for n, p in enumerate(best_first)}
    pairs: list[tuple[RouteSpec, RouteSpec]] = []
    for shadowed in parsed:
        found: set[int] = set()
        _covering(root, shadowed.tokens, 0, shadowed.is_prefix, found)
        found.discard(shadowed.index)
        for index in sorted(found, key=position.__getitem__):
            if _wins_everywhere(parsed[index], shadowed):
                pairs.append((shadowed.route, parsed[index].route))
                break
    return pairs


def _covering(
    node: Node, tokens: tuple[str | None, ...], i: int, is_prefix: bool, out: set[int]
) -> None:
    """Indexes of the routes whose path pattern matches every path ``tokens`` matches."""
    out.update(entry.index for entry in node.prefix)
    if i == len(tokens):
        if not is_prefix:
            out.update(entry.index for entry in node.exact)
        return
    token = tokens[i]
    if token is not None:
        child = node.static.get(token)
        if child is not None:
            _covering(child, tokens, i + 1, is_prefix, out)
    if node.param is not None:
        _covering(node.param, tokens, i + 1, is_prefix, out)


def _wins_everywhere(a: ParsedRoute, b: ParsedRoute) -> bool:
    """Given A's path covers B's: does A match every other part of B's requests and win?"""
    if b.methods is None:
        if a.methods is not None:
            return False
    elif a.methods is not None and not b.methods <= a.methods:
        return False
    if not a.headers <= b.headers:
        return False
    # Hosts fall into finitely many classes by the patterns of A and B; one host per class.
    hosts = {""}
    for pattern in (*a.hosts, *b.hosts):
        if pattern.exact:
            hosts.add(pattern.value)
        else:
            hosts.add("*" + pattern.value)
    for host in hosts:
        if not b.matches_host(host):
            continue
        if not a.matches_host(host):
            return False
        if (a.key(a.host_rank(host)), -a.index) <= (b.key(b.host_rank(host)), -b.index):
            return False
    return True
