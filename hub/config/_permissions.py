"""Checks of the ``permissions`` section that its schema cannot say.

Dangling references (routes, products), duplicate ids, conditions naming unknown attributes or
operators, bad obligation paths, and rules that can never match: a rule naming a route its
permission does not cover, a ``path.<name>`` no route of the rule has, methods none of its
routes accepts. Works on plain JSON and guards every access, like :mod:`hub.config.validate`.

Contract operations named by rules (``resources.operations``, ``request.operation`` values) are
checked by :func:`operation_resource_issues`, once the loader has read the contracts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from hub.config._issues import Issue, JsonPath, section_items
from hub.policy.conditions import OPERATORS, ConditionError, compile_condition
from hub.policy.model import ConditionSpec
from hub.policy.obligations import parse_field_path
from hub.policy.operations import Operation, serves, tokens

__all__ = ["operation_resource_issues", "permission_issues"]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KNOWN_OPS = frozenset().union(*OPERATORS.values())


class _Route:
    __slots__ = ("methods", "params", "product", "shape", "version")

    def __init__(self, item: Mapping[str, Any]) -> None:
        path = item.get("path")
        prefix = item.get("prefix")
        self.params = frozenset(_PARAM.findall(path)) if isinstance(path, str) else frozenset()
        # (tokens, is_prefix) of the route's template, for the operations it serves
        self.shape = (
            (tokens(path), False)
            if isinstance(path, str)
            else (tokens(prefix), True)
            if isinstance(prefix, str)
            else None
        )
        version = item.get("version")
        self.version = version if isinstance(version, int) else None
        methods = item.get("methods")
        upper = (
            {m.upper() for m in methods if isinstance(m, str)}
            if isinstance(methods, list)
            else set()
        )
        if "GET" in upper:
            upper.add("HEAD")
        self.methods = frozenset(upper)  # empty: any method
        product = item.get("product")
        self.product = product if isinstance(product, str) else None


def permission_issues(raw: Mapping[str, Any]) -> list[Issue]:
    """Every finding in ``raw["permissions"]``, against the document's routes and products."""
    routes: dict[str, _Route] = {}
    for _, item in section_items(raw, "routes"):
        if isinstance(item.get("id"), str):
            routes.setdefault(item["id"], _Route(item))
    products = {
        item["id"] for _, item in section_items(raw, "products") if isinstance(item.get("id"), str)
    }
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for index, item in section_items(raw, "permissions"):
        at: JsonPath = ("permissions", index)
        ident = item.get("id")
        if isinstance(ident, str):
            if ident in seen:
                issues.append(
                    Issue(
                        path=(*at, "id"),
                        reason=f"duplicate permission id {ident!r}"
                        f" (first defined at $.permissions[{seen[ident]}])",
                    )
                )
            seen.setdefault(ident, index)
        issues.extend(_permission_issues(at, item, routes, products))
    return issues


def _strings(value: Any) -> list[tuple[int, str]]:
    if not isinstance(value, list):
        return []
    return [(i, v) for i, v in enumerate(value) if isinstance(v, str)]


def _permission_issues(
    at: JsonPath, item: Mapping[str, Any], routes: Mapping[str, _Route], products: set[str]
) -> Iterator[Issue]:
    covered: set[str] = set()
    for index, name in _strings(item.get("routes")):
        if name in routes:
            covered.add(name)
        else:
            yield Issue(path=(*at, "routes", index), reason=f"{name!r} is not a defined route")
    for index, name in _strings(item.get("products")):
        if name not in products:
            yield Issue(path=(*at, "products", index), reason=f"{name!r} is not a declared product")
            continue
        mine = {rid for rid, route in routes.items() if route.product == name}
        if not mine:
            yield Issue(path=(*at, "products", index), reason=f"product {name!r} has no routes")
        covered |= mine
    if "routes" not in item and "products" not in item:
        yield Issue(path=at, reason="the permission covers no route: give 'routes' or 'products'")

    rule_ids: dict[str, int] = {}
    for index, rule in section_items(item, "rules"):
        rule_at: JsonPath = (*at, "rules", index)
        rule_id = rule.get("id")
        if isinstance(rule_id, str):
            if rule_id in rule_ids:
                yield Issue(
                    path=(*rule_at, "id"),
                    reason=f"duplicate rule id {rule_id!r} in this permission"
                    f" (first defined at rules[{rule_ids[rule_id]}])",
                )
            rule_ids.setdefault(rule_id, index)
        yield from _rule_issues(rule_at, rule, covered, routes)


