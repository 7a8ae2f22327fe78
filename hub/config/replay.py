"""Deciding a request without serving it: route, auth requirements, permission and limit.

A :class:`DecisionSnapshot` is the decision-only part of a configuration (route table and
compiled permission policies; the route specs carry their ``auth`` and ``rate_limit``), built
without opening any upstream pool. :func:`decide` answers for one :class:`Replayable` request
what that configuration would do with it, in the order the gateway does it:

1. the route (or 404, or 405 when the path matches but the method does not);
2. the route's auth requirements, on the caller the gateway verified: the credential method
   must be one the route accepts, its scopes must include the route's, its ``acr`` must reach
   the route's minimum. A credential that failed verification fails again, unless the route
   asks for none. A request sampled on a route without ``auth`` carried no verified
   credential, so a route that now asks for one refuses it (``unauthorized``);
3. the permission decision (allow, deny, or ``not_covered``), by the compiled rules;
4. the rate limit that applies (its spec: the limiter's state is not replayed).

Dry-run (:mod:`hub.config.dryrun`) and shadow mode (:mod:`hub.config.shadow`) both decide
each request with the active configuration and the draft, and compare with :func:`changes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple

from hub.auth.principal import ANONYMOUS, Principal
from hub.config.model import ConfigDocument, RateLimitSpec
from hub.identity.acr import satisfies
from hub.policy.compile import RoutePolicy, compile_operations, compile_policies
from hub.policy.context import RequestContext
from hub.routing.table import RouteTable

__all__ = [
    "CHANGE_KINDS",
    "DecisionSnapshot",
    "Outcome",
    "Replayable",
    "changes",
    "credential_of",
    "decide",
    "describe_limit",
    "flip",
]

#: The kinds of difference between two outcomes, in report order.
CHANGE_KINDS: Final = ("route", "auth", "decision", "limit")

Credential = Literal["jwt", "api_key", "session", "none", "failed"]
_PASSED: Final = frozenset({"pass", "none"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionSnapshot:
    """What decides a request in one configuration; ``label`` names it in reports."""

    label: str
    table: RouteTable
    policies: Mapping[str, RoutePolicy] = field(default_factory=lambda: MappingProxyType({}))
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    # Route id -> its limit as :func:`describe_limit` says it, computed once.
    limits: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def compile(cls, document: ConfigDocument, *, label: str) -> DecisionSnapshot:
        """Compile a validated document: no pools, no clients, nothing opened."""
        return cls.of(
            label=label,
            table=RouteTable.compile(document.routes),
            policies=compile_policies(
                document.permissions,
                document.routes,
                compile_operations(document.routes, document.products),
            ),
            raw=document.raw,
        )

    @classmethod
    def of(
        cls,
        *,
        label: str,
        table: RouteTable,
        policies: Mapping[str, RoutePolicy],
        raw: Mapping[str, Any],
    ) -> DecisionSnapshot:
        """The decision-only view of compiled parts (an active snapshot's, say)."""
        limits = {
            route.id: text
            for route in table.routes
            if (text := describe_limit(route.rate_limit)) is not None
        }
        return cls(
            label=label,
            table=table,
            policies=policies,
            raw=raw,
            limits=MappingProxyType(limits),
        )


class Replayable(NamedTuple):
    """A request as the decision sees it; ``principal`` is ``None`` when its credential failed.

    A named tuple: shadow mode builds one per request.
    """

    method: str
    host: str
    path: str
    headers: Sequence[tuple[bytes, bytes]] = ()
    query_string: bytes = b""
    client_ip: str = ""
    now: float | None = None
    principal: Principal | None = ANONYMOUS
    credential: Credential = "none"
    failure: str | None = None  # the problem code when the credential failed
    roles: frozenset[str] = frozenset()


class Outcome(NamedTuple):
    """What one configuration does with one request (a named tuple: two per shadowed request).

    ``route`` is the route id, or ``404`` / ``405``; ``auth`` is ``none`` (the route asks for
    no credential), ``pass``, or the problem code of the refusal; ``decision`` is ``allow``,
    ``deny``, ``not_covered`` (no permission covers the route) or ``skipped`` (not reached).
    """

    route: str
    auth: str = "none"
    decision: str = "skipped"
    permission: str | None = None
    rule: str | None = None
    limit: str | None = None

    @property
    def matched(self) -> bool:
        return self.route not in ("404", "405")

    @property
    def allowed(self) -> bool:
        """Whether the request would reach its upstream (limits aside)."""
        return self.matched and self.auth in _PASSED and self.decision in ("allow", "not_covered")

    def as_dict(self) -> dict[str, Any]:
        return self._asdict()


def credential_of(principal: Principal) -> Credential:
    """Which credential method produced a verified principal."""
    if principal.kind == "anonymous":
        return "none"
    if principal.via_session:
        return "session"
    if principal.kind == "api_key":
        return "api_key"
    return "jwt"


def describe_limit(spec: RateLimitSpec | None) -> str | None:
    """A rate limit as one comparable line, e.g. ``50/1s burst 10 per ip``."""
    if spec is None:
        return None
    return f"{spec.rate}/{spec.period:g}s burst {spec.burst} per {spec.key}"


def _auth(spec: Any, request: Replayable) -> tuple[str, Principal | None]:
    if spec is None:
        return "none", ANONYMOUS
    who = request.principal
    if request.credential == "failed" or who is None:
        return request.failure or "unauthorized", None
    if request.credential == "none" or request.credential not in spec.methods:
        return "unauthorized", None
    if spec.scopes and not who.scopes.issuperset(spec.scopes):
        return "insufficient_scope", None
    if spec.acr is not None and not satisfies(who.acr, spec.acr):
        if who.kind != "person":
            return "user_authentication_required", None
        return "insufficient_user_authentication", None
    return "pass", who


def decide(snapshot: DecisionSnapshot, request: Replayable) -> Outcome:
    """What ``snapshot`` would do with ``request`` (see the module docstring)."""
    table = snapshot.table
    match = table.match(request.method, request.host, request.path, request.headers)
    if match is None:
        allowed = table.allowed_methods(request.host, request.path, request.headers)
        return Outcome(route="405" if allowed else "404")
    route = match.route
    limit = snapshot.limits.get(route.id)
    auth, who = _auth(route.auth, request)
    if who is None:
        return Outcome(route=route.id, auth=auth, limit=limit)
    policy = snapshot.policies.get(route.id)
    if policy is None:
        return Outcome(route=route.id, auth=auth, decision="not_covered", limit=limit)
    verdict = policy.decide(
        RequestContext(
            principal=who,
            method=request.method,
            path=request.path,
            params=match.params,
            query_string=request.query_string,
            headers=request.headers,
            client_ip=request.client_ip,
            now=request.now,
            roles=request.roles,
        )
    )
    return Outcome(
        route=route.id,
        auth=auth,
        decision="allow" if verdict.allowed else "deny",
        permission=verdict.permission,
        rule=verdict.rule,
        limit=limit,
    )


def changes(active: Outcome, other: Outcome) -> tuple[str, ...]:
    """The kinds in which two outcomes differ (empty: the same), in :data:`CHANGE_KINDS` order."""
    found: list[str] = []
    if active.route != other.route:
        found.append("route")
    if active.auth != other.auth:
        found.append("auth")
    if (active.decision, active.permission, active.rule) != (
        other.decision,
        other.permission,
        other.rule,
    ):
        found.append("decision")
    if active.limit != other.limit:
        found.append("limit")
    return tuple(found)


def flip(active: Outcome, other: Outcome) -> str | None:
    """``allow_to_deny`` or ``deny_to_allow`` when access itself changes, else ``None``."""
    if active.allowed and not other.allowed:
        return "allow_to_deny"
    if other.allowed and not active.allowed:
        return "deny_to_allow"
    return None
