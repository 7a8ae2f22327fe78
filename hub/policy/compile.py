"""Permissions compiled for the route table: per route, the rules that can apply to it.

Semantics, in one place:

- **Coverage.** A permission covers the routes it names in ``routes`` and every route of the
  products it names in ``products``. A route that no permission covers is served as before
  (its ``auth`` block alone decides); a covered route is **default deny**: the request needs an
  allow from every permission covering it.
- **Within a permission: deny overrides.** Any matching deny rule refuses the request; else the
  first matching allow rule (in document order) allows it; else the permission's default deny
  refuses it. A rule matches when its subjects, resources (route ids, methods, contract
  operations; GET covers HEAD) and every condition match.
- **Operations.** Each route knows the operations of its product contract it serves
  (:mod:`hub.policy.operations`); a rule naming ``operations`` applies only to routes serving
  one of them, and there only to requests that are one of them.
- **Obligations** of *every* matching allow rule, of every covering permission, apply to the
  response (the stricter union), not only those of the rule that decided.
- The decision names the permission that refused (what a 403 says is missing) or the rule that
  allowed; nothing else of the policy reaches the caller.

Everything is resolved at compile time: the rules are filtered per route, subjects become set
tests, conditions closures (:mod:`hub.policy.conditions`), and each possible outcome a prebuilt
:class:`Decision`, so a request allocates only its :class:`~hub.policy.context.RequestContext`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from hub.config.model import ProductSpec, RouteSpec
from hub.policy.conditions import Check, Predicate, compile_condition
from hub.policy.context import RequestContext
from hub.policy.model import PermissionSpec, RuleSpec, SubjectSpec
from hub.policy.obligations import NONE, Obligations, compile_obligations
from hub.policy.operations import NO_OPERATIONS, OperationIndex, serves, tokens

__all__ = [
    "CompiledRule",
    "Decision",
    "PermissionCheck",
    "RoutePolicy",
    "compile_operations",
    "compile_policies",
]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one request: allowed or not, by which permission and rule, and why."""

    allowed: bool
    permission: str
    rule: str | None
    reason: str
    obligations: Obligations = NONE