def _rule_issues(
    at: JsonPath, rule: Mapping[str, Any], covered: set[str], routes: Mapping[str, _Route]
) -> Iterator[Issue]:
    applies = set(covered)
    resources = rule.get("resources")
    if isinstance(resources, dict):
        named = _strings(resources.get("routes"))
        if named:
            applies = set()
        for index, name in named:
            where: JsonPath = (*at, "resources", "routes", index)
            if name not in routes:
                yield Issue(path=where, reason=f"{name!r} is not a defined route")
            elif name not in covered:
                yield Issue(
                    path=where,
                    reason=f"route {name!r} is not covered by this permission, so the rule"
                    " can never match",
                )
            else:
                applies.add(name)
        methods = {m for _, m in _strings(resources.get("methods"))}
        if methods and applies:
            accepted = [routes[r].methods for r in applies]
            wanted = methods | ({"HEAD"} if "GET" in methods else set())
            if all(acc and not (acc & wanted) for acc in accepted):
                yield Issue(
                    path=(*at, "resources", "methods"),
                    reason="none of the rule's routes accepts these methods, so the rule can"
                    " never match",
                )
    params: set[str] = set()
    for name in applies:
        params |= routes[name].params
    for index, condition in section_items(rule, "conditions"):
        yield from _condition_issues((*at, "conditions", index), condition, params, bool(applies))
    obligations = rule.get("obligations")
    if isinstance(obligations, dict):
        if rule.get("effect") == "deny" and (obligations.get("mask") or obligations.get("drop")):
            yield Issue(
                path=(*at, "obligations"),
                reason="obligations apply to allowed answers; a deny rule cannot carry them",
            )
        for index, mask in section_items(obligations, "mask"):
            yield from _field_issue((*at, "obligations", "mask", index, "field"), mask.get("field"))
        for index, path in _strings(obligations.get("drop")):
            yield from _field_issue((*at, "obligations", "drop", index), path)


def _condition_issues(
    at: JsonPath, condition: Mapping[str, Any], params: set[str], known_routes: bool
) -> Iterator[Issue]:
    attr, op = condition.get("attr"), condition.get("op")
    if not isinstance(attr, str) or op not in _KNOWN_OPS:
        return  # the schema has said what is wrong
    given = condition.get("value")
    value: str | tuple[str, ...] | None = None
    if isinstance(given, list):
        value = tuple(str(v) for v in given if not isinstance(v, list | dict))
    elif given is not None and not isinstance(given, dict):
        value = str(given)
    ref, tz = condition.get("ref"), condition.get("tz", "UTC")
    spec = ConditionSpec(
        attr=attr,
        op=op,
        value=value,
        ref=ref if isinstance(ref, str) else None,
        tz=tz if isinstance(tz, str) else "UTC",
    )
    try:
        compile_condition(spec)
    except ConditionError as exc:
        yield Issue(path=at, reason=str(exc))
        return
    if not known_routes:
        return
    for key, name in (("attr", attr), ("ref", spec.ref)):
        if name is not None and name.startswith("path.") and name[5:] not in params:
            yield Issue(
                path=(*at, key),
                reason=f"no route this rule applies to has a path parameter"
                f" {name[5:]!r}, so {name} is never set",
            )


def _field_issue(at: JsonPath, path: Any) -> Iterator[Issue]:
    if isinstance(path, str):
        try:
            parse_field_path(path)
        except ValueError as exc:
            yield Issue(path=at, reason=str(exc))


