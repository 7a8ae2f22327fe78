"""Plans and products' subscription blocks compiled for the gateway: one lookup per request.

The book answers, for a route, which product's subscription rules apply to it, and for a plan
on that product, the terms: the rate (a :class:`~hub.ratelimit.base.Limit`, keyed per
application and route) and the daily and monthly quotas (per application and product). It is
built once per configuration version and lives in the snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hub.config.model import ConfigDocument
from hub.ratelimit.base import Limit

__all__ = ["PlanBook", "ProductRules", "Terms", "compile_plans"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Terms:
    """What one plan gives an application on one product."""

    plan: str
    rate: Limit | None
    daily: int | None
    monthly: int | None

    @property
    def has_quota(self) -> bool:
        return self.daily is not None or self.monthly is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductRules:
    """A product's subscription rules, and every defined plan's terms on it."""

    product: str
    required: bool
    approval: bool
    offered: tuple[str, ...]
    default_plan: str | None
    terms: Mapping[str, Terms]

    def offers(self, plan: str) -> bool:
        return plan in self.offered


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanBook:
    """Products with a subscription block, and the product of each of their routes."""

    products: Mapping[str, ProductRules] = field(default_factory=dict)
    routes: Mapping[str, str] = field(default_factory=dict)
    plans: tuple[str, ...] = ()

    def for_route(self, route_id: str) -> ProductRules | None:
        """The subscription rules on ``route_id``, or ``None`` when none apply."""
        product = self.routes.get(route_id)
        return None if product is None else self.products[product]


def compile_plans(document: ConfigDocument) -> PlanBook:
    """The book of a validated document (its plan references are known to resolve)."""
    products: dict[str, ProductRules] = {}
    for product in document.products:
        block = product.subscription
        if block is None or product.id in products:
            continue  # every version carries the same block (validated)
        terms: dict[str, Terms] = {}
        for plan in document.plans:
            rate, quota = plan.terms(product.id)
            terms[plan.id] = Terms(
                plan=plan.id,
                rate=None
                if rate is None
                else Limit(
                    rate=rate.rate, period=rate.period, burst=rate.burst, fallback=rate.fallback
                ),
                daily=quota.daily,
                monthly=quota.monthly,
            )
        products[product.id] = ProductRules(
            product=product.id,
            required=block.required,
            approval=block.approval,
            offered=block.plans,
            default_plan=block.default_plan,
            terms=MappingProxyType(terms),
        )
    routes = {
        route.id: route.product
        for route in document.routes
        if route.product is not None and route.product in products
    }
    return PlanBook(
        products=MappingProxyType(products),
        routes=MappingProxyType(routes),
        plans=tuple(plan.id for plan in document.plans),
    )