def _subject_checks(spec: SubjectSpec) -> list[Check]:
    checks: list[Check] = []
    if spec.kinds:
        kinds = frozenset(spec.kinds)
        checks.append(
            Check(f"principal.kind in {_list(spec.kinds)}", lambda c: c.principal.kind in kinds)
        )
    if spec.clients:
        clients = frozenset(spec.clients)
        checks.append(
            Check(
                f"principal.client_id in {_list(spec.clients)}",
                lambda c: c.principal.client_id in clients,
            )
        )
    if spec.subjects:
        subjects = frozenset(spec.subjects)
        checks.append(
            Check(
                f"principal.subject in {_list(spec.subjects)}",
                lambda c: c.principal.subject in subjects,
            )
        )
    if spec.scopes:
        scopes = frozenset(spec.scopes)
        checks.append(
            Check(
                f"principal.scopes has all of {_list(spec.scopes)}",
                lambda c: scopes <= c.principal.scopes,
            )
        )
    if spec.roles:
        roles = frozenset(spec.roles)
        checks.append(
            Check(
                f"principal.roles has one of {_list(spec.roles)}",
                lambda c: not roles.isdisjoint(c.roles),
            )
        )
    return checks


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]"


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to run: its checks in order (cheap ones first) and its prebuilt decision."""

    id: str
    allow: bool
    checks: tuple[Check, ...]
    tests: tuple[Predicate, ...]  # the checks' predicates, for the hot loop
    decision: Decision

    def matches(self, context: RequestContext) -> bool:
        for test in self.tests:  # noqa: SIM110 - a plain loop: no generator on the hot path
            if not test(context):
                return False
        return True

    def first_failure(self, context: RequestContext) -> str | None:
        """The first check that does not hold, as text; ``None`` when the rule matches."""
        for check in self.checks:
            if not check.test(context):
                return check.text
        return None


def _compile_rule(permission: str, rule: RuleSpec) -> CompiledRule:
    checks = _subject_checks(rule.subjects)
    if rule.resources.methods:
        methods = frozenset(rule.resources.methods) | (
            {"HEAD"} if "GET" in rule.resources.methods else set()
        )
        checks.append(
            Check(f"request.method in {_list(sorted(methods))}", lambda c: c.method in methods)
        )
    if rule.resources.operations:
        operations = frozenset(rule.resources.operations)
        checks.append(
            Check(
                f"request.operation in {_list(rule.resources.operations)}",
                lambda c: c.operation in operations,
            )
        )
    checks.extend(compile_condition(condition) for condition in rule.conditions)
    allow = rule.effect == "allow"
    decision = Decision(
        allowed=allow,
        permission=permission,
        rule=rule.id,
        reason=f"{rule.effect} rule {rule.id!r} of permission {permission!r} matched",
        obligations=compile_obligations(rule.obligations) if allow else NONE,
    )
    return CompiledRule(
        id=rule.id,
        allow=allow,
        checks=tuple(checks),
        tests=tuple(check.test for check in checks),
        decision=decision,
    )


@dataclass(frozen=True, slots=True)
class PermissionCheck:
    """One permission as it applies to one route: its deny rules, allow rules, default."""

    permission: str
    deny: tuple[CompiledRule, ...]
    allow: tuple[CompiledRule, ...]
    default: Decision

    def decide(self, context: RequestContext) -> Decision:
        for rule in self.deny:
            if rule.matches(context):
                return rule.decision
        decided: Decision | None = None
        for rule in self.allow:
            if rule.matches(context):
                if decided is None:
                    decided = rule.decision
                elif rule.decision.obligations:
                    decided = _with_obligations(decided, rule.decision.obligations)
        return decided if decided is not None else self.default


def _with_obligations(decision: Decision, more: Obligations) -> Decision:
    return Decision(
        allowed=decision.allowed,
        permission=decision.permission,
        rule=decision.rule,
        reason=decision.reason,
        obligations=decision.obligations.merged(more),
    )


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """Every permission covering one route; a request needs an allow from each."""

    route: str
    permissions: tuple[PermissionCheck, ...]
    #: The contract operations the route serves, for ``request.operation``.
    operations: OperationIndex = NO_OPERATIONS

    def decide(self, context: RequestContext) -> Decision:
        if context.operations is None:  # a caller that did not pass the route's index
            context.operations = self.operations
        decided: Decision | None = None
        for permission in self.permissions:
            decision = permission.decide(context)
            if not decision.allowed:
                return decision
            if decided is None:
                decided = decision
            elif decision.obligations:
                decided = _with_obligations(decided, decision.obligations)
        assert decided is not None  # a RoutePolicy always holds at least one permission
        return decided


def covered_routes(permission: PermissionSpec, routes: Sequence[RouteSpec]) -> list[RouteSpec]:
    """The routes a permission covers, in route table order."""
    named, products = set(permission.routes), set(permission.products)
    return [r for r in routes if r.id in named or (r.product is not None and r.product in products)]


def compile_operations(
    routes: Sequence[RouteSpec], products: Sequence[ProductSpec]
) -> Mapping[str, OperationIndex]:
    """Route id -> the operations of its product version's contract that it serves."""
    by_version = {(p.id, p.version): p.operations for p in products}
    indexes: dict[str, OperationIndex] = {}
    for route in routes:
        operations = by_version.get((route.product or "", route.version or 0), ())
        template = route.path if route.path is not None else route.prefix or "/"
        shape = tokens(template)
        mine = [
            op
            for op in operations
            if serves(shape, is_prefix=route.path is None, methods=route.methods, operation=op)
        ]
        # A path route serves only operations of its own template: the method decides.
        indexes[route.id] = (
            OperationIndex(mine, same_template=route.path is not None) if mine else NO_OPERATIONS
        )
    return MappingProxyType(indexes)


def compile_policies(
    permissions: Sequence[PermissionSpec],
    routes: Sequence[RouteSpec],
    operations: Mapping[str, OperationIndex] | None = None,
) -> Mapping[str, RoutePolicy]:
    """Route id -> its compiled policy, for covered routes only."""
    operations = operations or {}
    per_route: dict[str, list[PermissionCheck]] = {}
    for permission in permissions:
        compiled = [(rule, _compile_rule(permission.id, rule)) for rule in permission.rules]
        default = Decision(
            allowed=False,
            permission=permission.id,
            rule=None,
            reason=f"no rule of permission {permission.id!r} allows it (default deny)",
        )
        for route in covered_routes(permission, routes):
            served = operations.get(route.id, NO_OPERATIONS).ids
            mine = [
                c
                for rule, c in compiled
                if (not rule.resources.routes or route.id in rule.resources.routes)
                and (
                    not rule.resources.operations
                    or not served.isdisjoint(rule.resources.operations)
                )
            ]
            per_route.setdefault(route.id, []).append(
                PermissionCheck(
                    permission=permission.id,
                    deny=tuple(c for c in mine if not c.allow),
                    allow=tuple(c for c in mine if c.allow),
                    default=default,
                )
            )
    return MappingProxyType(
        {
            route: RoutePolicy(
                route=route,
                permissions=tuple(checks),
                operations=operations.get(route, NO_OPERATIONS),
            )
            for route, checks in per_route.items()
        }
    )
