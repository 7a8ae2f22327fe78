"""Why a request is allowed or refused: the decision with a trace of every rule, for admins.

This is the slow path of :meth:`hub.policy.compile.RoutePolicy.decide`, run over the same
compiled rules, so the explanation can never disagree with the gateway. It is for the admin
API only: callers of a route never see it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.policy.compile import Decision, RoutePolicy
from hub.policy.context import RequestContext

__all__ = ["Explanation", "RuleTrace", "explain"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleTrace:
    """One rule as tried for the request: matched, or the first check that failed."""

    permission: str
    rule: str
    effect: str
    matched: bool
    failed: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """The decision for a request on a route, and the trace that led to it."""

    route: str
    enforced: bool
    decision: Decision | None
    trace: tuple[RuleTrace, ...]


def explain(route: str, policy: RoutePolicy | None, context: RequestContext) -> Explanation:
    """Decide as the gateway would, and record each rule's outcome."""
    if policy is None:
        return Explanation(route=route, enforced=False, decision=None, trace=())
    if context.operations is None:
        context.operations = policy.operations
    trace: list[RuleTrace] = []
    for permission in policy.permissions:
        for rule in (*permission.deny, *permission.allow):
            failed = rule.first_failure(context)
            trace.append(
                RuleTrace(
                    permission=permission.permission,
                    rule=rule.id,
                    effect="allow" if rule.allow else "deny",
                    matched=failed is None,
                    failed=failed,
                )
            )
    return Explanation(
        route=route, enforced=True, decision=policy.decide(context), trace=tuple(trace)
    )