def operation_resource_issues(
    raw: Mapping[str, Any], contract_operations: Mapping[int, Sequence[Operation]]
) -> list[Issue]:
    """Operations named by rules that no contract has, or that none of the rule's routes serves.

    ``contract_operations`` holds the operations of each product (by position in
    ``products``) whose contract could be read; others were reported with their contract.
    """
    versions: dict[tuple[str, int], int] = {}
    for index, item in section_items(raw, "products"):
        ident, version = item.get("id"), item.get("version")
        if isinstance(ident, str) and isinstance(version, int):
            versions.setdefault((ident, version), index)
    routes: dict[str, _Route] = {}
    for _, item in section_items(raw, "routes"):
        if isinstance(item.get("id"), str):
            routes.setdefault(item["id"], _Route(item))
    issues: list[Issue] = []
    for index, permission in section_items(raw, "permissions"):
        covered = _covered(permission, routes)
        for rule_index, rule in section_items(permission, "rules"):
            at: JsonPath = ("permissions", index, "rules", rule_index)
            applies = covered
            resources = rule.get("resources")
            named = _strings(resources.get("routes")) if isinstance(resources, dict) else []
            if named:
                applies = [r for r in covered if r in {name for _, name in named}]
            issues.extend(
                _rule_operation_issues(at, rule, applies, routes, versions, contract_operations)
            )
    return issues


def _covered(permission: Mapping[str, Any], routes: Mapping[str, _Route]) -> list[str]:
    named = {name for _, name in _strings(permission.get("routes"))}
    products = {name for _, name in _strings(permission.get("products"))}
    return [rid for rid, r in routes.items() if rid in named or r.product in products]


def _rule_operation_issues(  # noqa: PLR0917 - one private helper's plain arguments
    at: JsonPath,
    rule: Mapping[str, Any],
    applies: Sequence[str],
    routes: Mapping[str, _Route],
    versions: Mapping[tuple[str, int], int],
    contract_operations: Mapping[int, Sequence[Operation]],
) -> Iterator[Issue]:
    resources = rule.get("resources")
    named = _strings(resources.get("operations")) if isinstance(resources, dict) else []
    conditions = [
        (i, c)
        for i, c in section_items(rule, "conditions")
        if c.get("attr") == "request.operation" and c.get("op") in ("eq", "ne", "in", "not_in")
    ]
    if not named and not conditions:
        return
    known: dict[str, Operation] = {}  # operations of the rule's routes' contracts
    served: set[str] = set()
    unread = False  # a contract that could not be read: its operations are unknown here
    for rid in applies:
        route = routes[rid]
        position = versions.get((route.product or "", route.version or 0))
        if position is None:
            continue
        if position not in contract_operations:
            unread = unread or route.product is not None
            continue
        for operation in contract_operations[position]:
            known.setdefault(operation.id, operation)
            if route.shape is not None and serves(
                route.shape[0],
                is_prefix=route.shape[1],
                methods=sorted(route.methods),
                operation=operation,
            ):
                served.add(operation.id)
    names: list[tuple[tuple[str | int, ...], str]] = [
        (("resources", "operations", i), name) for i, name in named
    ]
    for i, condition in conditions:
        value = condition.get("value")
        values = value if isinstance(value, list) else [value]
        key: tuple[str | int, ...] = ("conditions", i, "value")
        names += [
            ((*key, j) if isinstance(value, list) else key, v)
            for j, v in enumerate(values)
            if isinstance(v, str)
        ]
    for where, name in names:
        if name in served:
            continue
        if name in known:
            yield Issue(
                path=(*at, *where),
                reason=f"operation {name!r} is not served by any route this rule applies to,"
                " so the rule can never match",
            )
        elif not unread:
            yield Issue(
                path=(*at, *where),
                reason=f"{name!r} is not an operation of the contract of any route this rule"
                " applies to",
            )
    methods = (
        {m for _, m in _strings(resources.get("methods"))} if isinstance(resources, dict) else set()
    )
    chosen = [known[name] for _, name in named if name in served]
    if methods and chosen:
        wanted = methods | ({"HEAD"} if "GET" in methods else set())
        if not any(op.method in wanted for op in chosen):
            yield Issue(
                path=(*at, "resources", "methods"),
                reason="none of the rule's operations uses these methods, so the rule can never"
                " match",
            )
