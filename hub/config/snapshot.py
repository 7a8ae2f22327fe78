"""The active configuration compiled into one immutable object, swapped atomically.

A request reads ``runtime.snapshot`` once and uses only that object, so it is served by exactly
one configuration version even while a publish swaps in the next one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hub.config.model import ConfigDocument
from hub.plans.book import PlanBook, compile_plans
from hub.policy.compile import RoutePolicy, compile_operations, compile_policies
from hub.policy.operations import OperationIndex
from hub.ratelimit.base import Limit
from hub.routing.table import RouteTable
from hub.upstream.pool import UpstreamPool

__all__ = ["Snapshot", "compile_snapshot"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Everything a request needs from the configuration, for one version."""

    version: int
    document: ConfigDocument
    table: RouteTable
    pools: Mapping[str, UpstreamPool]
    limits: Mapping[str, Limit] = field(default_factory=dict)
    # Route id -> its compiled permission policy; a route not in it is not covered.
    policies: Mapping[str, RoutePolicy] = field(default_factory=dict)
    # Route id -> the contract operations it serves (every route, covered or not).
    operations: Mapping[str, OperationIndex] = field(default_factory=dict)
    # Products' subscription rules and plans' terms (hub/plans/book.py).
    plans: PlanBook = field(default_factory=PlanBook)
    version_label: str = ""


def compile_snapshot(
    version: int, document: ConfigDocument, pools: Mapping[str, UpstreamPool]
) -> Snapshot:
    """Compile a validated document (and its live pools) into a snapshot."""
    limits = {
        route.id: Limit(
            rate=route.rate_limit.rate,
            period=route.rate_limit.period,
            burst=route.rate_limit.burst,
            fallback=route.rate_limit.fallback,
        )
        for route in document.routes
        if route.rate_limit is not None
    }
    operations = compile_operations(document.routes, document.products)
    return Snapshot(
        version=version,
        document=document,
        table=RouteTable.compile(document.routes),
        pools=MappingProxyType({spec.id: pools[spec.id] for spec in document.upstreams}),
        limits=MappingProxyType(limits),
        policies=compile_policies(document.permissions, document.routes, operations),
        operations=operations,
        plans=compile_plans(document),
        version_label=str(version),
    )
