"""Admin API for permission policies: explain a decision of the active configuration.

``POST /admin/api/policies/explain`` takes a principal and a request, routes the request through
the active snapshot's route table and runs the route's compiled policy the way the gateway
would (:mod:`hub.policy.explain`), answering which rule decided, why, what obligations apply,
and each rule's outcome. Admin guard as every ``/admin/api`` endpoint; nothing is forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from hub.admin.guard import admin_guard
from hub.auth.principal import Kind, Principal
from hub.errors import (
    InvalidPath,
    InvalidRequest,
    MethodNotAllowed,
    RouteNotFound,
    ServiceUnavailable,
)
from hub.policy.context import RequestContext
from hub.policy.explain import explain
from hub.routing.normalise import normalise_path
from hub.runtime import Runtime

__all__ = ["AdminPoliciesController", "ExplainQuery", "ExplainResult"]

RuntimeDep: TypeAlias = NamedDependency[Runtime]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExplainPrincipal:
    """The caller to imagine; what a verified credential would have produced.

    ``memberships`` are ``"<establishment id>:<role>"``, ``delegated_scopes``
    ``"<establishment id>:<scope>"``, as in the hub's tokens.
    """

    kind: Kind = "anonymous"
    subject: str = "anonymous"
    issuer: str = ""
    client_id: str | None = None
    scopes: tuple[str, ...] = ()
    acr: str | None = None
    establishment: str | None = None
    delegation: str | None = None
    roles: tuple[str, ...] = ()
    memberships: tuple[str, ...] = ()
    delegated_scopes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExplainRequest:
    """The request to imagine: ``path`` may carry a query (``/a?b=c``) or give it in ``query``."""

    method: str
    path: str
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    client_ip: str = "127.0.0.1"
    time: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExplainQuery:
    """A principal and a request, to decide as the gateway would."""

    principal: ExplainPrincipal
    request: ExplainRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleOutcome:
    permission: str
    rule: str
    effect: str
    matched: bool
    failed: str | None = field(metadata={"description": "the first check that did not hold"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ExplainResult:
    """Which rule decided and why; ``not_enforced`` when no permission covers the route."""

    config_version: int
    route: str
    operation: str | None = field(
        metadata={"description": "the contract operation of the request, if the route knows it"}
    )
    decision: Literal["allow", "deny", "not_enforced"]
    permission: str | None
    rule: str | None
    reason: str
    obligations: dict[str, list[str]]
    trace: list[RuleOutcome]


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


class AdminPoliciesController(Controller):
    """Permission policies: explain a decision."""

    path = "/admin/api/policies"
    guards = [admin_guard]
    tags = ["admin"]
    dependencies = {"runtime": Provide(_runtime, sync_to_thread=False)}

    @post("/explain", status_code=HTTP_200_OK)
    async def explain(self, runtime: RuntimeDep, data: JSONBody[ExplainQuery]) -> ExplainResult:
        """Decide a request for a principal with the active policies, and say why."""
        snapshot = runtime.snapshot
        if snapshot is None:
            raise ServiceUnavailable("the configuration is not loaded yet")
        asked = data.request
        method = asked.method.upper()
        raw_path, _, inline_query = asked.path.partition("?")
        if not raw_path.startswith("/"):
            raise InvalidRequest("request.path must start with '/'")
        try:
            path = normalise_path(raw_path.encode("utf-8"))
        except InvalidPath as exc:
            raise InvalidRequest(f"request.path: {exc.detail}") from exc
        if asked.time is not None and asked.time.tzinfo is None:
            raise InvalidRequest("request.time must be a timezone-aware datetime")
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in asked.headers.items()
        ]
        host = asked.headers.get("host", asked.headers.get("Host", "")).lower().partition(":")[0]
        match = snapshot.table.match(method, host, path, headers)
        if match is None:
            allowed = snapshot.table.allowed_methods(host, path, headers)
            if allowed:
                raise MethodNotAllowed(f"{method} is not allowed on {path}")
            raise RouteNotFound(f"no route for {method} {path}")
        who = data.principal
        context = RequestContext(
            principal=Principal(
                subject=who.subject,
                kind=who.kind,
                issuer=who.issuer,
                client_id=who.client_id,
                scopes=frozenset(who.scopes),
                acr=who.acr,
                establishment=who.establishment,
                delegation=who.delegation,
                roles=frozenset(who.roles),
                memberships=frozenset(who.memberships),
                delegated_scopes=frozenset(who.delegated_scopes),
                delegations=frozenset({who.delegation} if who.delegation else ()),
            ),
            method=method,
            path=path,
            params=match.params,
            query_string=(asked.query or inline_query).encode("latin-1"),
            headers=headers,
            client_ip=asked.client_ip,
            now=asked.time.timestamp() if asked.time is not None else None,
            operations=snapshot.operations.get(match.route.id),
        )
        route = match.route.id
        found = explain(route, snapshot.policies.get(route), context)
        trace = [
            RuleOutcome(
                permission=t.permission,
                rule=t.rule,
                effect=t.effect,
                matched=t.matched,
                failed=t.failed,
            )
            for t in found.trace
        ]
        decision = found.decision
        if decision is None:
            return ExplainResult(
                config_version=snapshot.version,
                route=route,
                operation=context.operation,
                decision="not_enforced",
                permission=None,
                rule=None,
                reason=f"no permission covers route {route!r}: its auth block alone decides",
                obligations={"mask": [], "drop": []},
                trace=trace,
            )
        return ExplainResult(
            config_version=snapshot.version,
            route=route,
            operation=context.operation,
            decision="allow" if decision.allowed else "deny",
            permission=decision.permission,
            rule=decision.rule,
            reason=decision.reason,
            obligations=decision.obligations.describe(),
            trace=trace,
        )
