"""Which contract operation a request on a route is: resolved per route at compile time.

A product's contract (``contracts/products/*/api.yaml``) lists operations by ``operation_id``,
method and path template. A route *serves* an operation when the route would take every request
of it: the method is one the route accepts, and the operation's template is the route's (for a
``path`` route: the same segments, a route ``{param}`` taking any literal) or lies under it (for
a ``prefix`` route). Each route gets an :class:`OperationIndex` of the operations of its own
product version that it serves; a request's operation is found there by method and segment
count, then by comparing literal segments, never by scanning every operation of the contract.
A literal segment wins over a ``{param}`` at the same place, as in the route table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = ["NO_OPERATIONS", "Operation", "OperationIndex", "serves", "tokens"]

Tokens = tuple[str | None, ...]  # None marks a {param} segment


def tokens(template: str) -> Tokens:
    """The segments of a path template, ``None`` for each ``{param}``; a trailing ``/`` ignored."""
    body = template.strip("/")
    return tuple(
        None if segment.startswith("{") and segment.endswith("}") else segment
        for segment in (body.split("/") if body else ())
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One operation of a product contract."""

    id: str
    method: str
    path: str


def serves(
    route_tokens: Tokens,
    *,
    is_prefix: bool,
    methods: Sequence[str],
    operation: Operation,
) -> bool:
    """Whether a route (its template or prefix, and methods: empty for any) serves ``operation``."""
    if methods:
        accepted = {m.upper() for m in methods}
        if "GET" in accepted:
            accepted.add("HEAD")
        if operation.method.upper() not in accepted:
            return False
    theirs = tokens(operation.path)
    if len(theirs) < len(route_tokens) or (not is_prefix and len(theirs) != len(route_tokens)):
        return False
    # A route {param} takes any segment; a route literal takes only itself (never a {param},
    # which stands for other values too).
    return all(
        mine is None or mine == other
        for mine, other in zip(route_tokens, theirs[: len(route_tokens)], strict=True)
    )


class OperationIndex:
    """The operations one route serves, looked up by a request's method and path."""

    __slots__ = ("_by_method", "_by_shape", "ids")

    def __init__(self, operations: Sequence[Operation], *, same_template: bool = False) -> None:
        """``same_template``: every operation has the route's own template (a ``path`` route),
        so the method alone picks the operation and the path is never split."""
        self._by_method: Mapping[str, str] | None = None
        if same_template:
            self._by_method = MappingProxyType({op.method.upper(): op.id for op in operations})
        by_shape: dict[tuple[str, int], list[tuple[Tokens, str]]] = {}
        for operation in operations:
            shape = tokens(operation.path)
            by_shape.setdefault((operation.method.upper(), len(shape)), []).append(
                (shape, operation.id)
            )
        # Literals before params, position by position: the most specific template first.
        self._by_shape: Mapping[tuple[str, int], tuple[tuple[Tokens, str], ...]] = MappingProxyType(
            {
                key: tuple(sorted(found, key=lambda item: [t is None for t in item[0]]))
                for key, found in by_shape.items()
            }
        )
        #: Every operation id this route serves.
        self.ids = frozenset(operation.id for operation in operations)

    def __bool__(self) -> bool:
        return bool(self.ids)

    def lookup(self, method: str, path: str) -> str | None:
        """The operation id of ``method path`` (a normalised path), ``None`` when none fits."""
        if not self.ids:
            return None
        by_method = self._by_method
        if by_method is not None:
            found = by_method.get(method)
            return found if found is not None or method != "HEAD" else by_method.get("GET")
        body = path.strip("/")
        segments = body.split("/") if body else []
        found = self._find(method, segments)
        if found is None and method == "HEAD":
            found = self._find("GET", segments)
        return found

    def _find(self, method: str, segments: list[str]) -> str | None:
        candidates = self._by_shape.get((method, len(segments)))
        if candidates is None:
            return None
        for shape, operation_id in candidates:
            for expected, segment in zip(shape, segments, strict=True):
                if expected is None:
                    if not segment:
                        break
                elif expected != segment:
                    break
            else:
                return operation_id
        return None


NO_OPERATIONS: Final = OperationIndex(())
